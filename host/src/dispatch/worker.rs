//! Runs one claimed delivery: the plugin, the lease renewal beside it, and the completion that
//! records the attempt and decides what happens next.
//!
//! The delivery's slot goes back when its plugin's run ends, once its completion is handed to
//! the store, not when the completion is committed (see `dispatch`).
//!
//! Invariants: an attempt's result is recorded only under its lease (a stale lease records
//! nothing); if the lease is lost while the plugin runs, the plugin is cut off at once, since
//! another worker may already own the delivery; a delivery whose plugin is not loaded, or whose
//! attempt failed because an API told the tenant to wait (its daily quota is spent), is put
//! back without spending an attempt: neither is the plugin's failure.

use std::{
    future::poll_fn,
    pin::pin,
    task::Poll,
    time::{Duration, Instant},
};

use tracing::Instrument;

use super::{
    Deps, backoff,
    inflight::{InFlight, Running},
    lease::{lease_for, renew_every},
    slot::Slot,
};
use crate::{
    alerts::{self, AlertKind},
    ids::now_ms,
    runtime::{DeliveryInfo, Invocation, Outcome},
    store::{AttemptRecord, Claimed, Completion, Store, StoreError},
};

/// Runs `claimed`, holding `slot` until its plugin's run ends (see [`super::slot`]).
pub(super) async fn run(deps: &Deps, inflight: &InFlight, claimed: Claimed, slot: Slot) {
    inflight.start(Running {
        delivery: claimed.delivery.clone(),
        plugin: claimed.plugin.clone(),
        lease: claimed.lease.clone(),
    });
    let delivery = claimed.delivery.clone();
    run_traced(deps, claimed, slot).await;
    inflight.end(&delivery);
}

async fn run_traced(deps: &Deps, claimed: Claimed, slot: Slot) {
    let span = tracing::info_span!(
        "delivery",
        event_id = %claimed.event.id,
        delivery_id = %claimed.delivery,
        plugin = %claimed.plugin,
        tenant = %claimed.event.tenant,
        attempt = claimed.attempt,
    );
    run_in_span(deps, claimed, slot).instrument(span).await
}

async fn run_in_span(deps: &Deps, claimed: Claimed, mut slot: Slot) {
    let started_at_ms = now_ms();
    let started = Instant::now();
    let Some(plugin) = deps.plugins.current().get(&claimed.plugin) else {
        // Unloaded between the claim and now (a hot reload removed it): not the delivery's
        // fault, so it waits without spending an attempt. It is due at once, but claims only
        // ask for loaded plugins, so it waits, unclaimed, until its plugin returns.
        tracing::warn!("plugin is not loaded; the delivery waits for it");
        let at_ms = now_ms();
        let note = format!("waiting: plugin {} is not loaded", claimed.plugin);
        if let Err(e) = deps
            .store
            .defer(&claimed.delivery, &claimed.lease, at_ms, note)
            .await
        {
            tracing::warn!(error = %e, "could not put the delivery back; it runs again once its lease lapses");
        }
        return;
    };

    let lease = lease_for(plugin.manifest.timeout);
    let delivery = DeliveryInfo {
        id: claimed.delivery.clone(),
        attempt: claimed.attempt,
        // Stable across attempts and process restarts: the delivery id never changes.
        idempotency_key: claimed.delivery.to_string(),
    };
    let invocation = tokio::select! {
        invocation = deps.runtime.invoke(&plugin, &claimed.event, &delivery) => invocation,
        () = renew_lease(deps, &claimed, lease) => {
            // Another worker may own the delivery now: running on could repeat its effects
            // concurrently, and our result could not be recorded anyway.
            tracing::warn!("lease lost while running; the attempt was cut off and is not recorded");
            return;
        }
    };
    metrics::histogram!("wasmhook_plugin_duration_seconds", "plugin" => claimed.plugin.to_string())
        .record(started.elapsed().as_secs_f64());
    if let Outcome::Deferred { after, note } = &invocation.outcome {
        defer(deps, &claimed, *after, note).await;
        return;
    }
    let mut finishing = pin!(finish(deps, &claimed, started_at_ms, invocation));
    // One poll hands the completion to the store (for SQLite: queues it on the writer) before
    // the slot goes back, so the claim the free slot leads to is queued after it; the commit's
    // wait then overlaps the next delivery's run (see the module docs of `dispatch`).
    let first = poll_fn(|cx| Poll::Ready(finishing.as_mut().poll(cx))).await;
    slot.release();
    if first.is_pending() {
        finishing.await;
    }
}

/// Puts the delivery back, due after `after`, without spending its attempt: the wait is not
/// the plugin's fault (the API's quota is spent, the tenant's credentials are not ready).
async fn defer(deps: &Deps, claimed: &Claimed, after: Duration, note: &str) {
    let wait_ms = after.as_millis() as i64;
    tracing::warn!(
        wait_ms,
        note,
        "the delivery waits without spending an attempt"
    );
    metrics::counter!("wasmhook_deferrals_total", "plugin" => claimed.plugin.to_string())
        .increment(1);
    let at_ms = now_ms().saturating_add(wait_ms);
    if let Err(e) = deps
        .store
        .defer(&claimed.delivery, &claimed.lease, at_ms, note.to_owned())
        .await
    {
        tracing::warn!(error = %e, "could not defer the delivery; it runs again once its lease lapses");
    }
}

/// Keeps the lease alive while the plugin runs; returns only when the lease is lost.
async fn renew_lease(deps: &Deps, claimed: &Claimed, lease: Duration) {
    let mut tick = tokio::time::interval(renew_every(lease));
    tick.tick().await; // the first tick is immediate; the claim just set the lease
    loop {
        tick.tick().await;
        match deps
            .store
            .renew(&claimed.delivery, &claimed.lease, lease)
            .await
        {
            Ok(()) => {}
            Err(StoreError::LeaseLost(_)) => return,
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
    if let Some(reason) = kill_reason(&invocation.outcome) {
        metrics::counter!(
            "wasmhook_plugin_kills_total",
            "plugin" => claimed.plugin.to_string(),
            "reason" => reason
        )
        .increment(1);
    }
    let duration_ms = invocation.duration.as_millis() as u64;
    match (&completion, &error) {
        (Completion::Succeeded, _) => {
            tracing::info!(
                duration_ms,
                api_calls = invocation.api_calls,
                memory_bytes = invocation.memory_bytes,
                "delivery succeeded"
            );
            alerts::resolve(
                AlertKind::DeliveryDead,
                claimed.plugin.as_str(),
                &format!("a delivery of event {} succeeded", claimed.event.id),
            );
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
            claimed.plugin.as_str(),
            &format!(
                "delivery {} of event {} from {} for tenant {}: {} after {} attempt(s): {}",
                claimed.delivery,
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

/// Why the host stopped the plugin, if it did: its deadline (`deadline`) or its memory cap
/// (`memory`).
fn kill_reason(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Timeout => Some("deadline"),
        Outcome::MemoryExceeded(_) => Some("memory"),
        _ => None,
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
        // Handled before `finish`; should one get here, it counts as a retry with its wait.
        Outcome::Deferred { after, note } => ("retry", Some(note.clone()), Some(*after)),
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
