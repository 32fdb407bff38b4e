//! One delivery: a fresh store, instantiate, call `handle`, map how it ended.
//!
//! The deadline is enforced twice, because each mechanism covers what the other cannot:
//! - epochs: a store's epoch callback yields the guest to the executor every tick (so a loop
//!   does not monopolise its worker thread) and raises an `Interrupt` trap at the deadline;
//! - a tokio timeout around the whole instantiate + call: epochs do not interrupt a guest that
//!   waits in a host call (an API request, a WASI sleep), but dropping the future does, and it
//!   drops any in-flight outbound request with it.
//!
//! Both end as [`Outcome::Timeout`]. A trap after the memory limiter refused a growth is
//! reported as [`Outcome::MemoryExceeded`], since the refusal is its cause.

use std::{sync::Arc, time::Duration};

use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};

use super::{
    DeliveryInfo, Inner, Invocation, LoadedPlugin, Outcome,
    bindings::types::{Delivery, Event, HandlerError},
    limits::MemoryLimiter,
    state::{DeliveryTags, State, StateParts},
};
use crate::store::StoredEvent;

/// Runs `plugin` once on `event`.
pub async fn run(
    inner: &Inner,
    plugin: &LoadedPlugin,
    event: &StoredEvent,
    delivery: &DeliveryInfo,
) -> Invocation {
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + plugin.manifest.timeout;
    let tags = Arc::new(DeliveryTags {
        plugin: plugin.manifest.name.clone(),
        event_id: event.id.clone(),
        delivery_id: delivery.id.clone(),
        tenant: event.tenant.clone(),
    });
    let state = State::new(StateParts {
        tags,
        idempotency_key: delivery.idempotency_key.clone(),
        capabilities: plugin.capabilities.clone(),
        config: plugin.config.clone(),
        max_api_calls: plugin.manifest.max_api_calls,
        memory: plugin.manifest.memory,
        deadline,
        services: inner.services.clone(),
    });

    // The plugin's own engine: a hot-swapped plugin may still be on the fast tier's.
    let mut store = Store::new(plugin.pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    // The callback runs at every epoch tick: yield until the deadline, then interrupt.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if tokio::time::Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let wit_event = to_wit_event(event);
    let wit_delivery = Delivery {
        id: delivery.id.as_str().to_string(),
        attempt: delivery.attempt,
        idempotency_key: delivery.idempotency_key.clone(),
    };
    let call = async {
        let instance = plugin.pre.instantiate_async(&mut store).await?;
        instance
            .call_handle(&mut store, &wit_event, &wit_delivery)
            .await
    };
    let outcome = match tokio::time::timeout_at(deadline, call).await {
        Err(_elapsed) => Outcome::Timeout,
        Ok(Ok(Ok(()))) => Outcome::Succeeded,
        Ok(Ok(Err(HandlerError::Retry(r)))) => Outcome::Retry {
            reason: r.reason,
            after: r.after_ms.map(Duration::from_millis),
        },
        Ok(Ok(Err(HandlerError::Fail(reason)))) => Outcome::Fail(reason),
        Ok(Err(error)) => classify(&error, &store.data().limiter),
    };

    let state = store.data_mut();
    let outcome = match (outcome, state.deferral.take()) {
        // Success, and a plugin's `fail`, stand: the wait did not decide them.
        (outcome @ (Outcome::Succeeded | Outcome::Fail(_)), _) => outcome,
        (outcome, Some(deferral)) => {
            let mut after = deferral
                .until
                .saturating_duration_since(std::time::Instant::now());
            // Also no sooner than the plugin's own `retry(after)`.
            if let Outcome::Retry {
                after: Some(asked), ..
            } = outcome
            {
                after = after.max(asked);
            }
            Outcome::Deferred {
                after,
                note: deferral.note,
            }
        }
        (outcome, None) => outcome,
    };
    Invocation {
        outcome,
        logs: state.take_logs(),
        api_calls: state.api_calls,
        duration: started.elapsed(),
        memory_bytes: state.limiter.used(),
    }
}

/// The WIT view of a stored event.
fn to_wit_event(event: &StoredEvent) -> Event {
    Event {
        id: event.id.as_str().to_string(),
        source: event.source.as_str().to_string(),
        kind: event.kind.clone(),
        tenant: event.tenant.as_str().to_string(),
        // Stored times are never before the epoch; clamp rather than wrap if one were.
        received_at_ms: u64::try_from(event.received_at_ms).unwrap_or(0),
        // Ingress only stores bodies it parsed as JSON, which is UTF-8; a lossy conversion
        // keeps an impossible non-UTF-8 body from failing the delivery. The strict check
        // first: its ASCII fast path cost a fifth of the lossy decoder's instructions on a
        // 700-byte body (callgrind: ~5,000 instructions per delivery, 3% of a trivial call).
        payload: match std::str::from_utf8(&event.payload) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(&event.payload).into_owned(),
        },
    }
}

/// How an instantiation or call error ended the delivery.
fn classify(error: &wasmtime::Error, limiter: &MemoryLimiter) -> Outcome {
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return Outcome::Timeout;
    }
    if limiter.refused() {
        return Outcome::MemoryExceeded(limiter.refusal_message());
    }
    Outcome::Trap(describe(error))
}

/// A short description of a trap for operators: its kind and, when known, the function.
fn describe(error: &wasmtime::Error) -> String {
    let mut text = match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "wasm trap: stack overflow".to_string(),
        Some(Trap::UnreachableCodeReached) => {
            "wasm trap: unreachable (the plugin panicked or aborted)".to_string()
        }
        Some(trap) => trap.to_string(),
        None => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => format!("the plugin called exit({})", exit.0),
            // Not a trap: e.g. instantiation failed or a value could not be lifted.
            None => format!("{error:#}"),
        },
    };
    let function = error
        .downcast_ref::<WasmBacktrace>()
        .and_then(|bt| bt.frames().iter().find_map(|f| f.func_name()));
    if let Some(name) = function {
        text.push_str(&format!(" in `{name}`"));
    }
    text
}
