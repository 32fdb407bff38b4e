//! Installations on PostgreSQL: the gated ingest, state changes, company -> location links.
//!
//! Invariants:
//! - The gated ingest reads the rows `installations::decide` needs and stores the event in one
//!   transaction, under a transaction-level advisory lock per (api, tenant) and per (api,
//!   company): shared for ordinary events (they never wait for each other), exclusive for
//!   INSTALL / UNINSTALL and for `set_installation_state`. So no state change lands between
//!   an event's check and its insert, on any replica. Locks are taken in a fixed order (sorted
//!   keys), so two transactions never wait for each other in a cycle.
//! - A state change applies only when its time is not older than the stored one.

use deadpool_postgres::GenericClient;

use super::ingest::{self, Prepared};
use crate::{
    ids::{ApiName, TenantId},
    installations::{
        Current, Decision, Gate, GatedOutcome, Installation, InstallationState, decide,
    },
    sources::Lifecycle,
    store::{IngestOutcome, NewDelivery, NewEvent, StoreError, StoreOptions},
};

/// Takes the advisory locks of these tenants of `api` for the rest of the transaction.
async fn lock_tenants(
    tx: &impl GenericClient,
    api: &ApiName,
    tenants: &[&TenantId],
    exclusive: bool,
) -> Result<(), StoreError> {
    let mut keys: Vec<String> = tenants
        .iter()
        .map(|t| format!("{}\u{1f}{}", api.as_str(), t.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    let function = if exclusive {
        "pg_advisory_xact_lock"
    } else {
        "pg_advisory_xact_lock_shared"
    };
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {function}(hashtextextended('wasmhook.installation.' || current_schema() \
             || '.' || $1, 0))"
        ))
        .await?;
    for key in &keys {
        tx.execute(&statement, &[key]).await?;
    }
    Ok(())
}

pub(super) async fn ingest_gated(
    client: &mut deadpool_postgres::Object,
    event: NewEvent,
    deliveries: Vec<NewDelivery>,
    gate: &Gate,
    options: &StoreOptions,
) -> Result<GatedOutcome, StoreError> {
    let prepared = Prepared::new(event, deliveries, options);
    let tx = client.transaction().await?;
    let exclusive = gate.facts.lifecycle != Lifecycle::Other;
    let mut tenants = vec![&gate.facts.tenant];
    tenants.extend(gate.facts.company.as_ref());
    lock_tenants(&tx, &gate.api, &tenants, exclusive).await?;

    // A redelivery of an event we accepted is acknowledged whatever the installation says now.
    let stored = tx
        .prepare_cached("SELECT 1 FROM events WHERE source = $1 AND id = $2")
        .await?;
    let key = (prepared.event.source.clone(), prepared.event.id.clone());
    if tx
        .query_opt(&stored, &[&key.0.as_str(), &key.1.as_str()])
        .await?
        .is_some()
    {
        return Ok(GatedOutcome::Duplicate);
    }
    let current = current(&tx, gate).await?;
    match decide(gate.require, &gate.facts, &current) {
        Decision::Refuse(refusal) => Ok(GatedOutcome::Refused(refusal)),
        Decision::Accept {
            change,
            link: new_link,
        } => {
            let outcome = ingest::insert(&tx, prepared).await?;
            if outcome == IngestOutcome::Duplicate {
                // Stored by a concurrent ingest after our check: nothing else to write.
                return Ok(GatedOutcome::Duplicate);
            }
            if let Some(change) = change {
                let uninstalled_by = (change.state == InstallationState::Uninstalled)
                    .then(|| (key.0.as_str(), key.1.as_str()));
                set_state(
                    &tx,
                    &gate.api,
                    &change.tenant,
                    change.state,
                    change.at_ms,
                    uninstalled_by,
                )
                .await?;
            }
            if let Some((company, location)) = new_link {
                link(&tx, &gate.api, &company, &location).await?;
            }
            tx.commit().await?;
            Ok(outcome.into())
        }
    }
}

/// The rows `decide` needs: the tenant's installation and its company's.
async fn current(tx: &impl GenericClient, gate: &Gate) -> Result<Current, StoreError> {
    let api = &gate.api;
    let tenant = state_row(tx, api, &gate.facts.tenant).await?;
    let company = match &gate.facts.company {
        Some(company) => Some(company.clone()),
        None => company_of(tx, api, &gate.facts.tenant).await?,
    };
    let company = match company {
        Some(company) => state_row(tx, api, &company).await?,
        None => None,
    };
    Ok(Current { tenant, company })
}

async fn state_row(
    tx: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Option<(InstallationState, i64)>, StoreError> {
    let statement = tx
        .prepare_cached(
            "SELECT state, state_at_ms FROM installations WHERE api = $1 AND tenant = $2",
        )
        .await?;
    let Some(row) = tx
        .query_opt(&statement, &[&api.as_str(), &tenant.as_str()])
        .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get(0)?;
    let state = InstallationState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown installation state `{state}`")))?;
    Ok(Some((state, row.try_get(1)?)))
}

pub(super) async fn set_installation_state(
    client: &mut deadpool_postgres::Object,
    api: &ApiName,
    tenant: &TenantId,
    state: InstallationState,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    lock_tenants(&tx, api, &[tenant], true).await?;
    let changed = set_state(&tx, api, tenant, state, at_ms, None).await?;
    tx.commit().await?;
    Ok(changed)
}

/// `uninstalled_by` is the (source, event id) of the UNINSTALL that made a tombstone. Any
/// change clears `erased_at_ms`.
async fn set_state(
    tx: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
    state: InstallationState,
    at_ms: i64,
    uninstalled_by: Option<(&str, &str)>,
) -> Result<bool, StoreError> {
    let (source, event) = uninstalled_by.unzip();
    let statement = tx
        .prepare_cached(
            "INSERT INTO installations (api, tenant, state, state_at_ms, created_at_ms,
                 updated_at_ms, uninstall_source, uninstall_event)
             VALUES ($1, $2, $3, $4, wasmhook_now_ms(), wasmhook_now_ms(), $5, $6)
             ON CONFLICT (api, tenant) DO UPDATE
                SET state = excluded.state,
                    state_at_ms = excluded.state_at_ms,
                    updated_at_ms = excluded.updated_at_ms,
                    uninstall_source = excluded.uninstall_source,
                    uninstall_event = excluded.uninstall_event,
                    erased_at_ms = NULL
                WHERE excluded.state_at_ms >= installations.state_at_ms",
        )
        .await?;
    let changed = tx
        .execute(
            &statement,
            &[
                &api.as_str(),
                &tenant.as_str(),
                &state.as_str(),
                &at_ms,
                &source,
                &event,
            ],
        )
        .await?;
    Ok(changed > 0)
}

pub(super) async fn link(
    client: &impl GenericClient,
    api: &ApiName,
    company: &TenantId,
    location: &TenantId,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO installation_links (api, company, location, created_at_ms)
             VALUES ($1, $2, $3, wasmhook_now_ms())
             ON CONFLICT (api, location, company) DO NOTHING",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&api.as_str(), &company.as_str(), &location.as_str()],
        )
        .await?;
    Ok(())
}

/// The company a location was last linked to.
pub(super) async fn company_of(
    client: &impl GenericClient,
    api: &ApiName,
    location: &TenantId,
) -> Result<Option<TenantId>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT company FROM installation_links WHERE api = $1 AND location = $2
             ORDER BY created_at_ms DESC, company LIMIT 1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&api.as_str(), &location.as_str()])
        .await?;
    Ok(row
        .map(|r| r.try_get::<_, String>(0))
        .transpose()?
        .map(TenantId::new))
}

const COLUMNS: &str = "api, tenant, state, state_at_ms, created_at_ms, updated_at_ms";

fn parse_installation(r: &tokio_postgres::Row) -> Result<Installation, StoreError> {
    let state: String = r.try_get(2)?;
    Ok(Installation {
        api: ApiName::new(r.try_get::<_, String>(0)?),
        tenant: TenantId::new(r.try_get::<_, String>(1)?),
        state: InstallationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown installation state `{state}`")))?,
        state_at_ms: r.try_get(3)?,
        created_at_ms: r.try_get(4)?,
        updated_at_ms: r.try_get(5)?,
    })
}

pub(super) async fn installation(
    client: &impl GenericClient,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Option<Installation>, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM installations WHERE api = $1 AND tenant = $2"
        ))
        .await?;
    client
        .query_opt(&statement, &[&api.as_str(), &tenant.as_str()])
        .await?
        .as_ref()
        .map(parse_installation)
        .transpose()
}

pub(super) async fn list(
    client: &impl GenericClient,
    api: &ApiName,
) -> Result<Vec<Installation>, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM installations WHERE api = $1 ORDER BY tenant"
        ))
        .await?;
    client
        .query(&statement, &[&api.as_str()])
        .await?
        .iter()
        .map(parse_installation)
        .collect()
}
