//! Installations: which tenants have the app installed, per API, and the one decision whether a
//! verified event of a tenant is accepted.
//!
//! An installation is (api, tenant) in one of four states: `pending` (INSTALL seen, or OAuth
//! started; credentials come with the token issue), `active` (credentials present),
//! `needs-reauth` (credentials refused; a user must re-authorise), and `uninstalled` (a
//! tombstone: kept so a late or replayed event cannot revive it; a new INSTALL does). Ingress
//! accepts events for the first three. A company (agency) installation covers its locations:
//! company -> location links are recorded from events that carry both ids.
//!
//! Invariants:
//! - [`decide`] is the only place that judges an event against installations; the store runs
//!   it inside the transaction that stores the event, so no UNINSTALL can slip between the check
//!   and the insert.
//! - A state change carries the sender's timestamp and never goes back in time: an INSTALL
//!   retried after a newer UNINSTALL does not revive the installation.

mod decide;

use crate::{
    ids::{ApiName, DeliveryId, TenantId},
    store::IngestOutcome,
};

pub use decide::{Current, Decision, Facts, Refusal, StateChange, decide};

/// The installation check of one verified event, run by `Store::ingest_gated` inside the
/// transaction that stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Whose installations: the source's API (or its name when it has none).
    pub api: ApiName,
    /// The source's `require_installation`.
    pub require: bool,
    pub facts: Facts,
}

/// What `Store::ingest_gated` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatedOutcome {
    /// Stored, with these deliveries; the installation change (if any) is applied.
    Inserted { deliveries: Vec<DeliveryId> },
    /// Already stored (same source and id); nothing was written, not even the change.
    Duplicate,
    /// Refused by [`decide`]; nothing was written.
    Refused(Refusal),
}

impl From<IngestOutcome> for GatedOutcome {
    fn from(outcome: IngestOutcome) -> GatedOutcome {
        match outcome {
            IngestOutcome::Inserted { deliveries } => GatedOutcome::Inserted { deliveries },
            IngestOutcome::Duplicate => GatedOutcome::Duplicate,
        }
    }
}

/// The state of one installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallationState {
    /// INSTALL seen (or OAuth started); no credentials yet.
    Pending,
    /// Credentials present.
    Active,
    /// The credentials were refused; the app must be re-authorised.
    NeedsReauth,
    /// Uninstalled: a tombstone.
    Uninstalled,
}

impl InstallationState {
    /// The name stored and shown (`pending`, `active`, `needs-reauth`, `uninstalled`).
    pub fn as_str(self) -> &'static str {
        match self {
            InstallationState::Pending => "pending",
            InstallationState::Active => "active",
            InstallationState::NeedsReauth => "needs-reauth",
            InstallationState::Uninstalled => "uninstalled",
        }
    }

    /// The state named `text`, as stored.
    pub fn parse(text: &str) -> Option<InstallationState> {
        Some(match text {
            "pending" => InstallationState::Pending,
            "active" => InstallationState::Active,
            "needs-reauth" => InstallationState::NeedsReauth,
            "uninstalled" => InstallationState::Uninstalled,
            _ => return None,
        })
    }

    /// Whether events of a tenant in this state are accepted.
    pub fn accepts_events(self) -> bool {
        !matches!(self, InstallationState::Uninstalled)
    }
}

/// One stored installation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installation {
    pub api: ApiName,
    pub tenant: TenantId,
    pub state: InstallationState,
    /// The sender's time of the event (or call) that set the state, ms since the epoch; later
    /// changes must not be older.
    pub state_at_ms: i64,
    /// When the row was first written.
    pub created_at_ms: i64,
    /// When the row was last written.
    pub updated_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_the_tombstone_refuses() {
        for state in [
            InstallationState::Pending,
            InstallationState::Active,
            InstallationState::NeedsReauth,
            InstallationState::Uninstalled,
        ] {
            assert_eq!(InstallationState::parse(state.as_str()), Some(state));
            assert_eq!(
                state.accepts_events(),
                state != InstallationState::Uninstalled
            );
        }
        assert_eq!(InstallationState::parse("installed"), None);
        assert_eq!(
            serde_json::to_string(&InstallationState::NeedsReauth).unwrap(),
            "\"needs-reauth\""
        );
    }
}
