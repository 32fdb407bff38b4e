//! The envelope of a verified webhook: its id, kind and tenant, plus the small JSON helpers
//! every scheme uses to read them.
//!
//! Invariants: an `Envelope` is only produced from a `Verified` body (see `Verified::envelope`);
//! ids, kinds and tenants are non-empty-or-defaulted strings of bounded length, so they are safe
//! to log, index and use as metric-free labels; a body without a sender id gets the stable
//! fallback `sha256:<hex of the raw body>`, so an identical redelivery still deduplicates.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{EnvelopeError, Verified};
use crate::{
    ids::{EventId, TenantId},
    store::NewEvent,
};

/// Longest accepted id, kind or tenant, in bytes. Real ids are under 64; the cap keeps a
/// signed-but-odd body from putting kilobytes into unique indexes and every log line.
pub const MAX_FIELD_LEN: usize = 256;

/// What the host needs to know about an event before storing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's id (HighLevel `webhookId`) or `sha256:<hex of the raw body>`.
    pub id: EventId,
    /// E.g. `ContactCreate`; empty when the sender names none.
    pub kind: String,
    pub tenant: TenantId,
    /// The sender's own timestamp (ms since the epoch), when the body or a signed header
    /// carries one.
    pub sent_at_ms: Option<i64>,
    /// The company (agency) the tenant belongs to, when the event names both (HighLevel
    /// `companyId` next to `locationId`): a company installation covers its locations.
    pub company: Option<TenantId>,
    /// Whether the event installs or uninstalls the app for its tenant.
    pub lifecycle: Lifecycle,
}

/// What an event means for the installation of its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// The app was installed (HighLevel `INSTALL`).
    Install,
    /// The app was uninstalled (HighLevel `UNINSTALL`).
    Uninstall,
    /// Any other event.
    Other,
}

impl Envelope {
    /// The row to store: this envelope with the verified body, received at `received_at_ms`.
    pub fn into_new_event(self, verified: Verified, received_at_ms: i64) -> NewEvent {
        let source = verified.source().name().clone();
        NewEvent {
            source,
            id: self.id,
            kind: self.kind,
            tenant: self.tenant,
            received_at_ms,
            // `Bytes` -> `Vec` reuses the allocation when the buffer is not shared.
            payload: Vec::from(verified.into_body()),
        }
    }
}

/// Parses `body` as a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(EnvelopeError::MalformedJson(format!(
            "the body must be a JSON object, not {}",
            json_type(&other)
        ))),
        // serde_json's message names the line and column, never the content.
        Err(e) => Err(EnvelopeError::MalformedJson(e.to_string())),
    }
}

/// Parses `body` as a JSON object, kept as a `Value` so JSON pointers can address it.
pub fn json_document(body: &[u8]) -> Result<Value, EnvelopeError> {
    json_object(body).map(Value::Object)
}

/// The string at `field`: `None` when absent, null or empty; an error when it is another type
/// or longer than [`MAX_FIELD_LEN`].
pub fn string_field<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, EnvelopeError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_FIELD_LEN => Ok(Some(s)),
        Some(_) => Err(EnvelopeError::InvalidField {
            field: field.to_string(),
            max: MAX_FIELD_LEN,
        }),
    }
}

/// The id used when the sender gives none: `sha256:` and the hex SHA-256 of the raw body.
pub fn fallback_event_id(body: &[u8]) -> EventId {
    EventId::new(format!("sha256:{}", hex::encode(Sha256::digest(body))))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_accepted_and_the_message_says_why() {
        assert!(json_object(br#"{"a":1}"#).is_ok());
        let err = json_object(b"[1,2]").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
        assert!(err.to_string().contains("not an array"), "{err}");
        let err = json_object(b"{\"a\":").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert_eq!(json_object(b"").unwrap_err().code(), "malformed_json");
    }

    #[test]
    fn string_fields_are_lenient_about_absence_and_strict_about_type() {
        let map = json_object(br#"{"a":"x","empty":"","null":null,"n":5}"#).unwrap();
        assert_eq!(string_field(&map, "a"), Ok(Some("x")));
        assert_eq!(string_field(&map, "missing"), Ok(None));
        assert_eq!(string_field(&map, "empty"), Ok(None));
        assert_eq!(string_field(&map, "null"), Ok(None));
        assert_eq!(string_field(&map, "n").unwrap_err().code(), "invalid_field");

        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_FIELD_LEN + 1));
        let map = json_object(long.as_bytes()).unwrap();
        assert!(string_field(&map, "id").is_err());
        let ok = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_FIELD_LEN));
        let map = json_object(ok.as_bytes()).unwrap();
        assert!(string_field(&map, "id").unwrap().is_some());
    }

    #[test]
    fn fallback_id_is_the_sha256_of_the_exact_bytes() {
        assert_eq!(
            fallback_event_id(b"abc").as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(fallback_event_id(b"{}"), fallback_event_id(b"{ }"));
    }
}
