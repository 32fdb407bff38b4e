//! trivial: the least a real handler does, for the hot swap benchmark (`benches/src/reload.rs`):
//! it parses the event's JSON payload through the SDK and returns ok, or fails when the payload
//! is not JSON. (The `hostile` plugin, the benchmark's other subject, carries every misbehaviour
//! the sandbox tests need and so is several times larger.)

use wasmhook_sdk::{Delivery, Event, Handler, HandlerError};

struct Trivial;

impl Handler for Trivial {
    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        event
            .json_value()
            .map_err(|e| HandlerError::fail(format!("payload: {e}")))?;
        Ok(())
    }
}

wasmhook_sdk::export!(Trivial);
