//! relay: the trivial plugin of the end-to-end benchmark (`benches/src/e2e.rs`). It parses the
//! webhook's JSON payload, takes `contact.id`, and makes one API call:
//! `POST /notes/<event id>` with `{"contact": "<id>"}` on api `fake`. The benchmark's peer
//! component (`benches/peer`) makes the same call.

use wasmhook_sdk::{Delivery, Event, Handler, HandlerError, api};

struct Relay;

impl Handler for Relay {
    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        let payload = event
            .json_value()
            .map_err(|e| HandlerError::fail(format!("payload: {e}")))?;
        let Some(contact) = payload["contact"]["id"].as_str() else {
            return Err(HandlerError::fail("payload has no contact.id"));
        };
        api::post("fake", format!("/notes/{}", event.id()))
            .json_text(format!("{{\"contact\":\"{contact}\"}}"))
            .send()?;
        Ok(())
    }
}

wasmhook_sdk::export!(Relay);
