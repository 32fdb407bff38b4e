//! `claim` on SQLite: reap expired leases, then hand out due deliveries within the request's
//! global and per-plugin limits, honouring ordering keys.
//!
//! Invariants:
//! - Runs on the writer thread inside one command's savepoint, so a claim is atomic and no two
//!   claims ever see the same pending row.
//! - Ordering: a delivery with an ordering key is claimable only when no earlier delivery (lower
//!   rowid: rowids grow with insertion among live rows) of the same plugin with the same key is
//!   pending or running. A pending one waiting for its retry time therefore blocks the key; a
//!   succeeded or dead one releases it. The rule lives in the query, so it holds across restarts.
//! - A running delivery whose lease expired gets its attempt recorded as `lost` and goes back to
//!   pending (or dead after its last attempt) before anything is handed out.

use std::time::Duration;

use rusqlite::{Connection, Statement, params};

use super::rows::{duration_ms, event_from_row};
use crate::{
    ids::{DeliveryId, LeaseToken, PluginName, now_ms},
    store::{ClaimRequest, Claimed, StoreError},
};

/// Outcome recorded for an attempt whose worker's lease ran out before it reported back.
pub(super) const LOST_OUTCOME: &str = "lost";

/// Most expired leases one claim reclaims, so that a claim after a long outage stays short.
const REAP_BATCH: i64 = 512;

/// The due-delivery query; `{plugin}` is empty or a plugin filter. `?1` = now, `?2` = limit,
/// `?3` = plugin.
const DUE: &str = "SELECT d.id, d.plugin, d.attempts_made, d.max_attempts,
        e.source, e.id, e.kind, e.tenant, e.received_at_ms, e.payload
 FROM deliveries d
 JOIN events e ON e.source = d.source AND e.id = d.event_id
 WHERE d.state = 'pending' AND d.due_at_ms <= ?1 {plugin}
   AND (d.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries p
        WHERE p.plugin = d.plugin AND p.ordering_key = d.ordering_key
          AND p.state IN ('pending', 'running') AND p.rowid < d.rowid))
 ORDER BY d.due_at_ms, d.rowid
 LIMIT ?2";

type Candidate = (DeliveryId, PluginName, u32, u32, crate::store::StoredEvent);

pub(super) fn claim(conn: &Connection, request: &ClaimRequest) -> Result<Vec<Claimed>, StoreError> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    let now = now_ms();
    reap_expired_leases(conn, now)?;
    let mut claimed = Vec::new();
    let mut take = conn.prepare_cached(
        "UPDATE deliveries
         SET state = 'running', lease_token = ?2, due_at_ms = ?3, claimed_at_ms = ?4,
             attempts_made = attempts_made + 1, note = NULL
         WHERE id = ?1 AND state = 'pending'",
    )?;
    match &request.plugins {
        None => {
            let mut due = conn.prepare_cached(&DUE.replace("{plugin}", ""))?;
            let found = candidates(&mut due, params![now, limit_param(request.limit)])?;
            lease_all(&mut take, found, request.lease, now, &mut claimed)?;
        }
        Some(plugins) => {
            let mut due = conn.prepare_cached(&DUE.replace("{plugin}", "AND d.plugin = ?3"))?;
            for slots in plugins {
                let room = slots.free.min(request.limit - claimed.len());
                if room == 0 {
                    if claimed.len() == request.limit {
                        break;
                    }
                    continue;
                }
                let found = candidates(
                    &mut due,
                    params![now, limit_param(room), slots.plugin.as_str()],
                )?;
                lease_all(&mut take, found, slots.lease, now, &mut claimed)?;
            }
        }
    }
    Ok(claimed)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn candidates(
    due: &mut Statement<'_>,
    args: impl rusqlite::Params,
) -> Result<Vec<Candidate>, StoreError> {
    let rows = due
        .query_map(args, |row| {
            Ok((
                DeliveryId::new(row.get::<_, String>(0)?),
                PluginName::new(row.get::<_, String>(1)?),
                row.get::<_, u32>(2)?,
                row.get::<_, u32>(3)?,
                event_from_row(row, 4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn lease_all(
    take: &mut Statement<'_>,
    found: Vec<Candidate>,
    lease: Duration,
    now: i64,
    claimed: &mut Vec<Claimed>,
) -> Result<(), StoreError> {
    let expires = now.saturating_add(duration_ms(lease));
    for (delivery, plugin, attempts_made, max_attempts, event) in found {
        let lease = LeaseToken::generate();
        take.execute(params![delivery.as_str(), lease.as_str(), expires, now])?;
        claimed.push(Claimed {
            delivery,
            plugin,
            attempt: attempts_made.saturating_add(1),
            max_attempts,
            lease,
            event,
        });
    }
    Ok(())
}

/// Ends the attempts whose lease ran out: each gets a `lost` attempt record, then goes back to
/// pending (due at its lease's expiry, i.e. now) or, if it was the last attempt, to dead. This is
/// what makes a running delivery with an expired lease due again, and it keeps a handler that
/// crashes or hangs its worker every time from being retried past `max_attempts`.
fn reap_expired_leases(conn: &Connection, now: i64) -> Result<(), StoreError> {
    let expired = conn
        .prepare_cached(
            "SELECT id, attempts_made, max_attempts, due_at_ms, claimed_at_ms
             FROM deliveries
             WHERE state = 'running' AND due_at_ms <= ?1
             ORDER BY due_at_ms
             LIMIT ?2",
        )?
        .query_map(params![now, REAP_BATCH], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<i64>>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut record = conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, started_at_ms, finished_at_ms, outcome, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (delivery_id, attempt) DO NOTHING",
    )?;
    let mut release = conn.prepare_cached(
        "UPDATE deliveries SET state = ?2, lease_token = NULL, claimed_at_ms = NULL
         WHERE id = ?1",
    )?;
    for (id, attempts_made, max_attempts, lease_expired_at, claimed_at) in expired {
        record.execute(params![
            id,
            attempts_made,
            claimed_at.unwrap_or(lease_expired_at),
            lease_expired_at,
            LOST_OUTCOME,
            "the worker's lease expired before the attempt reported back \
             (the host stopped, or the attempt outlived its lease)",
        ])?;
        let next = if attempts_made >= max_attempts {
            tracing::warn!(delivery = %id, attempt = attempts_made,
                "the last attempt's lease expired; the delivery is dead");
            "dead"
        } else {
            tracing::warn!(delivery = %id, attempt = attempts_made,
                "an attempt's lease expired; the delivery is due again");
            "pending"
        };
        release.execute(params![id, next])?;
    }
    Ok(())
}
