//! Reads on PostgreSQL: deliveries, events, and the operators' statistics.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::{Row, types::ToSql};

use super::{limit_param, u32_of};
use crate::{
    ids::{DeliveryId, EventId, PluginName, SourceName, TenantId},
    store::{
        AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryState, EventInfo, LogLine,
        PluginStats, QueueStats, StoreError, StoredEvent,
    },
};

/// Listed deliveries when the filter names no limit.
const DEFAULT_LIST_LIMIT: usize = 100;

/// The columns [`delivery_from_row`] reads.
const DELIVERY_COLUMNS: &str = "id, plugin, source, event_id, tenant, state, attempts_made, \
     max_attempts, due_at_ms, ordering_key, note";

/// Parses a stored state name.
pub(super) fn parse_state(text: &str) -> Result<DeliveryState, StoreError> {
    Ok(match text {
        "pending" => DeliveryState::Pending,
        "running" => DeliveryState::Running,
        "succeeded" => DeliveryState::Succeeded,
        "dead" => DeliveryState::Dead,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown delivery state `{other}`"
            )));
        }
    })
}

fn delivery_from_row(row: &Row) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: DeliveryId::new(row.try_get::<_, String>(0)?),
        plugin: PluginName::new(row.try_get::<_, String>(1)?),
        source: SourceName::new(row.try_get::<_, String>(2)?),
        event_id: EventId::new(row.try_get::<_, String>(3)?),
        tenant: TenantId::new(row.try_get::<_, String>(4)?),
        state: parse_state(row.try_get(5)?)?,
        attempts_made: u32_of(row.try_get(6)?),
        max_attempts: u32_of(row.try_get(7)?),
        due_at_ms: row.try_get(8)?,
        ordering_key: row.try_get(9)?,
        note: row.try_get(10)?,
        attempts: Vec::new(),
    })
}

fn attempt_from_row(row: &Row) -> Result<AttemptRecord, StoreError> {
    let logs: String = row.try_get(5)?;
    let logs: Vec<LogLine> = serde_json::from_str(&logs)
        .map_err(|err| StoreError::Corrupt(format!("attempt logs are not valid JSON: {err}")))?;
    Ok(AttemptRecord {
        attempt: u32_of(row.try_get(0)?),
        started_at_ms: row.try_get(1)?,
        finished_at_ms: row.try_get(2)?,
        outcome: row.try_get(3)?,
        error: row.try_get(4)?,
        logs,
    })
}

/// A delivery with its attempts, read in one snapshot.
pub(super) async fn delivery(
    client: &mut deadpool_postgres::Object,
    id: &DeliveryId,
) -> Result<Option<DeliveryRecord>, StoreError> {
    // REPEATABLE READ: a completion committed between the two queries cannot show the new
    // state with the old attempt list.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"
        ))
        .await?;
    let Some(row) = tx.query_opt(&statement, &[&id.as_str()]).await? else {
        return Ok(None);
    };
    let mut record = delivery_from_row(&row)?;
    let statement = tx
        .prepare_cached(
            "SELECT attempt, started_at_ms, finished_at_ms, outcome, error, logs
             FROM attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .await?;
    record.attempts = tx
        .query(&statement, &[&id.as_str()])
        .await?
        .iter()
        .map(attempt_from_row)
        .collect::<Result<_, _>>()?;
    tx.commit().await?;
    Ok(Some(record))
}

/// Deliveries matching `filter`, newest first, attempts left empty.
pub(super) async fn deliveries(
    client: &impl GenericClient,
    filter: &DeliveryFilter,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let limit = limit_param(match filter.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n,
    });
    // Every filter is a parameter (NULL: match all), so one cached statement serves them all.
    let statement = client
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
             WHERE ($1::text IS NULL OR state = $1)
               AND ($2::text IS NULL OR plugin = $2)
               AND ($3::text IS NULL OR tenant = $3)
               AND ($4::text IS NULL OR event_id = $4)
               AND ($5::bigint IS NULL OR created_at_ms >= $5)
             ORDER BY created_at_ms DESC, id DESC
             LIMIT $6"
        ))
        .await?;
    let params: [&(dyn ToSql + Sync); 6] = [
        &filter.state.map(DeliveryState::as_str),
        &filter.plugin.as_ref().map(PluginName::as_str),
        &filter.tenant.as_ref().map(TenantId::as_str),
        &filter.event_id.as_ref().map(EventId::as_str),
        &filter.since_ms,
        &limit,
    ];
    client
        .query(&statement, &params)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

/// A stored event.
pub(super) async fn event(
    client: &impl GenericClient,
    source: &SourceName,
    id: &EventId,
) -> Result<Option<StoredEvent>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT source, id, kind, tenant, received_at_ms, payload
             FROM events WHERE source = $1 AND id = $2",
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&source.as_str(), &id.as_str()])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(StoredEvent {
        source: SourceName::new(row.try_get::<_, String>(0)?),
        id: EventId::new(row.try_get::<_, String>(1)?),
        kind: row.try_get(2)?,
        tenant: TenantId::new(row.try_get::<_, String>(3)?),
        received_at_ms: row.try_get(4)?,
        payload: row.try_get(5)?,
    }))
}

/// What is kept of an event, payload excluded.
pub(super) async fn event_info(
    client: &impl GenericClient,
    source: &SourceName,
    id: &EventId,
) -> Result<Option<EventInfo>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT source, id, kind, tenant, received_at_ms, payload_sha256,
                    octet_length(payload)::bigint, payload_dropped_at_ms
             FROM events WHERE source = $1 AND id = $2",
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&source.as_str(), &id.as_str()])
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(EventInfo {
        source: SourceName::new(row.try_get::<_, String>(0)?),
        id: EventId::new(row.try_get::<_, String>(1)?),
        kind: row.try_get(2)?,
        tenant: TenantId::new(row.try_get::<_, String>(3)?),
        received_at_ms: row.try_get(4)?,
        payload_sha256: row.try_get(5)?,
        payload_len: u64::try_from(row.try_get::<_, i64>(6)?).unwrap_or(0),
        payload_dropped_at_ms: row.try_get(7)?,
    }))
}

/// Number of stored events.
pub(super) async fn event_count(client: &impl GenericClient) -> Result<u64, StoreError> {
    let count: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Attempts per plugin since `since` by outcome, their 95th percentile duration (nearest
/// rank, as the SQLite store computes it), and the deliveries that went dead since then.
pub(super) async fn plugin_stats(
    client: &impl GenericClient,
    since: i64,
) -> Result<Vec<PluginStats>, StoreError> {
    let rows = client
        .query(
            "SELECT d.plugin,
                    count(*) FILTER (WHERE a.outcome = 'succeeded'),
                    count(*) FILTER (WHERE a.outcome <> 'succeeded'),
                    percentile_disc(0.95) WITHIN GROUP
                        (ORDER BY greatest(a.finished_at_ms - a.started_at_ms, 0))
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE a.finished_at_ms >= $1
             GROUP BY d.plugin",
            &[&since],
        )
        .await?;
    let mut stats: BTreeMap<String, PluginStats> = BTreeMap::new();
    for row in rows {
        let plugin: String = row.try_get(0)?;
        let entry = stats.entry(plugin.clone()).or_insert_with(|| fresh(plugin));
        entry.delivered = u64::try_from(row.try_get::<_, i64>(1)?).unwrap_or(0);
        entry.failed = u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0);
        entry.p95_ms = row.try_get(3)?;
    }
    let rows = client
        .query(
            "SELECT plugin, count(*) FROM deliveries
             WHERE state = 'dead' AND due_at_ms >= $1 GROUP BY plugin",
            &[&since],
        )
        .await?;
    for row in rows {
        let plugin: String = row.try_get(0)?;
        stats
            .entry(plugin.clone())
            .or_insert_with(|| fresh(plugin))
            .dead = u64::try_from(row.try_get::<_, i64>(1)?).unwrap_or(0);
    }
    Ok(stats.into_values().collect())
}

fn fresh(plugin: String) -> PluginStats {
    PluginStats {
        plugin: PluginName::new(plugin),
        delivered: 0,
        failed: 0,
        dead: 0,
        p95_ms: None,
    }
}

/// Pending and running counts and the age of the most overdue pending delivery at `now`.
pub(super) async fn queue_stats(
    client: &impl GenericClient,
    now: i64,
) -> Result<QueueStats, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state = 'pending'),
                    count(*) FILTER (WHERE state = 'running'),
                    min(due_at_ms) FILTER (WHERE state = 'pending')
             FROM deliveries WHERE state IN ('pending', 'running')",
        )
        .await?;
    let row = client.query_one(&statement, &[]).await?;
    let oldest: Option<i64> = row.try_get(2)?;
    Ok(QueueStats {
        pending: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
        running: u64::try_from(row.try_get::<_, i64>(1)?).unwrap_or(0),
        oldest_due_age_ms: oldest.map_or(0, |due| (now - due).max(0)),
    })
}
