//! contact-tagger: adds the configured tag to every new HighLevel contact.
//!
//! On `ContactCreate` it reads the contact id from the payload and calls
//! `POST /contacts/{id}/tags` with `{"tags": [<tag>]}` on the `highlevel` API.
//!
//! Idempotency, in two layers: the host sends the delivery's idempotency key upstream, so a
//! repeated call does no harm; and after a successful call the plugin records the key in kv,
//! so a redelivery (e.g. after a crash before the host committed the success) skips the call.

use std::time::Duration;

use serde::Serialize;
use wasmhook_sdk::{
    Delivery, Event, Handler, HandlerError, api, config, debug, highlevel::Contact, info, kv,
};

/// The API name in the host config.
const API: &str = "highlevel";

/// How long the "already tagged" marker is kept: the host's retention window for events, past
/// which a redelivery of the same webhook is no longer deduplicated anyway.
const DONE_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The body of `POST /contacts/{id}/tags`.
#[derive(Serialize)]
struct AddTags<'a> {
    tags: [&'a str; 1],
}

struct ContactTagger;

impl Handler for ContactTagger {
    fn handle(event: Event, delivery: Delivery) -> Result<(), HandlerError> {
        if event.kind() != "ContactCreate" {
            // The manifest may subscribe to more kinds later; they are not ours to handle.
            debug!("ignoring event"; "kind" => event.kind());
            return Ok(());
        }
        let tag = config::require("tag")?;
        let contact: Contact = event.json()?;

        let done = done_key(&delivery);
        if kv::get(&done)?.is_some() {
            info!("contact already tagged by an earlier attempt"; "contact" => contact.id);
            return Ok(());
        }

        tag_request(&contact.id, &tag)?.send()?;
        kv::set_with_ttl(&done, b"1", DONE_TTL)?;
        info!("tagged contact"; "contact" => contact.id, "tag" => tag);
        Ok(())
    }
}

wasmhook_sdk::export!(ContactTagger);

/// The kv key marking this delivery's work as done.
fn done_key(delivery: &Delivery) -> String {
    format!("tagged:{}", delivery.idempotency_key())
}

/// The request adding `tag` to contact `id`. The id comes from the payload, so it is checked to
/// be one path segment of a HighLevel id's alphabet before it goes into a path (the host checks
/// paths too; this makes a bad payload a clear, permanent failure).
fn tag_request(id: &str, tag: &str) -> Result<api::Request, HandlerError> {
    if !is_highlevel_id(id) {
        return Err(HandlerError::fail(format!(
            "contact id {id:?} is not a HighLevel id"
        )));
    }
    if tag.trim().is_empty() {
        return Err(HandlerError::fail("config: `tag` is empty"));
    }
    Ok(api::post(API, format!("/contacts/{id}/tags")).json(&AddTags { tags: [tag] }))
}

/// HighLevel ids are short runs of ASCII letters and digits; `-` and `_` are allowed for
/// safety margin. Nothing that could change a path's meaning (`/`, `.`, `%`, `?`) passes.
fn is_highlevel_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use wasmhook_sdk::api::Method;

    use super::*;

    #[test]
    fn builds_the_tag_call() {
        let req = tag_request("nmFmQEsNgz6AVpgLVUJ0", "new-lead").unwrap();
        assert_eq!(req.api(), "highlevel");
        assert_eq!(req.method(), Method::Post);
        assert_eq!(req.path(), "/contacts/nmFmQEsNgz6AVpgLVUJ0/tags");
        assert_eq!(req.body(), Some(r#"{"tags":["new-lead"]}"#));
    }

    #[test]
    fn refuses_ids_that_are_not_one_path_segment() {
        for id in ["", "a/b", "..", "x?y", "%2F"] {
            let err = tag_request(id, "new-lead").unwrap_err();
            assert!(!err.is_retry(), "{id}: {err}");
        }
        assert!(tag_request("abc", " ").is_err());
    }

    #[test]
    fn reads_the_contact_id_from_the_highlevel_payload() {
        let payload = r#"{"type":"ContactCreate","locationId":"loc","id":"c-1","tags":[]}"#;
        let event = Event::new("e", "highlevel", "ContactCreate", "loc", 0, payload);
        assert_eq!(event.json::<Contact>().unwrap().id, "c-1");
    }

    #[test]
    fn the_done_marker_is_keyed_by_the_idempotency_key() {
        let first = Delivery::new("d-1", 1, "key-1");
        let retry = Delivery::new("d-1", 3, "key-1");
        assert_eq!(done_key(&first), "tagged:key-1");
        assert_eq!(done_key(&first), done_key(&retry));
    }
}
