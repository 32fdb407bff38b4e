//! Batches: several requests run under the same pacing, a few at a time, with results in request
//! order. Each request is an ordinary `send` (its own checks, retries and pacing slot); request
//! `i` of a batch is call number `ctx.call_number + i`, so each gets its own idempotency value.
//!
//! Invariants: at most [`BATCH_CONCURRENCY`] requests of one batch are in flight; dropping the
//! batch future (the delivery timed out) aborts the requests still running; the result vector
//! has exactly one entry per request, in order.

use std::collections::HashMap;

use tokio::task::JoinSet;

use super::{ApiClient, ApiError, ApiRequest, ApiResponse, CallContext};

/// Requests of one batch in flight at once: enough to overlap round trips, few enough that one
/// plugin's batch does not take its tenant's whole burst (pacing shares it fairly anyway).
pub const BATCH_CONCURRENCY: usize = 4;

/// Sends `requests` on behalf of `ctx`, returning one result per request, in order.
pub(super) async fn send_batch(
    client: &ApiClient,
    ctx: &CallContext,
    requests: Vec<ApiRequest>,
) -> Vec<Result<ApiResponse, ApiError>> {
    let mut results: Vec<Option<Result<ApiResponse, ApiError>>> = vec![None; requests.len()];
    let mut waiting = requests.into_iter().enumerate();
    let mut running = JoinSet::new();
    let mut index_of = HashMap::new();
    loop {
        while running.len() < BATCH_CONCURRENCY {
            let Some((i, req)) = waiting.next() else {
                break;
            };
            let client = client.clone();
            let mut ctx = ctx.clone();
            ctx.call_number = ctx
                .call_number
                .saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
            let handle = running.spawn(async move { client.send(&ctx, req).await });
            index_of.insert(handle.id(), i);
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            // A request's task panicked: report it in its place, keep the others.
            Err(error) => (
                error.id(),
                Err(ApiError::Transport(
                    "the request failed inside the host".into(),
                )),
            ),
        };
        if let Some(i) = index_of.remove(&id) {
            results[i] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::Transport("the request did not run".into()))))
        .collect()
}
