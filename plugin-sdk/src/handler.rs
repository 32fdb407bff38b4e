//! The plugin's entry point: the [`Handler`] trait and the [`export!`](crate::export) macro that
//! wires a handler type to the component's `handle` export.
//!
//! Invariant: a component exports exactly one handler; `export!` used twice in one crate fails
//! to link (duplicate `handle` symbol), which is the error we want.

use crate::{Delivery, Event, HandlerError, bindings};

/// A plugin: handles one event at a time.
///
/// Each call runs in a fresh instance, so nothing survives between calls except what the plugin
/// stores in [`kv`](crate::kv). Return `Ok(())` when the work is done; see [`HandlerError`] for
/// the ways to say it is not.
pub trait Handler {
    /// Handles `event`. `delivery` says which attempt this is and carries the idempotency key.
    fn handle(event: Event, delivery: Delivery) -> Result<(), HandlerError>;
}

/// Converts the WIT records, runs `H`, and converts its answer back. Called by [`export!`].
///
/// [`export!`]: crate::export
pub fn run<H: Handler>(
    event: bindings::Event,
    delivery: bindings::Delivery,
) -> Result<(), bindings::HandlerError> {
    H::handle(event.into(), delivery.into()).map_err(Into::into)
}

/// Exports a [`Handler`] as the component's `handle` function. Use it once per plugin crate,
/// at the top level of `lib.rs`:
///
/// ```no_run
/// use wasmhook_sdk::{Delivery, Event, Handler, HandlerError};
///
/// struct Noop;
///
/// impl Handler for Noop {
///     fn handle(_event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// wasmhook_sdk::export!(Noop);
/// ```
#[macro_export]
macro_rules! export {
    ($handler:ty) => {
        // The generated export macro wants a plain identifier, so a private adapter type
        // implements the bindings' `Guest` trait on behalf of the handler (which may be any
        // type path). The `const` block keeps the adapter's name out of the plugin's namespace.
        const _: () = {
            struct __WasmhookExport;

            impl $crate::bindings::Guest for __WasmhookExport {
                fn handle(
                    event: $crate::bindings::Event,
                    delivery: $crate::bindings::Delivery,
                ) -> ::core::result::Result<(), $crate::bindings::HandlerError> {
                    $crate::__private::run::<$handler>(event, delivery)
                }
            }

    $crate::bindings::__export_plugin!(__WasmhookExport with_types_in $crate::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FailsOnRetry;

    impl Handler for FailsOnRetry {
        fn handle(event: Event, delivery: Delivery) -> Result<(), HandlerError> {
            if delivery.is_retry() {
                return Err(HandlerError::fail(format!("{} seen twice", event.id())));
            }
            Ok(())
        }
    }

    fn wit_delivery(attempt: u32) -> bindings::Delivery {
        bindings::Delivery {
            id: "d-1".into(),
            attempt,
            idempotency_key: "k-1".into(),
        }
    }

    fn wit_event() -> bindings::Event {
        bindings::Event {
            id: "evt-1".into(),
            source: "highlevel".into(),
            kind: "ContactCreate".into(),
            tenant: "loc-1".into(),
            received_at_ms: 0,
            payload: "{}".into(),
        }
    }

    #[test]
    fn run_passes_records_through_and_converts_the_answer() {
        assert!(run::<FailsOnRetry>(wit_event(), wit_delivery(1)).is_ok());
        match run::<FailsOnRetry>(wit_event(), wit_delivery(2)) {
            Err(bindings::HandlerError::Fail(reason)) => assert_eq!(reason, "evt-1 seen twice"),
            other => panic!("unexpected {}", other.is_ok()),
        }
    }
}
