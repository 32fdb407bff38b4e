//! Lease-fenced writes on PostgreSQL: renew, complete, defer.
//!
//! Invariants:
//! - Fencing lives in the UPDATE's WHERE clause (`lease_token = $2 AND state = 'running'`),
//!   never in a read-then-write; a stale token changes no row and is `LeaseLost`, and the
//!   transaction is dropped (rolled back) so nothing else is written either.
//! - Dropping a finished event's payload locks the event row first, so two deliveries of one
//!   event completing at once on two replicas cannot each miss the other's success.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::duration_ms;
use crate::{
    ids::{DeliveryId, LeaseToken},
    store::{AttemptRecord, Completion, StoreError, StoreOptions},
};

pub(super) async fn renew(
    client: &impl GenericClient,
    id: &DeliveryId,
    token: &LeaseToken,
    lease: Duration,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(
            "UPDATE deliveries SET due_at_ms = wasmhook_now_ms() + $3
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .await?;
    let updated = client
        .execute(
            &statement,
            &[&id.as_str(), &token.as_str(), &duration_ms(lease)],
        )
        .await?;
    if updated == 0 {
        return Err(StoreError::LeaseLost(id.clone()));
    }
    Ok(())
}

pub(super) async fn complete(
    client: &mut deadpool_postgres::Object,
    id: &DeliveryId,
    token: &LeaseToken,
    completion: &Completion,
    attempt: &AttemptRecord,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    // Finished deliveries keep their end time in `due_at_ms`; a retry keeps its next due time.
    let (state, retry_at) = match completion {
        Completion::Succeeded => ("succeeded", None),
        Completion::Retry { at_ms } => ("pending", Some(*at_ms)),
        Completion::Dead => ("dead", None),
    };
    let logs = serde_json::to_string(&attempt.logs)
        .map_err(|err| StoreError::Corrupt(format!("cannot encode attempt logs: {err}")))?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "UPDATE deliveries
             SET state = $3, due_at_ms = coalesce($4, wasmhook_now_ms()), lease_token = NULL,
                 claimed_at_ms = NULL, note = NULL
             WHERE id = $1 AND lease_token = $2 AND state = 'running'
             RETURNING source, event_id",
        )
        .await?;
    let Some(row) = tx
        .query_opt(
            &statement,
            &[&id.as_str(), &token.as_str(), &state, &retry_at],
        )
        .await?
    else {
        return Err(StoreError::LeaseLost(id.clone()));
    };
    let (source, event_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let statement = tx
        .prepare_cached(
            "INSERT INTO attempts (delivery_id, attempt, started_at_ms, finished_at_ms, outcome,
                                   error, logs)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &id.as_str(),
            &i64::from(attempt.attempt),
            &attempt.started_at_ms,
            &attempt.finished_at_ms,
            &attempt.outcome,
            &attempt.error,
            &logs,
        ],
    )
    .await?;
    if *completion == Completion::Succeeded && !options.keep_payloads {
        drop_payload_if_done(&tx, &source, &event_id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Data minimisation: drops the event's payload if every delivery of it succeeded, keeping
/// source, id, kind, tenant, time and the payload's hash.
pub(super) async fn drop_payload_if_done(
    tx: &impl GenericClient,
    source: &str,
    event_id: &str,
) -> Result<(), StoreError> {
    // The lock orders concurrent completions of one event: the later one re-reads the
    // deliveries after the earlier one committed (each statement sees what committed before it
    // started), so the last success always sees all the others.
    let lock = tx
        .prepare_cached("SELECT 1 FROM events WHERE source = $1 AND id = $2 FOR NO KEY UPDATE")
        .await?;
    tx.query_opt(&lock, &[&source, &event_id]).await?;
    let statement = tx
        .prepare_cached(
            "UPDATE events SET payload = '\\x'::bytea, payload_dropped_at_ms = wasmhook_now_ms()
             WHERE source = $1 AND id = $2 AND payload_dropped_at_ms IS NULL
               AND NOT EXISTS (SELECT 1 FROM deliveries
                               WHERE source = $1 AND event_id = $2 AND state <> 'succeeded')",
        )
        .await?;
    tx.execute(&statement, &[&source, &event_id]).await?;
    Ok(())
}

/// Puts a running delivery back to pending at `at_ms` without spending its attempt.
pub(super) async fn defer(
    client: &impl GenericClient,
    id: &DeliveryId,
    token: &LeaseToken,
    at_ms: i64,
    note: &str,
) -> Result<(), StoreError> {
    // The claim counted an attempt; taking it back is what "without spending" means.
    let statement = client
        .prepare_cached(
            "UPDATE deliveries
             SET state = 'pending', due_at_ms = $3, lease_token = NULL, claimed_at_ms = NULL,
                 attempts_made = greatest(attempts_made - 1, 0), note = $4
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .await?;
    let updated = client
        .execute(&statement, &[&id.as_str(), &token.as_str(), &at_ms, &note])
        .await?;
    if updated == 0 {
        return Err(StoreError::LeaseLost(id.clone()));
    }
    Ok(())
}
