//! The `highlevel` scheme: HighLevel (GoHighLevel) marketplace webhooks.
//!
//! Verification: `x-ghl-signature` is Ed25519 over the raw body, base64; the legacy
//! `x-wh-signature` is RSA PKCS#1 v1.5 with SHA-256 over the raw body, base64. If the Ed25519
//! header is present it alone decides: a bad one is never rescued by the legacy header (which
//! would let an attacker pick the weaker, retiring scheme). Any configured key may match, so a
//! rotation is configured by listing the old and the new key together.
//!
//! Envelope: id = body `webhookId` (else the body's SHA-256), kind = body `type` (else empty:
//! some events have none), tenant = `locationId`, else `companyId`, else `altId` when
//! `altType == "location"`. All acceptance decisions (our app, the tenant, the timestamp's age)
//! are made in one place, [`HighLevel::admit`], where later checks (installations) join them.

use std::time::Duration;

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;
use rsa::{Pkcs1v15Sign, RsaPublicKey, traits::PublicKeyParts};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    Envelope, EnvelopeError, Proof, SignatureKind, SourcesError, VerifyError,
    envelope::{fallback_event_id, json_object, string_field},
    timestamp::parse_rfc3339,
};
use crate::{
    config::HighLevelConfig,
    ids::{EventId, SourceName, TenantId},
};

/// The current signature header: Ed25519, base64.
pub const SIGNATURE_HEADER: &str = "x-ghl-signature";
/// The legacy signature header: RSA PKCS#1 v1.5 SHA-256, base64 (retired by HighLevel in 2026).
pub const LEGACY_SIGNATURE_HEADER: &str = "x-wh-signature";

/// Standard base64; padding optional, because senders differ in whether they strip it and
/// the signature's length is checked after decoding anyway.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A configured `highlevel` source's keys and rules.
pub struct HighLevel {
    /// The source's name, for metrics.
    source: SourceName,
    app_id: String,
    ed25519_keys: Vec<VerifyingKey>,
    rsa_keys: Vec<RsaPublicKey>,
    max_age: Duration,
    require_timestamp: bool,
}

/// The fields the envelope is read from, type-checked but not yet judged.
struct Fields<'a> {
    webhook_id: Option<&'a str>,
    kind: Option<&'a str>,
    app_id: Option<&'a str>,
    tenant: Option<&'a str>,
    timestamp: Option<&'a Value>,
}

impl HighLevel {
    /// Builds the scheme for source `source` from its validated config.
    pub fn new(source: &SourceName, config: &HighLevelConfig) -> Result<HighLevel, SourcesError> {
        if config.ed25519_keys.is_empty() && config.rsa_keys.is_empty() {
            return Err(SourcesError::NoKeys(source.clone()));
        }
        Ok(HighLevel {
            source: source.clone(),
            app_id: config.app_id.clone(),
            ed25519_keys: config.ed25519_keys.clone(),
            rsa_keys: config.rsa_keys.clone(),
            max_age: config.max_age,
            require_timestamp: config.require_timestamp,
        })
    }

    /// Checks the request's signature over the raw `body`.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Proof, VerifyError> {
        if let Some(value) = single_header(headers, SIGNATURE_HEADER)? {
            return self.verify_ed25519(value, body);
        }
        if let Some(value) = single_header(headers, LEGACY_SIGNATURE_HEADER)? {
            return self.verify_rsa(value, body);
        }
        Err(VerifyError::Missing {
            expected: SIGNATURE_HEADER,
        })
    }

    fn verify_ed25519(&self, value: &str, body: &[u8]) -> Result<Proof, VerifyError> {
        let header = SIGNATURE_HEADER;
        let bytes = decode(header, value)?;
        let bytes: [u8; Signature::BYTE_SIZE] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| VerifyError::Length {
                    header,
                    actual: bytes.len(),
                    expected: Signature::BYTE_SIZE,
                })?;
        let signature = Signature::from_bytes(&bytes);
        // `verify_strict` also refuses weak public keys and non-canonical signatures, so one
        // message has exactly one valid signature per key (no malleability).
        self.ed25519_keys
            .iter()
            .position(|key| key.verify_strict(body, &signature).is_ok())
            .map(|key| Proof {
                kind: SignatureKind::Ed25519,
                key,
            })
            .ok_or(VerifyError::Mismatch { header })
    }

    fn verify_rsa(&self, value: &str, body: &[u8]) -> Result<Proof, VerifyError> {
        let header = LEGACY_SIGNATURE_HEADER;
        let bytes = decode(header, value)?;
        let Some(first) = self.rsa_keys.first() else {
            return Err(VerifyError::Mismatch { header });
        };
        // A PKCS#1 v1.5 signature is exactly as long as its key's modulus.
        if !self.rsa_keys.iter().any(|k| k.size() == bytes.len()) {
            return Err(VerifyError::Length {
                header,
                actual: bytes.len(),
                expected: first.size(),
            });
        }
        // Hash once, then try every key of the right size (rotation).
        let digest = Sha256::digest(body);
        self.rsa_keys
            .iter()
            .position(|key| {
                key.size() == bytes.len()
                    && key
                        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &bytes)
                        .is_ok()
            })
            .map(|key| Proof {
                kind: SignatureKind::RsaSha256,
                key,
            })
            .ok_or(VerifyError::Mismatch { header })
    }

    /// Reads the envelope of a verified body and applies this source's acceptance rules.
    pub(super) fn envelope(&self, body: &[u8], now_ms: i64) -> Result<Envelope, EnvelopeError> {
        let map = json_object(body)?;
        let fields = Fields::read(&map)?;
        self.admit(&fields, body, now_ms)
    }

    /// Every decision on whether a well-formed event is accepted, in this order: it is for our
    /// app (403), it names a tenant (400), its timestamp is recent enough (400 when unreadable,
    /// 403 when too old or required and missing). The app comes first because an event for
    /// another app is not ours to interpret at all.
    fn admit(
        &self,
        fields: &Fields<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Envelope, EnvelopeError> {
        // The app id is public data, so a plain comparison is fine here (no timing secret).
        match fields.app_id {
            None => return Err(EnvelopeError::MissingAppId),
            Some(app) if app != self.app_id => return Err(EnvelopeError::WrongApp),
            Some(_) => {}
        }
        let tenant = fields.tenant.ok_or(EnvelopeError::MissingTenant)?;
        let sent_at_ms = match fields.timestamp.map(timestamp_ms).transpose()?.flatten() {
            Some(sent) => {
                self.check_age(sent, now_ms)?;
                Some(sent)
            }
            None if self.require_timestamp => return Err(EnvelopeError::MissingTimestamp),
            None => {
                // Accepted, but counted: a rise means replay protection is not working.
                metrics::counter!(
                    "wasmhook_webhooks_missing_timestamp_total",
                    "source" => self.source.to_string()
                )
                .increment(1);
                None
            }
        };
        Ok(Envelope {
            id: fields
                .webhook_id
                .map(EventId::new)
                .unwrap_or_else(|| fallback_event_id(body)),
            kind: fields.kind.unwrap_or_default().to_string(),
            tenant: TenantId::new(tenant),
            sent_at_ms,
        })
    }

    /// Refuses a timestamp older than `max_age`. A timestamp in the future is accepted: the
    /// sender's clock may be ahead of ours, and the signature already proves the sender.
    fn check_age(&self, sent_ms: i64, now_ms: i64) -> Result<(), EnvelopeError> {
        let max_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        let age_ms = now_ms.saturating_sub(sent_ms);
        if age_ms > max_ms {
            return Err(EnvelopeError::TooOld {
                age_secs: (age_ms / 1000).unsigned_abs(),
                max_age_secs: self.max_age.as_secs(),
            });
        }
        Ok(())
    }
}

impl<'a> Fields<'a> {
    fn read(map: &'a Map<String, Value>) -> Result<Fields<'a>, EnvelopeError> {
        let tenant = match string_field(map, "locationId")? {
            Some(location) => Some(location),
            None => match string_field(map, "companyId")? {
                Some(company) => Some(company),
                // Invoice-like events name the tenant generically.
                None if string_field(map, "altType")? == Some("location") => {
                    string_field(map, "altId")?
                }
                None => None,
            },
        };
        Ok(Fields {
            webhook_id: string_field(map, "webhookId")?,
            kind: string_field(map, "type")?,
            app_id: string_field(map, "appId")?,
            tenant,
            timestamp: map.get("timestamp"),
        })
    }
}

/// The body `timestamp` as ms since the epoch: RFC 3339 text, or epoch milliseconds as a
/// number or a string of digits. Null or empty text means absent.
fn timestamp_ms(value: &Value) -> Result<Option<i64>, EnvelopeError> {
    let bad = |reason: &str| Err(EnvelopeError::BadTimestamp(reason.to_string()));
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<i64>() {
            Ok(ms) => Ok(Some(ms)),
            Err(_) => bad("epoch milliseconds out of range"),
        },
        Value::String(s) => match parse_rfc3339(s) {
            Ok(ms) => Ok(Some(ms)),
            Err(e) => bad(e.reason()),
        },
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(ms), _) => Ok(Some(ms)),
            // Fractional milliseconds: truncate. The bound keeps the cast exact enough.
            (None, Some(f)) if f.is_finite() && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => bad("epoch milliseconds out of range"),
        },
        _ => bad("expected text or a number"),
    }
}

/// The one value of header `name`: `None` when absent, an error when repeated or not text.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::Repeated { header: name });
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| VerifyError::Encoding { header: name })
}

fn decode(header: &'static str, value: &str) -> Result<Vec<u8>, VerifyError> {
    BASE64
        .decode(value)
        .map_err(|_| VerifyError::Encoding { header })
}

#[cfg(test)]
#[path = "highlevel_tests.rs"]
mod tests;
