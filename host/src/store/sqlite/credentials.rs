//! Credentials in SQLite: the `credentials` table (sealed token values, the refresh lease) and
//! the uninstall-erasure queries over `installations`.
//!
//! Invariants: every write runs on the writer thread, so a compare-and-swap or a lease take is
//! one atomic step; a write of a row bumps `version` and clears `refresh_lease_until_ms`.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, writer::Op};
use crate::{
    ids::{ApiName, TenantId, now_ms},
    store::{
        StoreError,
        credentials::{CredentialCursor, CredentialKind, CredentialRecord},
    },
};

/// The credential writes the writer thread runs.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the whole op travels boxed in `writer::Op`, so its size is one allocation per message"
)]
pub(super) enum CredentialOp {
    Put {
        record: CredentialRecord,
        expected_version: Option<i64>,
    },
    BeginRefresh {
        api: ApiName,
        tenant: TenantId,
        version: i64,
        now_ms: i64,
        lease_until_ms: i64,
    },
    EndRefresh {
        api: ApiName,
        tenant: TenantId,
        version: i64,
    },
    Delete {
        api: ApiName,
        tenant: TenantId,
    },
    MarkErased {
        api: ApiName,
        tenant: TenantId,
    },
}

/// Runs one credential write (inside the command's savepoint).
pub(super) fn apply(conn: &Connection, op: CredentialOp) -> Result<u64, StoreError> {
    let changed = match op {
        CredentialOp::Put {
            record,
            expected_version,
        } => put(conn, &record, expected_version)?,
        CredentialOp::BeginRefresh {
            api,
            tenant,
            version,
            now_ms,
            lease_until_ms,
        } => conn
            .prepare_cached(
                "UPDATE credentials SET refresh_lease_until_ms = ?4
                 WHERE api = ?1 AND tenant = ?2 AND version = ?3
                   AND (refresh_lease_until_ms IS NULL OR refresh_lease_until_ms <= ?5)",
            )?
            .execute(params![
                api.as_str(),
                tenant.as_str(),
                version,
                lease_until_ms,
                now_ms
            ])?,
        CredentialOp::EndRefresh {
            api,
            tenant,
            version,
        } => conn
            .prepare_cached(
                "UPDATE credentials SET refresh_lease_until_ms = NULL
                 WHERE api = ?1 AND tenant = ?2 AND version = ?3",
            )?
            .execute(params![api.as_str(), tenant.as_str(), version])?,
        CredentialOp::Delete { api, tenant } => conn
            .prepare_cached("DELETE FROM credentials WHERE api = ?1 AND tenant = ?2")?
            .execute(params![api.as_str(), tenant.as_str()])?,
        CredentialOp::MarkErased { api, tenant } => conn
            .prepare_cached(
                "UPDATE installations SET erased_at_ms = ?3
                 WHERE api = ?1 AND tenant = ?2 AND state = 'uninstalled' AND erased_at_ms IS NULL",
            )?
            .execute(params![api.as_str(), tenant.as_str(), now_ms()])?,
    };
    Ok(changed as u64)
}

fn put(
    conn: &Connection,
    r: &CredentialRecord,
    expected_version: Option<i64>,
) -> Result<usize, StoreError> {
    let stored: Option<i64> = conn
        .prepare_cached("SELECT version FROM credentials WHERE api = ?1 AND tenant = ?2")?
        .query_row(params![r.api.as_str(), r.tenant.as_str()], |row| row.get(0))
        .optional()?;
    if let Some(expected) = expected_version
        && stored != Some(expected)
    {
        return Ok(0);
    }
    let version = stored.unwrap_or(0) + 1;
    Ok(conn
        .prepare_cached(
            "INSERT INTO credentials (api, tenant, kind, key_id, access, refresh, previous,
                 previous_until_ms, expires_at_ms, issued_at_ms, scopes, user_type, company,
                 refresh_lease_until_ms, version, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, ?14, ?15)
             ON CONFLICT (api, tenant) DO UPDATE SET
                 kind = excluded.kind, key_id = excluded.key_id, access = excluded.access,
                 refresh = excluded.refresh, previous = excluded.previous,
                 previous_until_ms = excluded.previous_until_ms,
                 expires_at_ms = excluded.expires_at_ms, issued_at_ms = excluded.issued_at_ms,
                 scopes = excluded.scopes, user_type = excluded.user_type,
                 company = excluded.company, refresh_lease_until_ms = NULL,
                 version = excluded.version, updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![
            r.api.as_str(),
            r.tenant.as_str(),
            r.kind.as_str(),
            r.key_id,
            r.access,
            r.refresh,
            r.previous,
            r.previous_until_ms,
            r.expires_at_ms,
            r.issued_at_ms,
            r.scopes,
            r.user_type,
            r.company.as_ref().map(TenantId::as_str),
            version,
            now_ms(),
        ])?)
}

const COLUMNS: &str = "api, tenant, kind, key_id, access, refresh, previous, previous_until_ms,
    expires_at_ms, issued_at_ms, scopes, user_type, company, refresh_lease_until_ms, version";

fn parse(r: &rusqlite::Row<'_>) -> Result<CredentialRecord, StoreError> {
    let kind: String = r.get(2)?;
    Ok(CredentialRecord {
        api: ApiName::new(r.get::<_, String>(0)?),
        tenant: TenantId::new(r.get::<_, String>(1)?),
        kind: CredentialKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown credential kind `{kind}`")))?,
        key_id: r.get(3)?,
        access: r.get(4)?,
        refresh: r.get(5)?,
        previous: r.get(6)?,
        previous_until_ms: r.get(7)?,
        expires_at_ms: r.get(8)?,
        issued_at_ms: r.get(9)?,
        scopes: r.get(10)?,
        user_type: r.get(11)?,
        company: r.get::<_, Option<String>>(12)?.map(TenantId::new),
        refresh_lease_until_ms: r.get(13)?,
        version: r.get(14)?,
    })
}

pub(super) fn credential(
    conn: &Connection,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Option<CredentialRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE api = ?1 AND tenant = ?2"
    ))?
    .query_row(params![api.as_str(), tenant.as_str()], |r| Ok(parse(r)))
    .optional()?
    .transpose()
}

pub(super) fn page(
    conn: &Connection,
    after: &CredentialCursor,
    limit: usize,
) -> Result<Vec<CredentialRecord>, StoreError> {
    let (api, tenant) = match after {
        Some((api, tenant)) => (api.as_str(), tenant.as_str()),
        None => ("", ""),
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE (api, tenant) > (?1, ?2)
         ORDER BY api, tenant LIMIT ?3"
    ))?;
    let rows = statement.query_map(params![api, tenant, limit as i64], |r| Ok(parse(r)))?;
    rows.map(|row| row?).collect()
}

pub(super) fn uninstalls_to_erase(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<(ApiName, TenantId)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT i.api, i.tenant FROM installations i
         WHERE i.state = 'uninstalled' AND i.erased_at_ms IS NULL
           AND NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.source = i.uninstall_source AND d.event_id = i.uninstall_event
                             AND d.state IN ('pending', 'running'))
         ORDER BY i.updated_at_ms LIMIT ?1",
    )?;
    let rows = statement.query_map(params![limit as i64], |r| {
        Ok((
            ApiName::new(r.get::<_, String>(0)?),
            TenantId::new(r.get::<_, String>(1)?),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn covered_locations(
    conn: &Connection,
    api: &ApiName,
    company: &TenantId,
) -> Result<Vec<TenantId>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT location FROM installation_links WHERE api = ?1 AND company = ?2 ORDER BY location",
    )?;
    let rows = statement.query_map(params![api.as_str(), company.as_str()], |r| {
        r.get::<_, String>(0).map(TenantId::new)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The async side, called by `SqliteStore`'s `Store` impl.
impl SqliteStore {
    pub(super) async fn write_credentials(&self, op: CredentialOp) -> Result<u64, StoreError> {
        self.write(Op::Credentials(Box::new(op)))
            .await?
            .into_count()
    }
}
