//! Credentials on PostgreSQL: sealed token values, the refresh lease (the in-flight marker),
//! and the uninstall-erasure queries.
//!
//! Invariants:
//! - `put` locks the row (`FOR UPDATE`) before comparing versions, so two replicas swapping at
//!   once never both win; a first insert is settled by the primary key.
//! - `begin_refresh` is one conditional UPDATE: PostgreSQL re-checks its WHERE (version, no
//!   unexpired lease) on the locked row, so exactly one process across all replicas takes the
//!   lease; the others see it held. Every write bumps `version` and clears the lease.
//! - The lease's expiry and the check of it are the database's clock (`wasmhook_now_ms()`), as
//!   for delivery leases: a replica whose clock runs ahead can neither cut another's lease short
//!   nor, running behind, hold one past its end.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{duration_ms, limit_param};
use crate::{
    ids::{ApiName, TenantId},
    store::{
        StoreError,
        credentials::{CredentialCursor, CredentialKind, CredentialRecord},
    },
};

const COLUMNS: &str = "api, tenant, kind, key_id, access, refresh, previous, previous_until_ms,
    expires_at_ms, issued_at_ms, scopes, user_type, company, refresh_lease_until_ms, version";

fn parse(r: &Row) -> Result<CredentialRecord, StoreError> {
    let kind: String = r.try_get(2)?;
    Ok(CredentialRecord {
        api: ApiName::new(r.try_get::<_, String>(0)?),
        tenant: TenantId::new(r.try_get::<_, String>(1)?),
        kind: CredentialKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown credential kind `{kind}`")))?,
        key_id: r.try_get(3)?,
        access: r.try_get(4)?,
        refresh: r.try_get(5)?,
        previous: r.try_get(6)?,
        previous_until_ms: r.try_get(7)?,
        expires_at_ms: r.try_get(8)?,
        issued_at_ms: r.try_get(9)?,
        scopes: r.try_get(10)?,
        user_type: r.try_get(11)?,
        company: r.try_get::<_, Option<String>>(12)?.map(TenantId::new),
        refresh_lease_until_ms: r.try_get(13)?,
        version: r.try_get(14)?,
    })
}

pub(super) async fn credential(
    client: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Option<CredentialRecord>, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM credentials WHERE api = $1 AND tenant = $2"
        ))
        .await?;
    client
        .query_opt(&statement, &[&api.as_str(), &tenant.as_str()])
        .await?
        .as_ref()
        .map(parse)
        .transpose()
}

pub(super) async fn page(
    client: &impl GenericClient,
    after: &CredentialCursor,
    limit: usize,
) -> Result<Vec<CredentialRecord>, StoreError> {
    let (api, tenant) = match after {
        Some((api, tenant)) => (api.as_str(), tenant.as_str()),
        None => ("", ""),
    };
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM credentials WHERE (api, tenant) > ($1, $2)
             ORDER BY api, tenant LIMIT $3"
        ))
        .await?;
    client
        .query(&statement, &[&api, &tenant, &limit_param(limit)])
        .await?
        .iter()
        .map(parse)
        .collect()
}

pub(super) async fn put(
    client: &mut deadpool_postgres::Object,
    r: &CredentialRecord,
    expected_version: Option<i64>,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT version FROM credentials WHERE api = $1 AND tenant = $2 FOR UPDATE")
        .await?;
    let stored: Option<i64> = tx
        .query_opt(&lock, &[&r.api.as_str(), &r.tenant.as_str()])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    if let Some(expected) = expected_version
        && stored != Some(expected)
    {
        return Ok(false);
    }
    let version = stored.unwrap_or(0) + 1;
    let statement = tx
        .prepare_cached(
            "INSERT INTO credentials (api, tenant, kind, key_id, access, refresh, previous,
                 previous_until_ms, expires_at_ms, issued_at_ms, scopes, user_type, company,
                 refresh_lease_until_ms, version, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14,
                     wasmhook_now_ms())
             ON CONFLICT (api, tenant) DO UPDATE SET
                 kind = excluded.kind, key_id = excluded.key_id, access = excluded.access,
                 refresh = excluded.refresh, previous = excluded.previous,
                 previous_until_ms = excluded.previous_until_ms,
                 expires_at_ms = excluded.expires_at_ms, issued_at_ms = excluded.issued_at_ms,
                 scopes = excluded.scopes, user_type = excluded.user_type,
                 company = excluded.company, refresh_lease_until_ms = NULL,
                 -- a row inserted by another writer since our read: still one version more
                 version = credentials.version + 1, updated_at_ms = excluded.updated_at_ms",
        )
        .await?;
    let written = tx
        .execute(
            &statement,
            &[
                &r.api.as_str(),
                &r.tenant.as_str(),
                &r.kind.as_str(),
                &r.key_id,
                &r.access,
                &r.refresh,
                &r.previous,
                &r.previous_until_ms,
                &r.expires_at_ms,
                &r.issued_at_ms,
                &r.scopes,
                &r.user_type,
                &r.company.as_ref().map(TenantId::as_str),
                &version,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(written > 0)
}

pub(super) async fn begin_refresh(
    client: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
    version: i64,
    lease: Duration,
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached(
            "UPDATE credentials SET refresh_lease_until_ms = wasmhook_now_ms() + $4
             WHERE api = $1 AND tenant = $2 AND version = $3
               AND (refresh_lease_until_ms IS NULL
                    OR refresh_lease_until_ms <= wasmhook_now_ms())",
        )
        .await?;
    let taken = client
        .execute(
            &statement,
            &[
                &api.as_str(),
                &tenant.as_str(),
                &version,
                &duration_ms(lease),
            ],
        )
        .await?;
    Ok(taken > 0)
}

pub(super) async fn end_refresh(
    client: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
    version: i64,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(
            "UPDATE credentials SET refresh_lease_until_ms = NULL
             WHERE api = $1 AND tenant = $2 AND version = $3",
        )
        .await?;
    client
        .execute(&statement, &[&api.as_str(), &tenant.as_str(), &version])
        .await?;
    Ok(())
}

pub(super) async fn delete(
    client: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<u64, StoreError> {
    let statement = client
        .prepare_cached("DELETE FROM credentials WHERE api = $1 AND tenant = $2")
        .await?;
    Ok(client
        .execute(&statement, &[&api.as_str(), &tenant.as_str()])
        .await?)
}

pub(super) async fn mark_erased(
    client: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached(
            "UPDATE installations SET erased_at_ms = wasmhook_now_ms()
             WHERE api = $1 AND tenant = $2 AND state = 'uninstalled' AND erased_at_ms IS NULL",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&api.as_str(), &tenant.as_str()])
        .await?
        > 0)
}

pub(super) async fn uninstalls_to_erase(
    client: &impl GenericClient,
    limit: usize,
) -> Result<Vec<(ApiName, TenantId)>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT i.api, i.tenant FROM installations i
             WHERE i.state = 'uninstalled' AND i.erased_at_ms IS NULL
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.source = i.uninstall_source
                                 AND d.event_id = i.uninstall_event
                                 AND d.state IN ('pending', 'running'))
             ORDER BY i.updated_at_ms LIMIT $1",
        )
        .await?;
    client
        .query(&statement, &[&limit_param(limit)])
        .await?
        .iter()
        .map(|r| {
            Ok((
                ApiName::new(r.try_get::<_, String>(0)?),
                TenantId::new(r.try_get::<_, String>(1)?),
            ))
        })
        .collect()
}

pub(super) async fn covered_locations(
    client: &impl GenericClient,
    api: &ApiName,
    company: &TenantId,
) -> Result<Vec<TenantId>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT location FROM installation_links WHERE api = $1 AND company = $2
             ORDER BY location",
        )
        .await?;
    client
        .query(&statement, &[&api.as_str(), &company.as_str()])
        .await?
        .iter()
        .map(|r| Ok(TenantId::new(r.try_get::<_, String>(0)?)))
        .collect()
}
