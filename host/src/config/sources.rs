//! `[[sources]]`: the typed configuration of each webhook sender (its scheme, secrets or keys,
//! replay window, and where its events' id, kind and tenant come from).
//!
//! Invariants: secrets are only referenced (`SecretRef`), never held here, so a `Config` can be
//! printed and cloned freely; they are read when `sources::Sources` is built (at start-up and on
//! SIGHUP). Every replay window is shorter than the store's dedup retention (checked by
//! validation), so a replayed event is either a duplicate or too old, never accepted twice.

use std::time::Duration;

use crate::{
    ids::{ApiName, SourceName},
    secret::SecretRef,
};

/// One `[[sources]]` entry.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The `{source}` in `/webhooks/{source}` and the prefix in manifests' `events`.
    pub name: SourceName,
    /// The API this source's tenants call back into, if any. Installations are kept per API
    /// (the source's name stands in when there is none).
    pub api: Option<ApiName>,
    pub scheme: SchemeConfig,
    /// Where the event id, kind and tenant come from, overriding the scheme's defaults.
    pub fields: FieldOverrides,
}

impl SourceConfig {
    /// A source with no field overrides (tests and programmatic configs).
    pub fn new(name: SourceName, api: Option<ApiName>, scheme: SchemeConfig) -> SourceConfig {
        SourceConfig {
            name,
            api,
            scheme,
            fields: FieldOverrides::default(),
        }
    }
}

/// `event_id`, `kind` and `tenant` in a `[[sources]]` entry: each names one header or one JSON
/// pointer into the body, replacing the scheme's default place for that field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldOverrides {
    pub event_id: Option<FieldRule>,
    pub kind: Option<FieldRule>,
    pub tenant: Option<FieldRule>,
}

/// Where one envelope field is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRule {
    /// A request header (`{ header = "X-Event-Id" }`).
    Header(http::HeaderName),
    /// An RFC 6901 JSON pointer into the body (`{ pointer = "/data/id" }`).
    Pointer(String),
}

/// The signature scheme of a source and its keys.
#[derive(Clone, Debug)]
pub enum SchemeConfig {
    HighLevel(HighLevelConfig),
    StandardWebhooks(StandardWebhooksConfig),
    GitHub(GitHubConfig),
    Stripe(StripeConfig),
    Shopify(ShopifyConfig),
    Slack(SlackConfig),
    Hmac(HmacConfig),
}

impl SchemeConfig {
    /// The name written as `scheme = "..."`.
    pub fn name(&self) -> &'static str {
        match self {
            SchemeConfig::HighLevel(_) => "highlevel",
            SchemeConfig::StandardWebhooks(_) => "standard-webhooks",
            SchemeConfig::GitHub(_) => "github",
            SchemeConfig::Stripe(_) => "stripe",
            SchemeConfig::Shopify(_) => "shopify",
            SchemeConfig::Slack(_) => "slack",
            SchemeConfig::Hmac(_) => "hmac",
        }
    }

    /// How old an event this scheme can still accept (its replay window), when it signs a
    /// timestamp or judges a body one. `None`: the scheme has no timestamp, so the dedup
    /// retention alone stops replays.
    pub fn replay_window(&self) -> Option<Duration> {
        match self {
            SchemeConfig::HighLevel(hl) => Some(hl.max_age),
            SchemeConfig::StandardWebhooks(c) => Some(c.tolerance),
            SchemeConfig::Stripe(c) => Some(c.tolerance),
            SchemeConfig::Slack(c) => Some(c.tolerance),
            SchemeConfig::GitHub(_) | SchemeConfig::Shopify(_) | SchemeConfig::Hmac(_) => None,
        }
    }

    /// Where the scheme's secrets come from (empty for HighLevel, which uses public keys).
    pub fn secrets(&self) -> &[SecretRef] {
        match self {
            SchemeConfig::HighLevel(_) => &[],
            SchemeConfig::StandardWebhooks(c) => &c.secrets,
            SchemeConfig::GitHub(c) => &c.secrets,
            SchemeConfig::Stripe(c) => &c.secrets,
            SchemeConfig::Shopify(c) => &c.secrets,
            SchemeConfig::Slack(c) => &c.secrets,
            SchemeConfig::Hmac(c) => &c.secrets,
        }
    }
}

/// `scheme = "highlevel"`.
#[derive(Clone, Debug)]
pub struct HighLevelConfig {
    /// Our marketplace app id: events with another (or no) `appId` are refused.
    pub app_id: String,
    /// Ed25519 keys for `x-ghl-signature`; default: HighLevel's published key.
    pub ed25519_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// RSA keys for the legacy `x-wh-signature`; default: HighLevel's published key.
    pub rsa_keys: Vec<rsa::RsaPublicKey>,
    /// Oldest accepted body `timestamp`. Default 72 h.
    pub max_age: Duration,
    /// Refuse events without a body `timestamp`. Default false.
    pub require_timestamp: bool,
    /// Refuse events whose tenant has no pending, active or needs-reauth installation
    /// (INSTALL itself is exempt). Default true.
    pub require_installation: bool,
    /// A private key (Ed25519 or RSA, PEM) that `wasmhook send` signs with when given no
    /// `--key`: the dev key `wasmhook init` writes. The server never reads it. Default none.
    pub signing_key: Option<SecretRef>,
}

/// The Standard Webhooks default tolerance, both ways, in the libraries and the spec.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// `scheme = "standard-webhooks"` (alias `svix`).
#[derive(Clone, Debug)]
pub struct StandardWebhooksConfig {
    /// `whsec_...` (HMAC-SHA256, `v1`), `whpk_...` (an Ed25519 public key, `v1a`) or `whsk_...`
    /// (an Ed25519 secret key, `v1a`; only its public half is used to verify).
    pub secrets: Vec<SecretRef>,
    /// Accepted clock difference, both ways. Default 5 min.
    pub tolerance: Duration,
}

/// `scheme = "github"`.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    /// The webhook secrets (HMAC-SHA256 keys, used as written).
    pub secrets: Vec<SecretRef>,
}

/// `scheme = "stripe"`.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// The endpoint secrets (`whsec_...`, used as written, prefix included).
    pub secrets: Vec<SecretRef>,
    /// Accepted clock difference, both ways. Default 5 min.
    pub tolerance: Duration,
}

/// `scheme = "shopify"`.
#[derive(Clone, Debug)]
pub struct ShopifyConfig {
    /// The app's client secrets (HMAC-SHA256 keys, used as written).
    pub secrets: Vec<SecretRef>,
}

/// `scheme = "slack"`.
#[derive(Clone, Debug)]
pub struct SlackConfig {
    /// The app's signing secrets (HMAC-SHA256 keys, used as written).
    pub secrets: Vec<SecretRef>,
    /// Accepted clock difference, both ways. Default 5 min.
    pub tolerance: Duration,
}

/// `scheme = "hmac"`: a MAC of the raw body in one header.
#[derive(Clone, Debug)]
pub struct HmacConfig {
    pub secrets: Vec<SecretRef>,
    /// The header carrying the MAC.
    pub header: http::HeaderName,
    /// Text before the MAC in the header (e.g. `sha256=`); may be empty.
    pub prefix: String,
    pub encoding: MacEncoding,
    pub algorithm: MacAlgorithm,
}

/// How a MAC is written in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacEncoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64, padding optional.
    Base64,
}

/// The hash under HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlgorithm {
    Sha256,
    Sha512,
}
