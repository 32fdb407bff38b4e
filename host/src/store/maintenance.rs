//! The operators' and the background collector's view of the store: replay, cancel, purge,
//! retention, erasure, and what is kept of an event after its payload is dropped.
//!
//! Invariants every backend keeps (checked by `conformance::maintenance`):
//! - Nothing here ever deletes a pending or running delivery except `cancel` (pending only,
//!   by id) and `erase` (the operator asked for it): an acknowledged event is never lost to
//!   retention while a delivery of it still waits.
//! - Retention deletes an event only when it is older than the window AND every delivery of it
//!   succeeded (or it has none); dead deliveries go after `dead_retention`, and their event
//!   after that. So a redelivered webhook inside the window is still recognised as a duplicate.
//! - Data minimisation: once every delivery of an event succeeded, its payload is dropped and
//!   only what dedup needs stays (source, id, kind, tenant, time, SHA-256 of the payload).
//! - Work is done in bounded batches (`limit`), so one call never holds the writer for long.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, PluginName, SourceName, TenantId};

/// Which dead deliveries a bulk replay takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayFilter {
    /// Only this plugin's (None: every plugin's).
    pub plugin: Option<PluginName>,
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Only those that died at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
}

/// How a bulk replay spreads the deliveries it revives over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// When the first revived delivery is due (ms since the epoch).
    pub first_due_ms: i64,
    /// Added to the due time of each next one (0: all due at once).
    pub spacing_ms: i64,
}

/// Which dead deliveries `purge_dead` deletes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeFilter {
    /// Only this plugin's.
    pub plugin: Option<PluginName>,
    /// Only those that died before this time (ms since the epoch); None: all of them.
    pub died_before_ms: Option<i64>,
}

/// What one retention pass may delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Events received before this (ms since the epoch) whose deliveries all succeeded go, with
    /// those deliveries.
    pub events_before_ms: i64,
    /// Dead deliveries that died before this go.
    pub dead_before_ms: i64,
}

/// What a retention pass, a purge or an erase removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Key-value entries (erase only).
    pub kv_entries: u64,
}

impl Removed {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        *self == Removed::default()
    }

    /// Adds `other`'s counts to this one's.
    pub fn add(&mut self, other: Removed) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.kv_entries += other.kv_entries;
    }
}

/// What `erase` removes: everything held about a tenant, or only what names one contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraseRequest {
    pub tenant: TenantId,
    /// Only the events (and their deliveries) whose payload names this contact id; the
    /// tenant's kv data stays.
    pub contact: Option<String>,
}

/// What is kept of an event: everything but the payload, plus whether the payload is still
/// held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    pub source: SourceName,
    pub id: EventId,
    pub kind: String,
    pub tenant: TenantId,
    pub received_at_ms: i64,
    /// Hex SHA-256 of the payload as received (kept after the payload is dropped).
    pub payload_sha256: Option<String>,
    /// Bytes of payload still held (0 once dropped).
    pub payload_len: u64,
    /// When the payload was dropped because every delivery succeeded; None while it is held.
    pub payload_dropped_at_ms: Option<i64>,
}

/// Whether a payload (JSON) names `contact`: a `contactId` / `contact_id` field anywhere, a
/// `contact.id`, or the top-level `id` of a `Contact*` event. Payloads that are not JSON name
/// nobody.
pub fn payload_names_contact(kind: &str, payload: &[u8], contact: &str) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    if kind.starts_with("Contact") && value.get("id").and_then(|v| v.as_str()) == Some(contact) {
        return true;
    }
    names_contact(&value, contact)
}

fn names_contact(value: &serde_json::Value, contact: &str) -> bool {
    match value {
        serde_json::Value::Object(map) => map.iter().any(|(key, v)| {
            let is_contact_field = matches!(key.as_str(), "contactId" | "contact_id" | "contactID");
            (is_contact_field && v.as_str() == Some(contact))
                || (key == "contact" && v.get("id").and_then(|id| id.as_str()) == Some(contact))
                || names_contact(v, contact)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| names_contact(v, contact)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_found_where_highlevel_puts_them() {
        let note = br#"{"type":"NoteCreate","contactId":"c-9","body":"hi"}"#;
        assert!(payload_names_contact("NoteCreate", note, "c-9"));
        assert!(!payload_names_contact("NoteCreate", note, "c-1"));
        let contact = br#"{"type":"ContactCreate","id":"c-9","locationId":"l"}"#;
        assert!(payload_names_contact("ContactCreate", contact, "c-9"));
        // The top-level id of another kind is that object's id, not a contact.
        let opp = br#"{"type":"OpportunityCreate","id":"c-9"}"#;
        assert!(!payload_names_contact("OpportunityCreate", opp, "c-9"));
        let nested = br#"{"items":[{"contact":{"id":"c-9"}}]}"#;
        assert!(payload_names_contact("X", nested, "c-9"));
        assert!(!payload_names_contact("ContactCreate", b"not json", "c-9"));
    }

    #[test]
    fn removed_counts_add_up() {
        let mut total = Removed::default();
        assert!(total.is_empty());
        total.add(Removed {
            events: 1,
            deliveries: 2,
            attempts: 3,
            kv_entries: 4,
        });
        total.add(Removed {
            events: 1,
            ..Removed::default()
        });
        assert_eq!(total.events, 2);
        assert_eq!(total.kv_entries, 4);
        assert!(!total.is_empty());
    }
}
