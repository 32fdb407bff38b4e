//! Operators' writes and the retention collector on PostgreSQL: replay, cancel, purge, garbage
//! collection and erasure. Each batch is one transaction touching at most `limit` rows of each
//! kind; callers loop until a batch comes back short.
//!
//! Invariants:
//! - Rows an operation changes are locked first (`FOR UPDATE`, or `SKIP LOCKED` for batches),
//!   so a replica claiming or completing the same delivery waits or is skipped, never raced.
//! - Retention runs on one replica at a time: a pass takes a transaction-level advisory lock
//!   with `pg_try_advisory_xact_lock` and, when another replica holds it, removes nothing (that
//!   replica is doing the work).
//! - Deletions go child-first (attempts, deliveries, events), so each batch reports exactly
//!   what it removed.

use deadpool_postgres::GenericClient;

use super::{limit_param, reads::parse_state, writes::drop_payload_if_done};
use crate::{
    ids::DeliveryId,
    store::{
        DeliveryState, EraseRequest, Pacing, PurgeFilter, Removed, ReplayFilter, RetentionCutoffs,
        StoreError, StoreOptions, payload_names_contact,
    },
};

/// What a replay leaves in `note`, so `deliveries show` tells why a finished delivery ran again.
const REPLAYED: &str = "replayed by an operator";

/// Events (or kv entries) one erase transaction deletes, and events one contact scan reads.
const ERASE_BATCH: i64 = 256;

pub(super) async fn replay(
    client: &mut deadpool_postgres::Object,
    id: &DeliveryId,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT d.state, e.payload_dropped_at_ms
             FROM deliveries d JOIN events e ON e.source = d.source AND e.id = d.event_id
             WHERE d.id = $1
             FOR UPDATE OF d",
            &[&id.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(id.clone()));
    };
    match parse_state(row.try_get(0)?)? {
        DeliveryState::Dead | DeliveryState::Succeeded => {}
        other => {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state: other.as_str(),
                hint: "only dead or succeeded deliveries can be replayed",
            });
        }
    }
    if row.try_get::<_, Option<i64>>(1)?.is_some() {
        return Err(StoreError::PayloadDropped(id.clone()));
    }
    // A fresh attempt budget on top of the attempts already made.
    tx.execute(
        "UPDATE deliveries
         SET state = 'pending', due_at_ms = wasmhook_now_ms(),
             max_attempts = attempts_made + attempt_budget, note = $2
         WHERE id = $1",
        &[&id.as_str(), &REPLAYED],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn replay_dead(
    client: &mut deadpool_postgres::Object,
    filter: &ReplayFilter,
    pacing: Pacing,
    limit: usize,
) -> Result<Vec<DeliveryId>, StoreError> {
    let tx = client.transaction().await?;
    // Dead deliveries keep the time they died in `due_at_ms`.
    let ids: Vec<String> = tx
        .query(
            "SELECT id FROM deliveries
             WHERE state = 'dead'
               AND ($1::text IS NULL OR plugin = $1)
               AND ($2::text IS NULL OR tenant = $2)
               AND ($3::bigint IS NULL OR due_at_ms >= $3)
             ORDER BY due_at_ms, seq
             LIMIT $4
             FOR UPDATE SKIP LOCKED",
            &[
                &filter.plugin.as_ref().map(|p| p.as_str()),
                &filter.tenant.as_ref().map(|t| t.as_str()),
                &filter.since_ms,
                &limit_param(limit),
            ],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let dues: Vec<i64> = (0..ids.len())
        .map(|i| {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            pacing
                .first_due_ms
                .saturating_add(pacing.spacing_ms.saturating_mul(i))
        })
        .collect();
    tx.execute(
        "UPDATE deliveries d
         SET state = 'pending', due_at_ms = r.due,
             max_attempts = d.attempts_made + d.attempt_budget, note = $3
         FROM unnest($1::text[], $2::bigint[]) AS r(id, due)
         WHERE d.id = r.id AND d.state = 'dead'",
        &[&ids, &dues, &REPLAYED],
    )
    .await?;
    tx.commit().await?;
    Ok(ids.into_iter().map(DeliveryId::new).collect())
}

pub(super) async fn cancel(
    client: &mut deadpool_postgres::Object,
    id: &DeliveryId,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT state, source, event_id FROM deliveries WHERE id = $1 FOR UPDATE",
            &[&id.as_str()],
        )
        .await?
    else {
        return Err(StoreError::NotFound(id.clone()));
    };
    let state = parse_state(row.try_get(0)?)?;
    if state != DeliveryState::Pending {
        return Err(StoreError::WrongState {
            id: id.clone(),
            state: state.as_str(),
            hint: "only pending deliveries can be cancelled",
        });
    }
    let (source, event_id): (String, String) = (row.try_get(1)?, row.try_get(2)?);
    delete_deliveries(&tx, &[id.as_str().to_owned()]).await?;
    if !options.keep_payloads {
        // The cancelled one may have been the last that had not succeeded.
        drop_payload_if_done(&tx, &source, &event_id).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn purge_dead(
    client: &mut deadpool_postgres::Object,
    filter: &PurgeFilter,
    limit: usize,
    options: &StoreOptions,
) -> Result<Removed, StoreError> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, source, event_id FROM deliveries
             WHERE state = 'dead' AND ($1::text IS NULL OR plugin = $1)
               AND ($2::bigint IS NULL OR due_at_ms < $2)
             ORDER BY due_at_ms
             LIMIT $3
             FOR UPDATE SKIP LOCKED",
            &[
                &filter.plugin.as_ref().map(|p| p.as_str()),
                &filter.died_before_ms,
                &limit_param(limit),
            ],
        )
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.try_get::<_, String>(0)?);
        events.push((row.try_get::<_, String>(1)?, row.try_get::<_, String>(2)?));
    }
    let removed = delete_deliveries(&tx, &ids).await?;
    if !options.keep_payloads {
        for (source, event_id) in &events {
            drop_payload_if_done(&tx, source, event_id).await?;
        }
    }
    tx.commit().await?;
    Ok(removed)
}

pub(super) async fn collect_garbage(
    client: &mut deadpool_postgres::Object,
    cutoffs: RetentionCutoffs,
    limit: usize,
) -> Result<Removed, StoreError> {
    let tx = client.transaction().await?;
    let mine: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(
                 hashtextextended('wasmhook.retention.' || current_schema(), 0))",
            &[],
        )
        .await?
        .try_get(0)?;
    if !mine {
        tracing::debug!("another replica is collecting garbage; skipping this pass");
        return Ok(Removed::default());
    }
    let dead: Vec<String> = tx
        .query(
            "SELECT id FROM deliveries WHERE state = 'dead' AND due_at_ms < $1
             ORDER BY due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&cutoffs.dead_before_ms, &limit_param(limit)],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut removed = delete_deliveries(&tx, &dead).await?;
    // An event goes only when nothing of it is left to run or to inspect.
    let rows = tx
        .query(
            "SELECT e.source, e.id FROM events e
             WHERE e.received_at_ms < $1
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.source = e.source AND d.event_id = e.id
                                 AND d.state <> 'succeeded')
             ORDER BY e.received_at_ms
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&cutoffs.events_before_ms, &limit_param(limit)],
        )
        .await?;
    let keys = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    removed.add(erase_events(&tx, &keys).await?);
    tx.commit().await?;
    Ok(removed)
}

pub(super) async fn erase(
    client: &mut deadpool_postgres::Object,
    request: &EraseRequest,
) -> Result<Removed, StoreError> {
    let tenant = request.tenant.as_str();
    let mut total = Removed::default();
    match &request.contact {
        None => loop {
            // Events first, then kv entries; an empty batch means both are gone.
            let tx = client.transaction().await?;
            let keys = tx
                .query(
                    "SELECT source, id FROM events WHERE tenant = $1 LIMIT $2",
                    &[&tenant, &ERASE_BATCH],
                )
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let removed = if keys.is_empty() {
                let kv_entries = tx
                    .execute(
                        "DELETE FROM kv WHERE (plugin, tenant, key) IN
                             (SELECT plugin, tenant, key FROM kv WHERE tenant = $1 LIMIT $2)",
                        &[&tenant, &ERASE_BATCH],
                    )
                    .await?;
                Removed {
                    kv_entries,
                    ..Removed::default()
                }
            } else {
                erase_events(&tx, &keys).await?
            };
            tx.commit().await?;
            if removed.is_empty() {
                break;
            }
            total.add(removed);
        },
        Some(contact) => {
            // Matching needs the payloads: scan the tenant's events page by page (by key) and
            // delete those naming the contact. Erase is a point-in-time operation; an event
            // arriving during the scan may be missed, and running it again catches it.
            let (mut after_source, mut after_id) = (String::new(), String::new());
            loop {
                let rows = client
                    .query(
                        "SELECT source, id, kind, payload FROM events
                         WHERE tenant = $1 AND (source, id) > ($2, $3)
                         ORDER BY source, id LIMIT $4",
                        &[&tenant, &after_source, &after_id, &ERASE_BATCH],
                    )
                    .await?;
                let mut matching = Vec::new();
                for row in &rows {
                    let (source, id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                    let kind: String = row.try_get(2)?;
                    let payload: Vec<u8> = row.try_get(3)?;
                    if payload_names_contact(&kind, &payload, contact) {
                        matching.push((source.clone(), id.clone()));
                    }
                    (after_source, after_id) = (source, id);
                }
                if !matching.is_empty() {
                    let tx = client.transaction().await?;
                    total.add(erase_events(&tx, &matching).await?);
                    tx.commit().await?;
                }
                if (rows.len() as i64) < ERASE_BATCH {
                    break;
                }
            }
        }
    }
    Ok(total)
}

/// Deletes these events with their deliveries and attempts.
async fn erase_events(
    tx: &impl GenericClient,
    keys: &[(String, String)],
) -> Result<Removed, StoreError> {
    if keys.is_empty() {
        return Ok(Removed::default());
    }
    let sources: Vec<&str> = keys.iter().map(|(s, _)| s.as_str()).collect();
    let ids: Vec<&str> = keys.iter().map(|(_, i)| i.as_str()).collect();
    let deliveries: Vec<String> = tx
        .query(
            "SELECT d.id FROM deliveries d
             JOIN unnest($1::text[], $2::text[]) AS k(source, id)
               ON d.source = k.source AND d.event_id = k.id",
            &[&sources, &ids],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut removed = delete_deliveries(tx, &deliveries).await?;
    removed.events = tx
        .execute(
            "DELETE FROM events e USING unnest($1::text[], $2::text[]) AS k(source, id)
             WHERE e.source = k.source AND e.id = k.id",
            &[&sources, &ids],
        )
        .await?;
    Ok(removed)
}

/// Deletes these deliveries and their attempts.
async fn delete_deliveries(tx: &impl GenericClient, ids: &[String]) -> Result<Removed, StoreError> {
    if ids.is_empty() {
        return Ok(Removed::default());
    }
    let attempts = tx
        .execute("DELETE FROM attempts WHERE delivery_id = ANY($1)", &[&ids])
        .await?;
    let deliveries = tx
        .execute("DELETE FROM deliveries WHERE id = ANY($1)", &[&ids])
        .await?;
    Ok(Removed {
        attempts,
        deliveries,
        ..Removed::default()
    })
}
