//! Operators' writes and the retention collector on SQLite: replay, cancel, purge, garbage
//! collection and erasure. Each runs on the writer thread inside one command's savepoint and
//! touches at most `limit` rows of each kind, so it never holds the writer for long (callers
//! loop until a batch comes back short).
//!
//! Deletions go child-first (attempts, deliveries, events) rather than through `ON DELETE
//! CASCADE`, so every batch can report exactly what it removed.

use rusqlite::{Connection, OptionalExtension, params};

use super::{rows::parse_state, writes::drop_payload_if_done};
use crate::{
    ids::{DeliveryId, TenantId, now_ms},
    store::{
        DeliveryState, Pacing, PurgeFilter, Removed, ReplayFilter, RetentionCutoffs, StoreError,
        StoreOptions,
    },
};

/// What a replay leaves in `note`, so `deliveries show` tells why a finished delivery ran again.
const REPLAYED: &str = "replayed by an operator";

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn replay(conn: &Connection, id: &DeliveryId) -> Result<(), StoreError> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT d.state, e.payload_dropped_at_ms
             FROM deliveries d JOIN events e ON e.source = d.source AND e.id = d.event_id
             WHERE d.id = ?1",
        )?
        .query_row(params![id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((state, dropped)) = row else {
        return Err(StoreError::NotFound(id.clone()));
    };
    match parse_state(&state) {
        Some(DeliveryState::Dead | DeliveryState::Succeeded) => {}
        Some(other) => {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state: other.as_str(),
                hint: "only dead or succeeded deliveries can be replayed",
            });
        }
        None => {
            return Err(StoreError::Corrupt(format!(
                "unknown delivery state `{state}`"
            )));
        }
    }
    if dropped.is_some() {
        return Err(StoreError::PayloadDropped(id.clone()));
    }
    // A fresh attempt budget on top of the attempts already made: the history stays, and the
    // next attempt numbers continue after it.
    conn.prepare_cached(
        "UPDATE deliveries
         SET state = 'pending', due_at_ms = ?2, max_attempts = attempts_made + attempt_budget,
             note = ?3
         WHERE id = ?1",
    )?
    .execute(params![id.as_str(), now_ms(), REPLAYED])?;
    Ok(())
}

pub(super) fn replay_dead(
    conn: &Connection,
    filter: &ReplayFilter,
    pacing: Pacing,
    limit: usize,
) -> Result<Vec<DeliveryId>, StoreError> {
    // Dead deliveries keep the time they died in `due_at_ms`. A dead delivery's payload is never
    // dropped (not every delivery of its event succeeded), so no payload check is needed.
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM deliveries
             WHERE state = 'dead'
               AND (?1 IS NULL OR plugin = ?1)
               AND (?2 IS NULL OR tenant = ?2)
               AND (?3 IS NULL OR due_at_ms >= ?3)
             ORDER BY due_at_ms, rowid
             LIMIT ?4",
        )?
        .query_map(
            params![
                filter.plugin.as_ref().map(|p| p.as_str()),
                filter.tenant.as_ref().map(|t| t.as_str()),
                filter.since_ms,
                limit_param(limit),
            ],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut revive = conn.prepare_cached(
        "UPDATE deliveries
         SET state = 'pending', due_at_ms = ?2, max_attempts = attempts_made + attempt_budget,
             note = ?3
         WHERE id = ?1 AND state = 'dead'",
    )?;
    let mut due = pacing.first_due_ms;
    for id in &ids {
        revive.execute(params![id, due, REPLAYED])?;
        due = due.saturating_add(pacing.spacing_ms);
    }
    Ok(ids.into_iter().map(DeliveryId::new).collect())
}

pub(super) fn cancel(
    conn: &Connection,
    id: &DeliveryId,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT state, source, event_id FROM deliveries WHERE id = ?1")?
        .query_row(params![id.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((state, source, event_id)) = row else {
        return Err(StoreError::NotFound(id.clone()));
    };
    if parse_state(&state) != Some(DeliveryState::Pending) {
        return Err(StoreError::WrongState {
            id: id.clone(),
            state: parse_state(&state).map_or("unknown", DeliveryState::as_str),
            hint: "only pending deliveries can be cancelled",
        });
    }
    delete_deliveries(conn, &[id.as_str().to_owned()])?;
    if !options.keep_payloads {
        // The cancelled one may have been the last that had not succeeded.
        drop_payload_if_done(conn, &source, &event_id, now_ms())?;
    }
    Ok(())
}

pub(super) fn purge_dead(
    conn: &Connection,
    filter: &PurgeFilter,
    limit: usize,
    options: &StoreOptions,
) -> Result<Removed, StoreError> {
    let rows: Vec<(String, String, String)> = conn
        .prepare_cached(
            "SELECT id, source, event_id FROM deliveries
             WHERE state = 'dead' AND (?1 IS NULL OR plugin = ?1) AND (?2 IS NULL OR due_at_ms < ?2)
             ORDER BY due_at_ms
             LIMIT ?3",
        )?
        .query_map(
            params![
                filter.plugin.as_ref().map(|p| p.as_str()),
                filter.died_before_ms,
                limit_param(limit)
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    let ids: Vec<String> = rows.iter().map(|(id, _, _)| id.clone()).collect();
    let removed = delete_deliveries(conn, &ids)?;
    if !options.keep_payloads {
        let now = now_ms();
        for (_, source, event_id) in &rows {
            drop_payload_if_done(conn, source, event_id, now)?;
        }
    }
    Ok(removed)
}

pub(super) fn collect_garbage(
    conn: &Connection,
    cutoffs: RetentionCutoffs,
    limit: usize,
) -> Result<Removed, StoreError> {
    let dead: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM deliveries WHERE state = 'dead' AND due_at_ms < ?1
             ORDER BY due_at_ms LIMIT ?2",
        )?
        .query_map(params![cutoffs.dead_before_ms, limit_param(limit)], |row| {
            row.get(0)
        })?
        .collect::<Result<_, _>>()?;
    let mut removed = delete_deliveries(conn, &dead)?;
    // An event goes only when nothing of it is left to run or to inspect: every delivery
    // succeeded (or it had none). Pending, running and dead ones keep it.
    let events: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT e.source, e.id FROM events e
             WHERE e.received_at_ms < ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.source = e.source AND d.event_id = e.id
                                 AND d.state != 'succeeded')
             ORDER BY e.received_at_ms
             LIMIT ?2",
        )?
        .query_map(
            params![cutoffs.events_before_ms, limit_param(limit)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    removed.add(erase_events(conn, &events)?);
    Ok(removed)
}

pub(super) fn erase_tenant_batch(
    conn: &Connection,
    tenant: &TenantId,
    limit: usize,
) -> Result<Removed, StoreError> {
    let events: Vec<(String, String)> = conn
        .prepare_cached("SELECT source, id FROM events WHERE tenant = ?1 LIMIT ?2")?
        .query_map(params![tenant.as_str(), limit_param(limit)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    if !events.is_empty() {
        return erase_events(conn, &events);
    }
    let kv_entries = conn
        .prepare_cached(
            "DELETE FROM kv WHERE (plugin, tenant, key) IN
                 (SELECT plugin, tenant, key FROM kv WHERE tenant = ?1 LIMIT ?2)",
        )?
        .execute(params![tenant.as_str(), limit_param(limit)])?;
    Ok(Removed {
        kv_entries: kv_entries as u64,
        ..Removed::default()
    })
}

/// Deletes these events with their deliveries and attempts.
pub(super) fn erase_events(
    conn: &Connection,
    keys: &[(String, String)],
) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    let mut deliveries_of =
        conn.prepare_cached("SELECT id FROM deliveries WHERE source = ?1 AND event_id = ?2")?;
    let mut delete_event =
        conn.prepare_cached("DELETE FROM events WHERE source = ?1 AND id = ?2")?;
    for (source, id) in keys {
        let ids: Vec<String> = deliveries_of
            .query_map(params![source, id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        removed.add(delete_deliveries(conn, &ids)?);
        removed.events += delete_event.execute(params![source, id])? as u64;
    }
    Ok(removed)
}

/// Deletes these deliveries and their attempts.
fn delete_deliveries(conn: &Connection, ids: &[String]) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    let mut attempts = conn.prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")?;
    let mut delivery = conn.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?;
    for id in ids {
        removed.attempts += attempts.execute(params![id])? as u64;
        removed.deliveries += delivery.execute(params![id])? as u64;
    }
    Ok(removed)
}
