//! `claim` on PostgreSQL: reap expired leases, then lock and lease due deliveries within the
//! request's global and per-plugin limits, honouring ordering keys.
//!
//! Invariants:
//! - Candidates are locked with `FOR UPDATE OF d SKIP LOCKED`: a row another claimer (on any
//!   replica) is taking is skipped rather than waited for, and PostgreSQL re-checks `state =
//!   'pending'` on the locked row, so no two claimers lease the same delivery.
//! - Due times and lease expiries are the database's clock (`wasmhook_now_ms()`).
//! - Ordering: a delivery with a key is a candidate only while no delivery of the same plugin
//!   with the same key and a lower `seq` is pending or running. A blocker only ever moves
//!   pending -> running -> pending/succeeded/dead, and a concurrent claimer that is leasing it
//!   still sees it pending, so two same-key deliveries are never leased at once.
//! - Expired leases are reaped under `SKIP LOCKED` too, so concurrent claimers never record
//!   the same lost attempt twice (and the attempts' primary key would refuse it anyway).

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{duration_ms, limit_param, u32_of};
use crate::{
    ids::{DeliveryId, EventId, LeaseToken, PluginName, SourceName, TenantId},
    store::{ClaimRequest, Claimed, StoreError, StoredEvent},
};

/// Outcome recorded for an attempt whose worker's lease ran out before it reported back.
const LOST_OUTCOME: &str = "lost";

/// Most expired leases one claim reclaims, so that a claim after a long outage stays short.
const REAP_BATCH: i64 = 512;

/// The due-delivery query; `{plugin}` is empty or a plugin filter. `$1` = limit, `$2` = plugin.
const DUE: &str = "SELECT d.id, d.plugin, d.attempts_made, d.max_attempts,
        e.source, e.id, e.kind, e.tenant, e.received_at_ms, e.payload
 FROM deliveries d
 JOIN events e ON e.source = d.source AND e.id = d.event_id
 WHERE d.state = 'pending' AND d.due_at_ms <= wasmhook_now_ms() {plugin}
   AND (d.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM deliveries p
        WHERE p.plugin = d.plugin AND p.ordering_key = d.ordering_key
          AND p.state IN ('pending', 'running') AND p.seq < d.seq))
 ORDER BY d.due_at_ms, d.seq
 LIMIT $1
 FOR UPDATE OF d SKIP LOCKED";

pub(super) async fn claim(
    client: &mut deadpool_postgres::Object,
    request: &ClaimRequest,
) -> Result<Vec<Claimed>, StoreError> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    // Reaping commits on its own: a lost attempt is recorded even if nothing is claimable.
    reap_expired_leases(&*client).await?;
    let tx = client.transaction().await?;
    let mut claimed = Vec::new();
    match &request.plugins {
        None => {
            let due = tx.prepare_cached(&DUE.replace("{plugin}", "")).await?;
            let rows = tx.query(&due, &[&limit_param(request.limit)]).await?;
            lease_all(&tx, rows, request.lease, &mut claimed).await?;
        }
        Some(plugins) => {
            let due = tx
                .prepare_cached(&DUE.replace("{plugin}", "AND d.plugin = $2"))
                .await?;
            for slots in plugins {
                let room = slots.free.min(request.limit - claimed.len());
                if room == 0 {
                    if claimed.len() == request.limit {
                        break;
                    }
                    continue;
                }
                let rows = tx
                    .query(&due, &[&limit_param(room), &slots.plugin.as_str()])
                    .await?;
                lease_all(&tx, rows, slots.lease, &mut claimed).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

async fn lease_all(
    tx: &impl GenericClient,
    rows: Vec<Row>,
    lease: Duration,
    claimed: &mut Vec<Claimed>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut batch = Vec::with_capacity(rows.len());
    for row in rows {
        let event = StoredEvent {
            source: SourceName::new(row.try_get::<_, String>(4)?),
            id: EventId::new(row.try_get::<_, String>(5)?),
            kind: row.try_get(6)?,
            tenant: TenantId::new(row.try_get::<_, String>(7)?),
            received_at_ms: row.try_get(8)?,
            payload: row.try_get(9)?,
        };
        batch.push(Claimed {
            delivery: DeliveryId::new(row.try_get::<_, String>(0)?),
            plugin: PluginName::new(row.try_get::<_, String>(1)?),
            attempt: u32_of(row.try_get::<_, i64>(2)?).saturating_add(1),
            max_attempts: u32_of(row.try_get(3)?),
            lease: LeaseToken::generate(),
            event,
        });
    }
    let ids: Vec<&str> = batch.iter().map(|c| c.delivery.as_str()).collect();
    let tokens: Vec<&str> = batch.iter().map(|c| c.lease.as_str()).collect();
    let take = tx
        .prepare_cached(
            "UPDATE deliveries d
             SET state = 'running', lease_token = t.token,
                 due_at_ms = wasmhook_now_ms() + $3, claimed_at_ms = wasmhook_now_ms(),
                 attempts_made = d.attempts_made + 1, note = NULL
             FROM unnest($1::text[], $2::text[]) AS t(id, token)
             WHERE d.id = t.id AND d.state = 'pending'",
        )
        .await?;
    tx.execute(&take, &[&ids, &tokens, &duration_ms(lease)])
        .await?;
    claimed.extend(batch);
    Ok(())
}

/// Ends the attempts whose lease ran out: each gets a `lost` attempt record, then goes back to
/// pending (due now) or, after its last attempt, to dead.
async fn reap_expired_leases(client: &impl GenericClient) -> Result<(), StoreError> {
    let reap = client
        .prepare_cached(
            "WITH expired AS (
                 SELECT id, attempts_made, max_attempts, due_at_ms, claimed_at_ms
                 FROM deliveries
                 WHERE state = 'running' AND due_at_ms <= wasmhook_now_ms()
                 ORDER BY due_at_ms
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             ),
             released AS (
                 UPDATE deliveries d
                 SET state = CASE WHEN e.attempts_made >= e.max_attempts
                                  THEN 'dead' ELSE 'pending' END,
                     lease_token = NULL, claimed_at_ms = NULL
                 FROM expired e
                 WHERE d.id = e.id
                 RETURNING d.id, d.state
             ),
             recorded AS (
                 INSERT INTO attempts (delivery_id, attempt, started_at_ms, finished_at_ms,
                                       outcome, error)
                 SELECT e.id, e.attempts_made, coalesce(e.claimed_at_ms, e.due_at_ms),
                        e.due_at_ms, $2, $3
                 FROM expired e
                 ON CONFLICT (delivery_id, attempt) DO NOTHING
             )
             SELECT r.id, e.attempts_made, r.state FROM released r JOIN expired e ON e.id = r.id",
        )
        .await?;
    let rows = client
        .query(
            &reap,
            &[
                &REAP_BATCH,
                &LOST_OUTCOME,
                &"the worker's lease expired before the attempt reported back \
                  (the host stopped, or the attempt outlived its lease)",
            ],
        )
        .await?;
    for row in rows {
        let id: String = row.try_get(0)?;
        let attempt: i64 = row.try_get(1)?;
        let state: String = row.try_get(2)?;
        if state == "dead" {
            tracing::warn!(delivery = %id, attempt,
                "the last attempt's lease expired; the delivery is dead");
        } else {
            tracing::warn!(delivery = %id, attempt,
                "an attempt's lease expired; the delivery is due again");
        }
    }
    Ok(())
}
