//! Reads: a small pool of read-only connections used from `spawn_blocking`.
//!
//! Invariants:
//! - At most `size` reads run at once (a semaphore), each on its own connection, so readers
//!   never share a connection and never run on tokio's async worker threads.
//! - In WAL mode a reader sees the last committed state when its read transaction starts; the
//!   writer replies only after COMMIT, so a caller always reads its own completed writes.
//! - After `close`, reads fail with `Closed` and idle connections are dropped.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};
use tokio::sync::Semaphore;

use super::{
    rows::{DELIVERY_COLUMNS, attempt_from_row, delivery_from_row, event_from_row},
    schema::open_reader,
};
use crate::{
    ids::{DeliveryId, EventId, PluginName, SourceName, TenantId},
    store::{
        DeliveryFilter, DeliveryRecord, EventInfo, KvScope, PluginStats, QueueStats, StoreError,
        StoredEvent, payload_names_contact,
    },
};

/// Listed deliveries when the filter names no limit.
pub(super) const DEFAULT_LIST_LIMIT: usize = 100;

/// Read connections, opened on first use and reused.
pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// A pool of at most `size` connections to the database at `path`.
    pub(super) fn new(path: PathBuf, size: usize) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    /// Opens one connection now, so that `open` reports a database readers cannot use.
    pub(super) fn warm(&self) -> Result<(), StoreError> {
        let conn = open_reader(&self.path)?;
        self.give_back(conn);
        Ok(())
    }

    /// Runs `read` on a pooled connection on the blocking thread pool.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.take() {
                Some(conn) => conn,
                None => open_reader(&pool.path)?,
            };
            let result = read(&conn);
            pool.give_back(conn);
            result
        });
        match task.await {
            Ok(result) => result,
            // A panic in a read is a bug: let it surface in the caller as the panic it is.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Stops new reads and drops the idle connections.
    pub(super) fn close(&self) {
        self.permits.close();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn take(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, conn: Connection) {
        if !self.permits.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

/// A delivery with its attempts, read in one snapshot.
pub(super) fn delivery(
    conn: &Connection,
    id: &DeliveryId,
) -> Result<Option<DeliveryRecord>, StoreError> {
    // One read transaction: a completion committed between the two queries cannot show the new
    // state with the old attempt list.
    let tx = conn.unchecked_transaction()?;
    let found = tx
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
        ))?
        .query_row(params![id.as_str()], delivery_from_row)
        .optional()?;
    let Some(mut record) = found else {
        return Ok(None);
    };
    record.attempts = tx
        .prepare_cached(
            "SELECT attempt, started_at_ms, finished_at_ms, outcome, error, logs
             FROM attempts WHERE delivery_id = ?1 ORDER BY attempt",
        )?
        .query_map(params![id.as_str()], attempt_from_row)?
        .collect::<Result<_, _>>()?;
    tx.finish()?;
    Ok(Some(record))
}

/// Deliveries matching `filter`, newest first, attempts left empty.
pub(super) fn deliveries(
    conn: &Connection,
    filter: &DeliveryFilter,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut require = |column: &str, value: &str| {
        sql.push_str(&format!(" AND {column} = ?{}", args.len() + 1));
        args.push(Value::Text(value.to_owned()));
    };
    if let Some(state) = filter.state {
        require("state", state.as_str());
    }
    if let Some(plugin) = &filter.plugin {
        require("plugin", plugin.as_str());
    }
    if let Some(tenant) = &filter.tenant {
        require("tenant", tenant.as_str());
    }
    if let Some(event_id) = &filter.event_id {
        require("event_id", event_id.as_str());
    }
    if let Some(since) = filter.since_ms {
        sql.push_str(&format!(" AND created_at_ms >= ?{}", args.len() + 1));
        args.push(Value::Integer(since));
    }
    let limit = match filter.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n,
    };
    // UUIDv7 ids order by creation within the same millisecond.
    sql.push_str(&format!(
        " ORDER BY created_at_ms DESC, id DESC LIMIT ?{}",
        args.len() + 1
    ));
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let records = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), delivery_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(records)
}

/// A stored event.
pub(super) fn event(
    conn: &Connection,
    source: &SourceName,
    id: &EventId,
) -> Result<Option<StoredEvent>, StoreError> {
    let event = conn
        .prepare_cached(
            "SELECT source, id, kind, tenant, received_at_ms, payload
             FROM events WHERE source = ?1 AND id = ?2",
        )?
        .query_row(params![source.as_str(), id.as_str()], |row| {
            event_from_row(row, 0)
        })
        .optional()?;
    Ok(event)
}

/// What is kept of an event, payload excluded.
pub(super) fn event_info(
    conn: &Connection,
    source: &SourceName,
    id: &EventId,
) -> Result<Option<EventInfo>, StoreError> {
    let info = conn
        .prepare_cached(
            "SELECT source, id, kind, tenant, received_at_ms, payload_sha256, length(payload),
                    payload_dropped_at_ms
             FROM events WHERE source = ?1 AND id = ?2",
        )?
        .query_row(params![source.as_str(), id.as_str()], |row| {
            Ok(EventInfo {
                source: SourceName::new(row.get::<_, String>(0)?),
                id: EventId::new(row.get::<_, String>(1)?),
                kind: row.get(2)?,
                tenant: TenantId::new(row.get::<_, String>(3)?),
                received_at_ms: row.get(4)?,
                payload_sha256: row.get(5)?,
                payload_len: row.get::<_, i64>(6)?.try_into().unwrap_or(0),
                payload_dropped_at_ms: row.get(7)?,
            })
        })
        .optional()?;
    Ok(info)
}

/// An event's key: (source, id).
pub(super) type EventKey = (String, String);

/// One page of a tenant's events after `after` (source, id order): the keys of those whose
/// payload names `contact`, and the last key seen (None when the scan is done).
pub(super) fn events_naming_contact(
    conn: &Connection,
    tenant: &TenantId,
    contact: &str,
    after: Option<EventKey>,
    page: usize,
) -> Result<(Vec<EventKey>, Option<EventKey>), StoreError> {
    let (after_source, after_id) = after.unwrap_or_default();
    let rows: Vec<(String, String, String, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT source, id, kind, payload FROM events
             WHERE tenant = ?1 AND (source, id) > (?2, ?3)
             ORDER BY source, id
             LIMIT ?4",
        )?
        .query_map(
            params![
                tenant.as_str(),
                after_source,
                after_id,
                i64::try_from(page).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?
        .collect::<Result<_, _>>()?;
    let last = if rows.len() < page {
        None
    } else {
        rows.last().map(|(s, i, _, _)| (s.clone(), i.clone()))
    };
    let matching = rows
        .into_iter()
        .filter(|(_, _, kind, payload)| payload_names_contact(kind, payload, contact))
        .map(|(s, i, _, _)| (s, i))
        .collect();
    Ok((matching, last))
}

/// Number of stored events.
pub(super) fn event_count(conn: &Connection) -> Result<u64, StoreError> {
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM events")?
        .query_row([], |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Attempts per plugin since `since` by outcome, their 95th percentile duration, and the
/// deliveries that went dead since then (a dead delivery's `due_at_ms` is when it died).
pub(super) fn plugin_stats(conn: &Connection, since: i64) -> Result<Vec<PluginStats>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT d.plugin, a.outcome, a.finished_at_ms - a.started_at_ms
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.finished_at_ms >= ?1",
    )?;
    let mut rows = statement.query([since])?;
    let mut stats: BTreeMap<String, (PluginStats, Vec<i64>)> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let plugin: String = row.get(0)?;
        let outcome: String = row.get(1)?;
        let took: i64 = row.get(2)?;
        let (s, durations) = stats.entry(plugin.clone()).or_insert_with(|| fresh(plugin));
        if outcome == "succeeded" {
            s.delivered += 1;
        } else {
            s.failed += 1;
        }
        durations.push(took.max(0));
    }
    let mut dead = conn.prepare_cached(
        "SELECT plugin, count(*) FROM deliveries
         WHERE state = 'dead' AND due_at_ms >= ?1 GROUP BY plugin",
    )?;
    let mut rows = dead.query([since])?;
    while let Some(row) = rows.next()? {
        let plugin: String = row.get(0)?;
        let count: i64 = row.get(1)?;
        stats
            .entry(plugin.clone())
            .or_insert_with(|| fresh(plugin))
            .0
            .dead = u64::try_from(count).unwrap_or(0);
    }
    Ok(stats
        .into_values()
        .map(|(mut s, mut durations)| {
            durations.sort_unstable();
            // Nearest rank: the smallest value with at least 95% of the values at or below it.
            let rank = (durations.len() * 95).div_ceil(100);
            s.p95_ms = rank.checked_sub(1).and_then(|i| durations.get(i)).copied();
            s
        })
        .collect())
}

fn fresh(plugin: String) -> (PluginStats, Vec<i64>) {
    (
        PluginStats {
            plugin: PluginName::new(plugin),
            delivered: 0,
            failed: 0,
            dead: 0,
            p95_ms: None,
        },
        Vec::new(),
    )
}

/// Pending and running counts and the age of the most overdue pending delivery; each part is a
/// range over the `(state, due_at_ms)` index.
pub(super) fn queue_stats(conn: &Connection, now: i64) -> Result<QueueStats, StoreError> {
    let count = |state: &str| -> Result<u64, StoreError> {
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM deliveries WHERE state = ?1")?
            .query_row([state], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(due_at_ms) FROM deliveries WHERE state = 'pending'")?
        .query_row([], |row| row.get(0))?;
    Ok(QueueStats {
        pending: count("pending")?,
        running: count("running")?,
        oldest_due_age_ms: oldest.map_or(0, |due| (now - due).max(0)),
    })
}

/// The value under `key` unless it expired at or before `now`.
pub(super) fn kv_get(
    conn: &Connection,
    scope: &KvScope,
    key: &str,
    now: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let value = conn
        .prepare_cached(
            "SELECT value FROM kv
             WHERE plugin = ?1 AND tenant = ?2 AND key = ?3
               AND (expires_at_ms IS NULL OR expires_at_ms > ?4)",
        )?
        .query_row(
            params![scope.plugin.as_str(), scope.tenant.as_str(), key, now],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value)
}

/// Bytes of keys (UTF-8) + values of the scope's unexpired entries.
pub(super) fn kv_usage(conn: &Connection, scope: &KvScope, now: i64) -> Result<u64, StoreError> {
    // `length()` of TEXT counts characters; the cast makes it count bytes.
    let used: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0) FROM kv
             WHERE plugin = ?1 AND tenant = ?2
               AND (expires_at_ms IS NULL OR expires_at_ms > ?3)",
        )?
        .query_row(
            params![scope.plugin.as_str(), scope.tenant.as_str(), now],
            |row| row.get(0),
        )?;
    Ok(u64::try_from(used).unwrap_or(0))
}

/// Proves the database answers a query.
pub(super) fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("SELECT 1")?
        .query_row([], |row| row.get::<_, i64>(0))?;
    Ok(())
}
