//! What a handler receives: the stored [`Event`] and the [`Delivery`] attempt running it.
//!
//! Both are read-only views of the WIT records. The payload stays the raw JSON text the sender
//! signed; the plugin parses only what it needs, when it needs it.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use crate::{bindings, error::JsonError, highlevel::HighLevelEvent};

/// One stored webhook. Every field is stable across redeliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    id: String,
    source: String,
    kind: String,
    tenant: String,
    received_at_ms: u64,
    payload: String,
}

impl Event {
    /// Builds an event by hand, e.g. to unit-test a handler's logic outside the host.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        kind: impl Into<String>,
        tenant: impl Into<String>,
        received_at_ms: u64,
        payload: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            kind: kind.into(),
            tenant: tenant.into(),
            received_at_ms,
            payload: payload.into(),
        }
    }

    /// The event id: the sender's id (e.g. HighLevel `webhookId`) or a hash of the raw body.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The configured source name (`[[sources]] name` in the host config), e.g. `highlevel`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The event kind, e.g. `ContactCreate`; empty when the sender names none.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The tenant the event belongs to (HighLevel `locationId`, `companyId` or `altId`).
    ///
    /// API calls, kv and logs of this delivery are already scoped to it by the host.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// When the host accepted the event, in milliseconds since the Unix epoch.
    pub fn received_at_ms(&self) -> u64 {
        self.received_at_ms
    }

    /// When the host accepted the event.
    pub fn received_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.received_at_ms)
    }

    /// The raw JSON body as the sender signed it.
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// Parses the payload into `T`: declare only the fields the handler needs.
    ///
    /// With `?` in a handler, a payload that does not fit fails the delivery (a redelivery
    /// carries the same bytes, so retrying cannot help).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, JsonError> {
        serde_json::from_str(&self.payload).map_err(|e| JsonError::new("event payload", &e))
    }

    /// Parses the payload into a generic JSON value.
    pub fn json_value(&self) -> Result<serde_json::Value, JsonError> {
        self.json()
    }

    /// Parses the payload as a HighLevel webhook of this event's kind: a
    /// [`HighLevelEvent::Contact`] for `ContactCreate`, and so on; kinds without a struct come
    /// back as [`HighLevelEvent::Other`]. Missing and extra keys are tolerated.
    pub fn highlevel(&self) -> Result<HighLevelEvent, JsonError> {
        HighLevelEvent::parse(&self.kind, &self.payload)
    }
}

impl From<bindings::Event> for Event {
    fn from(e: bindings::Event) -> Self {
        Self {
            id: e.id,
            source: e.source,
            kind: e.kind,
            tenant: e.tenant,
            received_at_ms: e.received_at_ms,
            payload: e.payload,
        }
    }
}

/// One attempt to run this plugin on one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    id: String,
    attempt: u32,
    idempotency_key: String,
}

impl Delivery {
    /// Builds a delivery by hand, e.g. to unit-test a handler's logic outside the host.
    pub fn new(id: impl Into<String>, attempt: u32, idempotency_key: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            attempt,
            idempotency_key: idempotency_key.into(),
        }
    }

    /// The delivery id, stable across attempts.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// 1 for the first attempt, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Stable across attempts and redeliveries: use it to make side effects idempotent, e.g.
    /// as a [`kv`](crate::kv) key recording work already done.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// Whether this is a retry of an earlier attempt that did not succeed.
    pub fn is_retry(&self) -> bool {
        self.attempt > 1
    }
}

impl From<bindings::Delivery> for Delivery {
    fn from(d: bindings::Delivery) -> Self {
        Self {
            id: d.id,
            attempt: d.attempt,
            idempotency_key: d.idempotency_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    const CONTACT_CREATE: &str =
        r#"{"type":"ContactCreate","locationId":"loc-1","id":"contact-9","tags":["a","b"]}"#;

    fn event(payload: &str) -> Event {
        Event::from(bindings::Event {
            id: "evt-1".into(),
            source: "highlevel".into(),
            kind: "ContactCreate".into(),
            tenant: "loc-1".into(),
            received_at_ms: 1_700_000_000_123,
            payload: payload.into(),
        })
    }

    #[derive(Debug, Deserialize)]
    struct Contact {
        id: String,
        tags: Vec<String>,
    }

    #[test]
    fn json_extracts_only_declared_fields() {
        let contact: Contact = event(CONTACT_CREATE).json().unwrap();
        assert_eq!(contact.id, "contact-9");
        assert_eq!(contact.tags, ["a", "b"]);
    }

    #[test]
    fn json_value_gives_the_whole_document() {
        let value = event(CONTACT_CREATE).json_value().unwrap();
        assert_eq!(value["locationId"], "loc-1");
    }

    #[test]
    fn json_error_names_the_payload_and_the_problem() {
        let err = event(r#"{"type":"ContactCreate"}"#)
            .json::<Contact>()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("event payload: "), "{text}");
        assert!(text.contains("missing field `id`"), "{text}");
    }

    #[test]
    fn highlevel_types_the_payload_by_the_event_kind() {
        match event(CONTACT_CREATE).highlevel().unwrap() {
            HighLevelEvent::Contact(contact) => {
                assert_eq!(contact.id, "contact-9");
                assert_eq!(contact.tags, ["a", "b"]);
            }
            other => panic!("expected a contact, got {other:?}"),
        }
    }

    #[test]
    fn accessors_mirror_the_wit_record() {
        let e = event("{}");
        assert_eq!(
            (e.id(), e.source(), e.kind(), e.tenant()),
            ("evt-1", "highlevel", "ContactCreate", "loc-1")
        );
        assert_eq!(
            e.received_at(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(
            e,
            Event::new(
                "evt-1",
                "highlevel",
                "ContactCreate",
                "loc-1",
                1_700_000_000_123,
                "{}"
            )
        );
    }

    #[test]
    fn delivery_knows_retries() {
        let first = Delivery::from(bindings::Delivery {
            id: "d-1".into(),
            attempt: 1,
            idempotency_key: "k-1".into(),
        });
        assert!(!first.is_retry());
        assert_eq!(first.idempotency_key(), "k-1");
        assert!(Delivery::new("d-1", 2, "k-1").is_retry());
    }
}
