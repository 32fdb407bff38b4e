//! Stored credentials: one row per (api, tenant) with its token values sealed by `auth::crypto`
//! (the store never sees a plaintext), and the operations token refresh and uninstall erasure
//! need. The tenant [`API_WIDE`] holds a static token that serves every tenant of an API.
//!
//! Invariants every backend keeps (checked by `conformance::credentials`):
//! - `put_credential` with `expected_version = Some(v)` writes only when the stored row is at
//!   version `v` (compare-and-swap); every write bumps the version and clears the refresh lease.
//! - The refresh lease is the persisted in-flight marker: `begin_refresh` takes it only when
//!   the row is at the expected version and no unexpired lease is held, so one refresh runs per
//!   installation at a time across every process that shares the store (PostgreSQL: the same
//!   conditional UPDATE under its row lock). A holder that crashed leaves a lease that expires,
//!   after which the next `begin_refresh` retries with the same (still stored) refresh token.
//! - Uninstall erasure: an installation uninstalled by an event remembers that event, and
//!   `uninstalls_to_erase` lists it once none of that event's deliveries is pending or running
//!   (the subscribed plugins ran first), until `mark_erased`.

use serde::{Deserialize, Serialize};

use crate::ids::{ApiName, TenantId};

/// The tenant of an API-wide static token.
pub const API_WIDE: &str = "*";

/// What kind of credential a row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// OAuth access + refresh token with an expiry.
    Oauth,
    /// A location token minted from its company's token (re-minted, not refreshed, when it
    /// has no refresh token).
    Minted,
    /// A static token (e.g. a HighLevel Private Integration token) with its age.
    Static,
}

impl CredentialKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Oauth => "oauth",
            CredentialKind::Minted => "minted",
            CredentialKind::Static => "static",
        }
    }

    /// The kind named `text`, as stored.
    pub fn parse(text: &str) -> Option<CredentialKind> {
        Some(match text {
            "oauth" => CredentialKind::Oauth,
            "minted" => CredentialKind::Minted,
            "static" => CredentialKind::Static,
            _ => return None,
        })
    }
}

/// One stored credential. Sealed fields are opaque bytes made by `auth::crypto` under the key
/// `key_id`, with AAD = api + tenant + field name.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub api: ApiName,
    pub tenant: TenantId,
    pub kind: CredentialKind,
    /// The master key every sealed field of this row is sealed under.
    pub key_id: String,
    pub access: Vec<u8>,
    pub refresh: Option<Vec<u8>>,
    /// A static token being rotated out: still tried on a 401 until `previous_until_ms`.
    pub previous: Option<Vec<u8>>,
    pub previous_until_ms: Option<i64>,
    /// When the access token expires (ms since the epoch); None: it does not.
    pub expires_at_ms: Option<i64>,
    /// When the access token was obtained or registered (its age counts from here).
    pub issued_at_ms: i64,
    /// Granted scopes, space-separated as the platform sent them.
    pub scopes: String,
    /// The platform's user type (`Location`, `Company`), when it said.
    pub user_type: Option<String>,
    /// For a company token: the company id; for a minted token: the company it came from.
    pub company: Option<TenantId>,
    /// The in-flight refresh marker: a refresh holds the row until this time.
    pub refresh_lease_until_ms: Option<i64>,
    /// Bumped by every write; the compare-and-swap token.
    pub version: i64,
}

impl std::fmt::Debug for CredentialRecord {
    /// Sealed bytes are left out: they are useless without the key, and noise in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("api", &self.api)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Where a page of credentials starts: after this (api, tenant).
pub type CredentialCursor = Option<(ApiName, TenantId)>;
