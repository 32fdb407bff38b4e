//! Installations in SQLite: the `installations` and `installation_links` tables, the gated
//! ingest that stores an event only if `installations::decide` accepts it, and the reads.
//!
//! Invariants:
//! - The gated ingest runs on the writer thread inside one command's savepoint: the duplicate
//!   check, the rows `decide` sees, the event insert and the installation change are one atomic
//!   step, so no UNINSTALL can land between the check and the insert.
//! - A state change only applies when its time is not older than the stored one (the `WHERE`
//!   of the upsert), so out-of-order retries cannot move an installation back in time.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqliteStore,
    writer::Op,
    writes::{self, PreparedIngest},
};
use crate::{
    ids::{ApiName, TenantId, now_ms},
    installations::{
        Current, Decision, Gate, GatedOutcome, Installation, InstallationState, decide,
    },
    store::{NewDelivery, NewEvent, StoreError},
};

/// The installation writes the writer thread runs.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the whole op travels boxed in `writer::Op`, so its size is one allocation per message"
)]
pub(super) enum InstallationOp {
    IngestGated {
        ingest: PreparedIngest,
        gate: Gate,
    },
    SetState {
        api: ApiName,
        tenant: TenantId,
        state: InstallationState,
        at_ms: i64,
    },
    Link {
        api: ApiName,
        company: TenantId,
        location: TenantId,
    },
}

/// What an installation write produced.
#[derive(Debug)]
pub(super) enum InstallationOutput {
    Gated(GatedOutcome),
    /// Whether a state change applied (false: an older change than the stored one).
    Changed(bool),
    Linked,
}

/// Runs one installation write (called by `writes::apply` inside the command's savepoint).
pub(super) fn apply(
    conn: &Connection,
    op: InstallationOp,
) -> Result<InstallationOutput, StoreError> {
    match op {
        InstallationOp::IngestGated { ingest, gate } => {
            ingest_gated(conn, ingest, &gate).map(InstallationOutput::Gated)
        }
        InstallationOp::SetState {
            api,
            tenant,
            state,
            at_ms,
        } => set_state(conn, &api, &tenant, state, at_ms, None).map(InstallationOutput::Changed),
        InstallationOp::Link {
            api,
            company,
            location,
        } => link(conn, &api, &company, &location).map(|()| InstallationOutput::Linked),
    }
}

fn ingest_gated(
    conn: &Connection,
    ingest: PreparedIngest,
    gate: &Gate,
) -> Result<GatedOutcome, StoreError> {
    let event = &ingest.event;
    // A redelivery of an event we accepted is acknowledged whatever the installation says now:
    // refusing it would make the sender retry something that is already stored.
    let stored = conn
        .prepare_cached("SELECT 1 FROM events WHERE source = ?1 AND id = ?2")?
        .query_row(
            params![event.source.as_str(), event.id.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if stored {
        return Ok(GatedOutcome::Duplicate);
    }
    let current = current(conn, gate)?;
    match decide(gate.require, &gate.facts, &current) {
        Decision::Refuse(refusal) => Ok(GatedOutcome::Refused(refusal)),
        Decision::Accept {
            change,
            link: new_link,
        } => {
            let key = (event.source.clone(), event.id.clone());
            let outcome = writes::ingest(conn, ingest)?;
            if let Some(change) = change {
                let uninstalled_by = (change.state == InstallationState::Uninstalled)
                    .then(|| (key.0.as_str(), key.1.as_str()));
                set_state(
                    conn,
                    &gate.api,
                    &change.tenant,
                    change.state,
                    change.at_ms,
                    uninstalled_by,
                )?;
            }
            if let Some((company, location)) = new_link {
                link(conn, &gate.api, &company, &location)?;
            }
            Ok(outcome.into())
        }
    }
}

/// The rows `decide` needs: the tenant's installation and, when the tenant has no row of its
/// own, its company's (the event's company, else the one linked to the tenant).
fn current(conn: &Connection, gate: &Gate) -> Result<Current, StoreError> {
    let api = &gate.api;
    let tenant = state_row(conn, api, &gate.facts.tenant)?;
    if tenant.is_some() {
        // `decide` reads the company's row only for a tenant without one (rules 1 and 2), so
        // its two lookups are skipped here: in the durable ingest benchmark they were a quarter
        // of the writer's instructions per webhook (callgrind).
        return Ok(Current {
            tenant,
            company: None,
        });
    }
    let company = match &gate.facts.company {
        Some(company) => Some(company.clone()),
        None => company_of(conn, api, &gate.facts.tenant)?,
    };
    let company = match company {
        Some(company) => state_row(conn, api, &company)?,
        None => None,
    };
    Ok(Current { tenant, company })
}

fn state_row(
    conn: &Connection,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Option<(InstallationState, i64)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT state, state_at_ms FROM installations WHERE api = ?1 AND tenant = ?2",
        )?
        .query_row(params![api.as_str(), tenant.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(state, at)| {
        InstallationState::parse(&state)
            .map(|s| (s, at))
            .ok_or_else(|| StoreError::Corrupt(format!("unknown installation state `{state}`")))
    })
    .transpose()
}

/// `uninstalled_by` is the (source, event id) of the UNINSTALL that made a tombstone; the
/// tenant is erased once that event's deliveries are done. Any change clears `erased_at_ms`.
fn set_state(
    conn: &Connection,
    api: &ApiName,
    tenant: &TenantId,
    state: InstallationState,
    at_ms: i64,
    uninstalled_by: Option<(&str, &str)>,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let (source, event) = uninstalled_by.unzip();
    let changed = conn
        .prepare_cached(
            "INSERT INTO installations (api, tenant, state, state_at_ms, created_at_ms,
                 updated_at_ms, uninstall_source, uninstall_event)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)
             ON CONFLICT (api, tenant) DO UPDATE
                SET state = excluded.state,
                    state_at_ms = excluded.state_at_ms,
                    updated_at_ms = excluded.updated_at_ms,
                    uninstall_source = excluded.uninstall_source,
                    uninstall_event = excluded.uninstall_event,
                    erased_at_ms = NULL
                WHERE excluded.state_at_ms >= installations.state_at_ms",
        )?
        .execute(params![
            api.as_str(),
            tenant.as_str(),
            state.as_str(),
            at_ms,
            now,
            source,
            event
        ])?;
    Ok(changed > 0)
}

fn link(
    conn: &Connection,
    api: &ApiName,
    company: &TenantId,
    location: &TenantId,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO installation_links (api, company, location, created_at_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (api, location, company) DO NOTHING",
    )?
    .execute(params![
        api.as_str(),
        company.as_str(),
        location.as_str(),
        now_ms()
    ])?;
    Ok(())
}

/// The company a location was last linked to (the newest link; on a tie, the first company by
/// name).
pub(super) fn company_of(
    conn: &Connection,
    api: &ApiName,
    location: &TenantId,
) -> Result<Option<TenantId>, StoreError> {
    // The newest is picked here rather than with `ORDER BY ... LIMIT 1`: SQLite sorts through
    // a temporary B-tree it creates and drops per query, ~26k instructions per lookup
    // (callgrind), more than half of what the event's INSERT costs. A location has one link or
    // a handful.
    let mut statement = conn.prepare_cached(
        "SELECT company, created_at_ms FROM installation_links WHERE api = ?1 AND location = ?2",
    )?;
    let mut rows = statement.query(params![api.as_str(), location.as_str()])?;
    let mut newest: Option<(String, i64)> = None;
    while let Some(row) = rows.next()? {
        let (company, at): (String, i64) = (row.get(0)?, row.get(1)?);
        let newer = match &newest {
            None => true,
            Some((best, best_at)) => at > *best_at || (at == *best_at && company < *best),
        };
        if newer {
            newest = Some((company, at));
        }
    }
    Ok(newest.map(|(company, _)| TenantId::new(company)))
}

const COLUMNS: &str = "api, tenant, state, state_at_ms, created_at_ms, updated_at_ms";

/// An `installations` row selected as [`COLUMNS`]. The outer result is SQLite's, the inner one
/// says whether the stored state is one this binary knows.
fn parse_installation(r: &rusqlite::Row<'_>) -> Result<Installation, StoreError> {
    let state: String = r.get(2)?;
    Ok(Installation {
        api: ApiName::new(r.get::<_, String>(0)?),
        tenant: TenantId::new(r.get::<_, String>(1)?),
        state: InstallationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown installation state `{state}`")))?,
        state_at_ms: r.get(3)?,
        created_at_ms: r.get(4)?,
        updated_at_ms: r.get(5)?,
    })
}

/// One installation.
pub(super) fn installation(
    conn: &Connection,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Option<Installation>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM installations WHERE api = ?1 AND tenant = ?2"
    ))?
    .query_row(params![api.as_str(), tenant.as_str()], |r| {
        Ok(parse_installation(r))
    })
    .optional()?
    .transpose()
}

/// Every installation of `api`, by tenant.
pub(super) fn list(conn: &Connection, api: &ApiName) -> Result<Vec<Installation>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM installations WHERE api = ?1 ORDER BY tenant"
    ))?;
    let rows = statement.query_map(params![api.as_str()], |r| Ok(parse_installation(r)))?;
    rows.map(|row| row?).collect()
}

/// The async side, called by `SqliteStore`'s `Store` impl.
impl SqliteStore {
    pub(super) async fn write_installation(
        &self,
        op: InstallationOp,
    ) -> Result<InstallationOutput, StoreError> {
        self.write(Op::Installations(Box::new(op)))
            .await?
            .into_installations()
    }

    pub(super) async fn ingest_gated_sqlite(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> Result<GatedOutcome, StoreError> {
        match self
            .write_installation(InstallationOp::IngestGated {
                ingest: self.prepare_ingest(event, deliveries),
                gate,
            })
            .await?
        {
            InstallationOutput::Gated(outcome) => Ok(outcome),
            other => Err(mismatch(other)),
        }
    }

    pub(super) async fn set_installation_state_sqlite(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        state: InstallationState,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        match self
            .write_installation(InstallationOp::SetState {
                api: api.clone(),
                tenant: tenant.clone(),
                state,
                at_ms,
            })
            .await?
        {
            InstallationOutput::Changed(changed) => Ok(changed),
            other => Err(mismatch(other)),
        }
    }

    pub(super) async fn link_location_sqlite(
        &self,
        api: &ApiName,
        company: &TenantId,
        location: &TenantId,
    ) -> Result<(), StoreError> {
        match self
            .write_installation(InstallationOp::Link {
                api: api.clone(),
                company: company.clone(),
                location: location.clone(),
            })
            .await?
        {
            InstallationOutput::Linked => Ok(()),
            other => Err(mismatch(other)),
        }
    }
}

fn mismatch(output: InstallationOutput) -> StoreError {
    // Unreachable unless `apply` pairs an op with the wrong output.
    StoreError::Corrupt(format!(
        "the writer answered {output:?} to an installation write"
    ))
}
