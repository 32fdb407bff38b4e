//! The write operations, as run by the writer thread inside a command's savepoint.
//!
//! Each function either completes its whole change or returns an error, after which the writer
//! rolls the savepoint back: a `LeaseLost` renew or complete therefore writes nothing.
//! Lease fencing lives in the UPDATE's WHERE clause (`lease_token = ? AND state = 'running'`),
//! never in a read-then-write.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    rows::{duration_ms, event_from_row},
    writer::{ConnectionSettings, Op, Output},
};
use crate::{
    ids::{DeliveryId, LeaseToken, PluginName, now_ms},
    store::{
        AttemptRecord, Claimed, Completion, IngestOutcome, KvScope, NewDelivery, NewEvent,
        StoreError,
    },
};

/// Outcome recorded for an attempt whose worker's lease ran out before it reported back.
pub(super) const LOST_OUTCOME: &str = "lost";

/// Most expired leases one claim reclaims, so that a claim after a long outage stays short.
const REAP_BATCH: i64 = 512;

/// Runs one write.
pub(super) fn apply(conn: &Connection, op: Op) -> Result<Output, StoreError> {
    match op {
        Op::Ingest { event, deliveries } => ingest(conn, event, deliveries).map(Output::Ingested),
        Op::Claim { limit, lease } => claim(conn, limit, lease).map(Output::Claimed),
        Op::Renew { id, token, lease } => renew(conn, &id, &token, lease).map(|()| Output::Done),
        Op::Complete {
            id,
            token,
            completion,
            attempt,
        } => complete(conn, &id, &token, &completion, &attempt).map(|()| Output::Done),
        Op::KvSet {
            scope,
            key,
            value,
            expires_at_ms,
        } => kv_set(conn, &scope, &key, &value, expires_at_ms).map(|()| Output::Done),
        Op::KvDelete { scope, key } => kv_delete(conn, &scope, &key).map(|()| Output::Done),
        Op::KvCompareAndSwap {
            scope,
            key,
            expected,
            desired,
            expires_at_ms,
        } => kv_compare_and_swap(
            conn,
            &scope,
            &key,
            expected.as_deref(),
            desired.as_deref(),
            expires_at_ms,
        )
        .map(Output::Swapped),
        Op::Settings => settings(conn).map(Output::Settings),
        Op::Installations(op) => super::installations::apply(conn, *op).map(Output::Installations),
    }
}

pub(super) fn ingest(
    conn: &Connection,
    event: NewEvent,
    deliveries: Vec<NewDelivery>,
) -> Result<IngestOutcome, StoreError> {
    // ON CONFLICT DO NOTHING instead of a failing INSERT: a duplicate is an ordinary answer,
    // not an error, and never disturbs the batch it shares a transaction with.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (source, id, kind, tenant, received_at_ms, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (source, id) DO NOTHING
             RETURNING 1",
        )?
        .query_row(
            params![
                event.source.as_str(),
                event.id.as_str(),
                event.kind,
                event.tenant.as_str(),
                event.received_at_ms,
                event.payload,
            ],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !inserted {
        return Ok(IngestOutcome::Duplicate);
    }
    let now = now_ms();
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (id, source, event_id, plugin, tenant, state, attempts_made,
                                 max_attempts, due_at_ms, lease_token, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, NULL, ?7)",
    )?;
    let mut ids = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let id = DeliveryId::generate();
        insert.execute(params![
            id.as_str(),
            event.source.as_str(),
            event.id.as_str(),
            delivery.plugin.as_str(),
            event.tenant.as_str(),
            delivery.max_attempts,
            now,
        ])?;
        ids.push(id);
    }
    Ok(IngestOutcome::Inserted { deliveries: ids })
}

fn claim(conn: &Connection, limit: usize, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = now_ms();
    reap_expired_leases(conn, now)?;

    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut due = conn.prepare_cached(
        "SELECT d.id, d.plugin, d.attempts_made, d.max_attempts,
                e.source, e.id, e.kind, e.tenant, e.received_at_ms, e.payload
         FROM deliveries d
         JOIN events e ON e.source = d.source AND e.id = d.event_id
         WHERE d.state = 'pending' AND d.due_at_ms <= ?1
         ORDER BY d.due_at_ms, d.created_at_ms, d.id
         LIMIT ?2",
    )?;
    let candidates = due
        .query_map(params![now, limit], |row| {
            Ok((
                DeliveryId::new(row.get::<_, String>(0)?),
                PluginName::new(row.get::<_, String>(1)?),
                row.get::<_, u32>(2)?,
                row.get::<_, u32>(3)?,
                event_from_row(row, 4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;

    let expires = now.saturating_add(duration_ms(lease));
    let mut take = conn.prepare_cached(
        "UPDATE deliveries
         SET state = 'running', lease_token = ?2, due_at_ms = ?3, claimed_at_ms = ?4,
             attempts_made = attempts_made + 1
         WHERE id = ?1 AND state = 'pending'",
    )?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for (delivery, plugin, attempts_made, max_attempts, event) in candidates {
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
    Ok(claimed)
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

fn renew(
    conn: &Connection,
    id: &DeliveryId,
    token: &LeaseToken,
    lease: Duration,
) -> Result<(), StoreError> {
    let expires = now_ms().saturating_add(duration_ms(lease));
    let updated = conn
        .prepare_cached(
            "UPDATE deliveries SET due_at_ms = ?3
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )?
        .execute(params![id.as_str(), token.as_str(), expires])?;
    if updated == 0 {
        return Err(StoreError::LeaseLost(id.clone()));
    }
    Ok(())
}

fn complete(
    conn: &Connection,
    id: &DeliveryId,
    token: &LeaseToken,
    completion: &Completion,
    attempt: &AttemptRecord,
) -> Result<(), StoreError> {
    let now = now_ms();
    // Finished deliveries keep their end time in `due_at_ms`; a retry keeps its next due time.
    let (state, due_at_ms) = match completion {
        Completion::Succeeded => ("succeeded", now),
        Completion::Retry { at_ms } => ("pending", *at_ms),
        Completion::Dead => ("dead", now),
    };
    let updated = conn
        .prepare_cached(
            "UPDATE deliveries
             SET state = ?3, due_at_ms = ?4, lease_token = NULL, claimed_at_ms = NULL
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )?
        .execute(params![id.as_str(), token.as_str(), state, due_at_ms])?;
    if updated == 0 {
        return Err(StoreError::LeaseLost(id.clone()));
    }
    let logs = serde_json::to_string(&attempt.logs)
        .map_err(|err| StoreError::Corrupt(format!("cannot encode attempt logs: {err}")))?;
    conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, started_at_ms, finished_at_ms, outcome,
                               error, logs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id.as_str(),
        attempt.attempt,
        attempt.started_at_ms,
        attempt.finished_at_ms,
        attempt.outcome,
        attempt.error,
        logs,
    ])?;
    Ok(())
}

/// Deletes the scope's expired values, so that they neither count against its quota nor sit on
/// disk. Runs with every kv write; the scan is bounded by the scope's size cap.
fn sweep_expired(conn: &Connection, scope: &KvScope, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM kv
         WHERE plugin = ?1 AND tenant = ?2 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?3",
    )?
    .execute(params![scope.plugin.as_str(), scope.tenant.as_str(), now])?;
    Ok(())
}

fn upsert(
    conn: &Connection,
    scope: &KvScope,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO kv (plugin, tenant, key, value, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (plugin, tenant, key)
         DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
    )?
    .execute(params![
        scope.plugin.as_str(),
        scope.tenant.as_str(),
        key,
        value,
        expires_at_ms
    ])?;
    Ok(())
}

fn kv_set(
    conn: &Connection,
    scope: &KvScope,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    sweep_expired(conn, scope, now_ms())?;
    upsert(conn, scope, key, value, expires_at_ms)
}

fn kv_delete(conn: &Connection, scope: &KvScope, key: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM kv WHERE plugin = ?1 AND tenant = ?2 AND key = ?3")?
        .execute(params![scope.plugin.as_str(), scope.tenant.as_str(), key])?;
    Ok(())
}

fn kv_compare_and_swap(
    conn: &Connection,
    scope: &KvScope,
    key: &str,
    expected: Option<&[u8]>,
    desired: Option<&[u8]>,
    expires_at_ms: Option<i64>,
) -> Result<bool, StoreError> {
    // After the sweep an expired value is gone, so "current" is the unexpired value or none.
    sweep_expired(conn, scope, now_ms())?;
    let current: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM kv WHERE plugin = ?1 AND tenant = ?2 AND key = ?3")?
        .query_row(
            params![scope.plugin.as_str(), scope.tenant.as_str(), key],
            |row| row.get(0),
        )
        .optional()?;
    if current.as_deref() != expected {
        return Ok(false);
    }
    match desired {
        Some(value) => upsert(conn, scope, key, value, expires_at_ms)?,
        None => kv_delete(conn, scope, key)?,
    }
    Ok(true)
}

fn settings(conn: &Connection) -> Result<ConnectionSettings, StoreError> {
    Ok(ConnectionSettings {
        journal_mode: conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
        synchronous: conn.pragma_query_value(None, "synchronous", |r| r.get(0))?,
        secure_delete: conn.pragma_query_value(None, "secure_delete", |r| r.get(0))?,
        foreign_keys: conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
    })
}
