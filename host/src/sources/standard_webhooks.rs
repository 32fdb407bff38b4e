//! The `standard-webhooks` scheme (<https://www.standardwebhooks.com>), also sent by Svix under
//! `svix-*` header names.
//!
//! Verification: `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
//! space-separated list of `version,base64` entries; any entry that checks out passes, entries
//! of unknown versions are skipped. The signed content is `id.timestamp.body`.
//! - `v1`: HMAC-SHA256 keyed with the base64-decoded part of a `whsec_...` secret (a secret
//!   without the prefix is taken as the base64 itself, as the libraries do);
//! - `v1a`: Ed25519, with a `whpk_...` public key, or the public half of a `whsk_...` secret key
//!   (a 32-byte seed, or 64 bytes of seed and public key).
//!
//! The timestamp must be within the tolerance (default 5 min) both ways; it is checked before
//! any MAC is computed, so stale replays cost nothing.
//!
//! Envelope: id = `webhook-id`, kind = body `type` (the spec's recommended payload field),
//! tenant = the source's name unless configured.

use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use http::HeaderMap;

use super::{
    Envelope, EnvelopeError, Proof, SignatureKind, VerifyError,
    fields::{Defaults, Place, Plan},
    headers::{self, BASE64},
    mac::MacKeys,
    window,
};
use crate::{
    config::{FieldOverrides, MacAlgorithm},
    ids::SourceName,
    secret::Secret,
};

/// The id header and its Svix alias.
pub const ID_HEADERS: [&str; 2] = ["webhook-id", "svix-id"];
/// The timestamp header and its Svix alias.
pub const TIMESTAMP_HEADERS: [&str; 2] = ["webhook-timestamp", "svix-timestamp"];
/// The signature header and its Svix alias.
pub const SIGNATURE_HEADERS: [&str; 2] = ["webhook-signature", "svix-signature"];

const DEFAULTS: Defaults = Defaults {
    id: &[Place::Header("webhook-id"), Place::Header("svix-id")],
    kind: &[Place::Pointer("/type")],
    tenant: &[],
};

/// A configured `standard-webhooks` source's keys and rules.
pub struct StandardWebhooks {
    /// `v1` keys, and the config index of each.
    mac: Option<(MacKeys, Vec<usize>)>,
    /// `v1a` keys with their config index.
    ed25519: Vec<(VerifyingKey, usize)>,
    tolerance: Duration,
    plan: Plan,
}

/// One configured secret, read.
enum Key {
    Mac(Vec<u8>),
    Public(VerifyingKey),
}

impl StandardWebhooks {
    /// Builds the scheme from the source's secrets (in config order). On failure, returns the
    /// index of the unusable secret and why.
    pub fn new(
        secrets: &[Secret],
        tolerance: Duration,
        fields: &FieldOverrides,
    ) -> Result<StandardWebhooks, (usize, &'static str)> {
        let mut mac_keys = Vec::new();
        let mut mac_index = Vec::new();
        let mut ed25519 = Vec::new();
        for (i, secret) in secrets.iter().enumerate() {
            match parse_key(secret.expose()).map_err(|reason| (i, reason))? {
                Key::Mac(bytes) => {
                    mac_keys.push(bytes);
                    mac_index.push(i);
                }
                Key::Public(key) => ed25519.push((key, i)),
            }
        }
        let mac = if mac_keys.is_empty() {
            None
        } else {
            let keys = MacKeys::new(&mac_keys, MacAlgorithm::Sha256)
                .map_err(|(j, problem)| (mac_index[j], problem.reason()))?;
            Some((keys, mac_index))
        };
        Ok(StandardWebhooks {
            mac,
            ed25519,
            tolerance,
            plan: Plan::new(&DEFAULTS, fields),
        })
    }

    /// Checks the request's signature over `id.timestamp.body`, at `now_ms`.
    pub(super) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Proof, VerifyError> {
        let required = |names: &[&'static str]| {
            headers::first_of(headers, names)?.ok_or(VerifyError::Missing {
                expected: names[0].into(),
            })
        };
        let (_, id) = required(&ID_HEADERS)?;
        let (ts_header, ts) = required(&TIMESTAMP_HEADERS)?;
        let (sig_header, list) = required(&SIGNATURE_HEADERS)?;
        let sent_secs = headers::unix_seconds(ts_header, ts)?;
        window::check(ts_header, sent_secs, now_ms, self.tolerance)?;

        let mut v1 = Vec::new();
        let mut v1a = Vec::new();
        for entry in list.split(' ').filter(|e| !e.is_empty()) {
            // Entries without a comma, of unknown versions, or not base64 are skipped: a
            // sender may add versions we do not know next to one we do.
            let Some((version, signature)) = entry.split_once(',') else {
                continue;
            };
            let Ok(bytes) = BASE64.decode(signature) else {
                continue;
            };
            match version {
                "v1" => v1.push(bytes),
                "v1a" => v1a.push(bytes),
                _ => {}
            }
        }
        if v1.is_empty() && v1a.is_empty() {
            return Err(VerifyError::NoSupportedVersion {
                header: sig_header.into(),
                supported: "v1, v1a",
            });
        }
        // The libraries sign the timestamp as the decimal of the parsed number.
        let ts_text = sent_secs.to_string();
        let proof = |kind, key| Proof {
            kind,
            key,
            signed_at_ms: Some(sent_secs.saturating_mul(1000)),
        };
        if let Some((keys, index)) = &self.mac
            && !v1.is_empty()
            && let Some(k) = keys.find(&[id.as_bytes(), b".", ts_text.as_bytes(), b".", body], &v1)
        {
            return Ok(proof(SignatureKind::HmacSha256, index[k]));
        }
        if !self.ed25519.is_empty() && !v1a.is_empty() {
            // Ed25519 signs a message, not a stream: build `id.timestamp.body` once.
            let mut content = Vec::with_capacity(id.len() + ts_text.len() + 2 + body.len());
            content.extend_from_slice(id.as_bytes());
            content.push(b'.');
            content.extend_from_slice(ts_text.as_bytes());
            content.push(b'.');
            content.extend_from_slice(body);
            let signatures: Vec<Signature> = v1a
                .iter()
                .filter_map(|bytes| Signature::from_slice(bytes).ok())
                .collect();
            for (key, index) in &self.ed25519 {
                // `verify_strict`: no weak keys, no malleable signatures.
                if signatures
                    .iter()
                    .any(|sig| key.verify_strict(&content, sig).is_ok())
                {
                    return Ok(proof(SignatureKind::Ed25519, *index));
                }
            }
        }
        Err(VerifyError::Mismatch {
            header: sig_header.into(),
        })
    }

    /// The envelope of a verified request.
    pub(super) fn envelope(
        &self,
        source: &SourceName,
        headers: &HeaderMap,
        body: &[u8],
        proof: Proof,
    ) -> Result<Envelope, EnvelopeError> {
        self.plan
            .json_envelope(source, headers, body, proof.signed_at_ms)
    }
}

/// The `webhook-signature` value a sender puts on `body`: `v1` with a `whsec_` secret, `v1a`
/// with a `whsk_` secret key.
pub(crate) fn sign(
    secret: &str,
    id: &str,
    ts_secs: i64,
    body: &[u8],
) -> Result<String, &'static str> {
    let ts = ts_secs.to_string();
    let content = [id.as_bytes(), b".", ts.as_bytes(), b".", body].concat();
    if let Some(private) = secret.strip_prefix("whsk_") {
        let signature = ed25519_dalek::Signer::sign(&signing_key(private)?, &content);
        return Ok(format!("v1a,{}", BASE64.encode(signature.to_bytes())));
    }
    match parse_key(secret)? {
        Key::Mac(key) => {
            let keys = MacKeys::new(&[key], MacAlgorithm::Sha256).map_err(|(_, p)| p.reason())?;
            let tag = keys.tag(0, &[&content]).ok_or("no key")?;
            Ok(format!("v1,{}", BASE64.encode(tag)))
        }
        Key::Public(_) => Err("a whpk_ public key cannot sign; use the whsk_ secret key"),
    }
}

/// The Ed25519 key of a `whsk_` secret (without its prefix): a 32-byte seed, or 64 bytes of
/// seed and public key (which must belong together).
fn signing_key(private: &str) -> Result<SigningKey, &'static str> {
    let bytes = BASE64
        .decode(private)
        .map_err(|_| "the whsk_ key is not base64")?;
    let seed: [u8; 32] = bytes
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .filter(|_| bytes.len() == 32 || bytes.len() == 64)
        .ok_or("a whsk_ key must be a 32-byte seed or 64 bytes of seed and public key")?;
    let key = SigningKey::from_bytes(&seed);
    if bytes.len() == 64 && bytes[32..] != key.verifying_key().to_bytes() {
        return Err("the whsk_ key's public half does not belong to its seed");
    }
    Ok(key)
}

/// Reads one configured secret: `whsec_` (or bare) base64 HMAC key, `whpk_` public key, or
/// `whsk_` secret key.
fn parse_key(secret: &str) -> Result<Key, &'static str> {
    if let Some(public) = secret.strip_prefix("whpk_") {
        let bytes = BASE64
            .decode(public)
            .map_err(|_| "the whpk_ key is not base64")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a whpk_ key must be 32 bytes of Ed25519 public key")?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "the whpk_ key is not a valid Ed25519 point")?;
        if key.is_weak() {
            return Err("the whpk_ key is a weak Ed25519 key");
        }
        return Ok(Key::Public(key));
    }
    if let Some(private) = secret.strip_prefix("whsk_") {
        return Ok(Key::Public(signing_key(private)?.verifying_key()));
    }
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| "a whsec_ secret must be base64 after the prefix")?;
    if bytes.is_empty() {
        return Err("the secret is empty");
    }
    Ok(Key::Mac(bytes))
}

#[cfg(test)]
#[path = "standard_webhooks_tests.rs"]
mod tests;
