//! `[[sources]]` and `[server.tls]` as written: plain serde structs, unknown fields rejected.
//! `scheme` picks the variant; each variant lists its fields in full, because serde cannot
//! combine `deny_unknown_fields` with flattened shared fields.

use std::path::PathBuf;

use serde::Deserialize;

use super::raw::RawSecret;

/// A `[[sources]]` entry; `scheme` picks the variant and its fields.
#[derive(Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum RawSource {
    Highlevel(RawHighLevel),
    /// Svix sends the same scheme under `svix-*` header names, which are accepted too.
    #[serde(alias = "svix")]
    StandardWebhooks(RawSigned),
    Github(RawSigned),
    Stripe(RawSigned),
    Shopify(RawSigned),
    Slack(RawSigned),
    Hmac(RawHmac),
}

impl RawSource {
    /// The entry's `name`, for messages about the entry as a whole.
    pub fn name(&self) -> &str {
        match self {
            RawSource::Highlevel(r) => &r.name,
            RawSource::StandardWebhooks(r)
            | RawSource::Github(r)
            | RawSource::Stripe(r)
            | RawSource::Shopify(r)
            | RawSource::Slack(r) => &r.name,
            RawSource::Hmac(r) => &r.name,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHighLevel {
    pub name: String,
    pub api: Option<String>,
    pub app_id: Option<String>,
    pub ed25519_keys: Option<Vec<RawPublicKey>>,
    pub rsa_keys: Option<Vec<RawPublicKey>>,
    pub max_age: Option<String>,
    pub require_timestamp: Option<bool>,
    pub require_installation: Option<bool>,
    /// A private key `wasmhook send` signs with (development configs).
    pub signing_key: Option<RawSecret>,
    /// Where the kind is read when the body has no `type`.
    pub kind: Option<RawFieldRule>,
}

/// The schemes whose only settings are secrets and (for those that sign a timestamp) a
/// tolerance: standard-webhooks, github, stripe, shopify, slack.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigned {
    pub name: String,
    pub api: Option<String>,
    pub secrets: Option<Vec<RawSecret>>,
    pub tolerance: Option<String>,
    pub event_id: Option<RawFieldRule>,
    pub kind: Option<RawFieldRule>,
    pub tenant: Option<RawFieldRule>,
}

/// `scheme = "hmac"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHmac {
    pub name: String,
    pub api: Option<String>,
    pub secrets: Option<Vec<RawSecret>>,
    pub header: Option<String>,
    pub prefix: Option<String>,
    pub encoding: Option<String>,
    pub algorithm: Option<String>,
    pub event_id: Option<RawFieldRule>,
    pub kind: Option<RawFieldRule>,
    pub tenant: Option<RawFieldRule>,
}

/// `{ header = "X-Name" }` or `{ pointer = "/json/pointer" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFieldRule {
    pub header: Option<String>,
    pub pointer: Option<String>,
}

/// A public key: inline PEM (public keys are not secret) or a PEM file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublicKey {
    pub pem: Option<String>,
    pub file: Option<PathBuf>,
}

/// `[server.tls]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file with the certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}
