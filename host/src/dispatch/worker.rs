//! Runs one claimed delivery: the plugin, the lease renewal beside it, and the completion that
//! records the attempt and decides what happens next.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{Deps, LEASE, backoff};
use crate::{
    alerts::{self, AlertKind},
    ids::now_ms,
    runtime::{DeliveryInfo, Invocation, Outcome},
    store::{AttemptRecord, Claimed, Completion, Store, StoreError},
};

/// How long a delivery whose plugin is not loaded waits before it is looked at again.
const MISSING_PLUGIN_RECHECK: Duration = Duration::from_secs(10);

pub(super) async fn run(deps: &Deps, claimed: Claimed) {
    let span = tracing::info_span!(
        "delivery",
        event_id = %claimed.event.id,
        delivery_id = %claimed.delivery,
        plugin = %claimed.plugin,
        tenant = %claimed.event.tenant,
        attempt = claimed.attempt,
    );
    run_in_span(deps, claimed).instrument(span).await
}

async fn run_in_span(deps: &Deps, claimed: Claimed) {
    let started_at_ms = now_ms();
    let started = Instant::now();
    let Some(plugin) = deps.plugins.current().get(&claimed.plugin) else {
        tracing::warn!("plugin is not loaded; the delivery waits for it");
        let invocation = Invocation {
            outcome: Outcome::Retry {
                reason: format!("plugin {} is not loaded", claimed.plugin),
                after: Some(MISSING_PLUGIN_RECHECK),
            },
            logs: Vec::new(),
            api_calls: 0,
            duration: Duration::ZERO,
        };
        finish(deps, &claimed, started_at_ms, invocation).await;
        return;
    };

    let renewal = tokio::spawn(renew_lease(deps.clone(), claimed.clone()));
    let delivery = DeliveryInfo {
        id: claimed.delivery.clone(),
        attempt: claimed.attempt,
        // Stable across attempts and process restarts: the delivery id never changes.
        idempotency_key: claimed.delivery.to_string(),
    };
    let invocation = deps
        .runtime
        .invoke(&plugin, &claimed.event, &delivery)
        .await;
    renewal.abort();
    metrics::histogram!("wasmhook_plugin_duration_seconds", "plugin" => claimed.plugin.to_string())
        .record(started.elapsed().as_secs_f64());
    finish(deps, &claimed, started_at_ms, invocation).await;
}

/// Keeps the lease alive while the plugin runs. Stops by itself if the lease was lost.
async fn renew_lease(deps: Deps, claimed: Claimed) {
    let mut tick = tokio::time::interval(LEASE / 3);
    tick.tick().await; // the first tick is immediate; the claim just set the lease
    loop {
        tick.tick().await;
        match deps
            .store
            .renew(&claimed.delivery, &claimed.lease, LEASE)
            .await
        {
            Ok(()) => {}
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!("lease lost while running; the result will not be recorded");
                return;
            }
            Err(e) => tracing::error!(error = %e, "renewing the lease failed; will try again"),
        }
    }
}

/// Records the attempt and moves the delivery to its next state.
async fn finish(deps: &Deps, claimed: &Claimed, started_at_ms: i64, invocation: Invocation) {
    let (label, error, completion) = decide(deps, claimed, &invocation.outcome);
    let attempt = AttemptRecord {
        attempt: claimed.attempt,
        started_at_ms,
        finished_at_ms: now_ms(),
        outcome: label.to_string(),
        error: error.clone(),
        logs: invocation.logs,
    };
    let dead = completion == Completion::Dead;
    match deps
        .store
        .complete(
            &claimed.delivery,
            &claimed.lease,
            completion.clone(),
            attempt,
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::LeaseLost(_)) => {
            tracing::warn!(
                outcome = label,
                "lease lost before completion; another worker owns the delivery now"
            );
            return;
        }
        Err(e) => {
            // The lease lapses and the delivery runs again: at-least-once, never lost.
            tracing::error!(error = %e, outcome = label, "recording the attempt failed");
            return;
        }
    }
    metrics::counter!(
        "wasmhook_deliveries_total",
        "plugin" => claimed.plugin.to_string(),
        "outcome" => label
    )
    .increment(1);
    let duration_ms = invocation.duration.as_millis() as u64;
    match (&completion, &error) {
        (Completion::Succeeded, _) => {
            tracing::info!(
                duration_ms,
                api_calls = invocation.api_calls,
                "delivery succeeded"
            )
        }
        (Completion::Retry { at_ms }, error) => tracing::warn!(
            duration_ms,
            outcome = label,
            error = error.as_deref().unwrap_or(""),
            retry_in_ms = at_ms - now_ms(),
            "attempt failed; will retry"
        ),
        (Completion::Dead, error) => {
            let error = error.as_deref().unwrap_or("");
            tracing::error!(duration_ms, outcome = label, error, "delivery is dead");
        }
    }
    if dead {
        metrics::counter!("wasmhook_dead_letters_total", "plugin" => claimed.plugin.to_string())
            .increment(1);
        alerts::raise(
            AlertKind::DeliveryDead,
            &format!("plugin {} delivery {}", claimed.plugin, claimed.delivery),
            &format!(
                "event {} from {} for tenant {}: {} after {} attempt(s): {}",
                claimed.event.id,
                claimed.event.source,
                claimed.event.tenant,
                label,
                claimed.attempt,
                error.as_deref().unwrap_or("")
            ),
        );
    }
}

/// The outcome's label, its error text, and what happens next.
fn decide(
    deps: &Deps,
    claimed: &Claimed,
    outcome: &Outcome,
) -> (&'static str, Option<String>, Completion) {
    let (label, error, requested) = match outcome {
        Outcome::Succeeded => return ("succeeded", None, Completion::Succeeded),
        Outcome::Fail(reason) => return ("fail", Some(reason.clone()), Completion::Dead),
        Outcome::Retry { reason, after } => ("retry", Some(reason.clone()), *after),
        Outcome::Trap(message) => ("trap", Some(message.clone()), None),
        Outcome::Timeout => (
            "timeout",
            Some("the plugin ran past its timeout".into()),
            None,
        ),
        Outcome::MemoryExceeded(message) => ("memory", Some(message.clone()), None),
    };
    if claimed.attempt >= claimed.max_attempts {
        return (label, error, Completion::Dead);
    }
    let wait = backoff::delay(
        claimed.attempt,
        deps.config.retry_base,
        deps.config.retry_max,
        requested,
    );
    let at_ms = now_ms() + wait.as_millis() as i64;
    (label, error, Completion::Retry { at_ms })
}
