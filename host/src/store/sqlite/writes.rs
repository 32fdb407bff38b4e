//! The write operations, as run by the writer thread inside a command's savepoint.
//!
//! Each function either completes its whole change or returns an error, after which the writer
//! rolls the savepoint back: a `LeaseLost` renew or complete therefore writes nothing.
//! Lease fencing lives in the UPDATE's WHERE clause (`lease_token = ? AND state = 'running'`),
//! never in a read-then-write.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    claim::claim,
    maintenance,
    rows::duration_ms,
    writer::{ConnectionSettings, Op, Output},
};
use crate::{
    ids::{DeliveryId, LeaseToken, PluginName, now_ms},
    store::{
        AttemptRecord, Completion, IngestOutcome, KvScope, NewEvent, StoreError, StoreOptions,
    },
};

/// Runs one write.
pub(super) fn apply(
    conn: &Connection,
    op: Op,
    options: &StoreOptions,
) -> Result<Output, StoreError> {
    match op {
        Op::Ingest(prepared) => ingest(conn, prepared).map(Output::Ingested),
        Op::Claim(request) => claim(conn, &request).map(Output::Claimed),
        Op::Renew { id, token, lease } => renew(conn, &id, &token, lease).map(|()| Output::Done),
        Op::Complete {
            id,
            token,
            completion,
            attempt,
        } => complete(conn, &id, &token, &completion, &attempt, options).map(|()| Output::Done),
        Op::Defer {
            id,
            token,
            at_ms,
            note,
        } => defer(conn, &id, &token, at_ms, &note).map(|()| Output::Done),
        Op::Replay { id } => maintenance::replay(conn, &id).map(|()| Output::Done),
        Op::ReplayDead {
            filter,
            pacing,
            limit,
        } => maintenance::replay_dead(conn, &filter, pacing, limit).map(Output::Ids),
        Op::Cancel { id } => maintenance::cancel(conn, &id, options).map(|()| Output::Done),
        Op::PurgeDead { filter, limit } => {
            maintenance::purge_dead(conn, &filter, limit, options).map(Output::Removed)
        }
        Op::CollectGarbage { cutoffs, limit } => {
            maintenance::collect_garbage(conn, cutoffs, limit).map(Output::Removed)
        }
        Op::EraseTenantBatch { tenant, limit } => {
            maintenance::erase_tenant_batch(conn, &tenant, limit).map(Output::Removed)
        }
        Op::EraseEvents { keys } => maintenance::erase_events(conn, &keys).map(Output::Removed),
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
        Op::Credentials(op) => super::credentials::apply(conn, *op).map(Output::Count),
    }
}

/// An ingest as the writer runs it: the event, its payload's hash, and each delivery with its
/// ordering key already resolved (both computed by the caller, off the writer thread).
#[derive(Debug)]
pub(super) struct PreparedIngest {
    pub event: NewEvent,
    pub payload_sha256: String,
    /// (plugin, max_attempts, ordering key value)
    pub deliveries: Vec<(PluginName, u32, Option<String>)>,
    /// Store the payload dropped at once (no subscriber, and payloads are not kept).
    pub drop_payload: bool,
}

pub(super) fn ingest(
    conn: &Connection,
    prepared: PreparedIngest,
) -> Result<IngestOutcome, StoreError> {
    let PreparedIngest {
        event,
        payload_sha256,
        deliveries,
        drop_payload,
    } = prepared;
    let now = now_ms();
    let (payload, dropped_at): (&[u8], Option<i64>) = if drop_payload {
        (&[], Some(now))
    } else {
        (&event.payload, None)
    };
    // ON CONFLICT DO NOTHING instead of a failing INSERT: a duplicate is an ordinary answer,
    // not an error, and never disturbs the batch it shares a transaction with. Whether the row
    // went in is the statement's change count (0 when the conflict skipped it), not a
    // `RETURNING` row: SQLite buffers RETURNING output in a temporary B-tree it creates and
    // drops per statement; without it this INSERT takes ~27k instead of ~44k instructions per
    // webhook (callgrind, durable ingest benchmark).
    let inserted =
        conn.prepare_cached(
            "INSERT INTO events (source, id, kind, tenant, received_at_ms, payload,
                                 payload_sha256, payload_dropped_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (source, id) DO NOTHING",
        )?
        .execute(params![
            event.source.as_str(),
            event.id.as_str(),
            event.kind,
            event.tenant.as_str(),
            event.received_at_ms,
            payload,
            payload_sha256,
            dropped_at,
        ])? > 0;
    if !inserted {
        return Ok(IngestOutcome::Duplicate);
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (id, source, event_id, plugin, tenant, state, attempts_made,
                                 max_attempts, attempt_budget, due_at_ms, lease_token,
                                 created_at_ms, ordering_key)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?7, NULL, ?7, ?8)",
    )?;
    let mut ids = Vec::with_capacity(deliveries.len());
    for (plugin, max_attempts, ordering_key) in deliveries {
        let id = DeliveryId::generate();
        insert.execute(params![
            id.as_str(),
            event.source.as_str(),
            event.id.as_str(),
            plugin.as_str(),
            event.tenant.as_str(),
            max_attempts,
            now,
            ordering_key,
        ])?;
        ids.push(id);
    }
    Ok(IngestOutcome::Inserted { deliveries: ids })
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
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let now = now_ms();
    // Finished deliveries keep their end time in `due_at_ms`; a retry keeps its next due time.
    let (state, due_at_ms) = match completion {
        Completion::Succeeded => ("succeeded", now),
        Completion::Retry { at_ms } => ("pending", *at_ms),
        Completion::Dead => ("dead", now),
    };
    let event: Option<(String, String)> = conn
        .prepare_cached(
            "UPDATE deliveries
             SET state = ?3, due_at_ms = ?4, lease_token = NULL, claimed_at_ms = NULL, note = NULL
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
             RETURNING source, event_id",
        )?
        .query_row(
            params![id.as_str(), token.as_str(), state, due_at_ms],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((source, event_id)) = event else {
        return Err(StoreError::LeaseLost(id.clone()));
    };
    if *completion == Completion::Succeeded && !options.keep_payloads {
        drop_payload_if_done(conn, &source, &event_id, now)?;
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

/// Data minimisation: drops the event's payload if every delivery of it succeeded, keeping
/// source, id, kind, tenant, time and the payload's hash (what dedup and an audit need).
pub(super) fn drop_payload_if_done(
    conn: &Connection,
    source: &str,
    event_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE events SET payload = X'', payload_dropped_at_ms = ?3
         WHERE source = ?1 AND id = ?2 AND payload_dropped_at_ms IS NULL
           AND NOT EXISTS (SELECT 1 FROM deliveries
                           WHERE source = ?1 AND event_id = ?2 AND state != 'succeeded')",
    )?
    .execute(params![source, event_id, now])?;
    Ok(())
}

/// Puts a running delivery back to pending at `at_ms` without spending its attempt.
fn defer(
    conn: &Connection,
    id: &DeliveryId,
    token: &LeaseToken,
    at_ms: i64,
    note: &str,
) -> Result<(), StoreError> {
    // The claim counted an attempt; taking it back is what "without spending" means. The
    // attempt number is then reused by the next claim, so no attempt row is written here.
    let updated = conn
        .prepare_cached(
            "UPDATE deliveries
             SET state = 'pending', due_at_ms = ?3, lease_token = NULL, claimed_at_ms = NULL,
                 attempts_made = max(attempts_made - 1, 0), note = ?4
             WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )?
        .execute(params![id.as_str(), token.as_str(), at_ms, note])?;
    if updated == 0 {
        return Err(StoreError::LeaseLost(id.clone()));
    }
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
