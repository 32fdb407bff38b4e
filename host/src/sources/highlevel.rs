//! The `highlevel` scheme: HighLevel (GoHighLevel) marketplace webhooks.
//!
//! Verification: `x-ghl-signature` is Ed25519 over the raw body, base64; the legacy
//! `x-wh-signature` is RSA PKCS#1 v1.5 with SHA-256 over the raw body, base64. If the Ed25519
//! header is present it alone decides: a bad one is never rescued by the legacy header (which
//! would let an attacker pick the weaker, retiring scheme). Any configured key may match, so a
//! rotation is configured by listing the old and the new key together.
//!
//! Envelope: id = body `webhookId` (else the body's SHA-256), kind = body `type` (else the
//! configured `kind` fallback, else empty: some events have none), tenant = `locationId`, else
//! `companyId`, else `altId` when `altType == "location"`; `companyId` next to a `locationId` is
//! kept as the tenant's company, and `INSTALL` / `UNINSTALL` mark the event's lifecycle. The
//! acceptance decisions that need only the body (our app, the tenant, the timestamp's age) are
//! made in one place, [`HighLevel::admit`]; whether the tenant is installed is decided by
//! `installations::decide`, in the same store transaction that stores the event.

use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;
use rsa::{Pkcs1v15Sign, RsaPublicKey, traits::PublicKeyParts};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    Envelope, EnvelopeError, Proof, SignatureKind, SourcesError, VerifyError,
    envelope::{Lifecycle, fallback_event_id, json_object, string_field},
    fields,
    headers::{base64, single},
    timestamp::parse_rfc3339,
};
use crate::{
    config::{FieldRule, HighLevelConfig},
    ids::{EventId, SourceName, TenantId},
};

/// The current signature header: Ed25519, base64.
pub const SIGNATURE_HEADER: &str = "x-ghl-signature";
/// The legacy signature header: RSA PKCS#1 v1.5 SHA-256, base64 (retired by HighLevel in 2026).
pub const LEGACY_SIGNATURE_HEADER: &str = "x-wh-signature";

/// A configured `highlevel` source's keys and rules.
pub struct HighLevel {
    /// The source's name, for metrics.
    source: SourceName,
    app_id: String,
    ed25519_keys: Vec<VerifyingKey>,
    rsa_keys: Vec<RsaPublicKey>,
    max_age: Duration,
    require_timestamp: bool,
    require_installation: bool,
    /// Where the kind is read when the body has no `type`.
    kind_fallback: Option<FieldRule>,
}

/// The fields the envelope is read from, type-checked but not yet judged.
struct Fields<'a> {
    webhook_id: Option<&'a str>,
    kind: Option<&'a str>,
    app_id: Option<&'a str>,
    tenant: Option<&'a str>,
    /// `companyId` when the tenant is a location (so the event links the two).
    company: Option<&'a str>,
    timestamp: Option<&'a Value>,
}

impl HighLevel {
    /// Builds the scheme for source `source` from its validated config; `kind_fallback` is the
    /// source's `kind` override.
    pub fn new(
        source: &SourceName,
        config: &HighLevelConfig,
        kind_fallback: Option<FieldRule>,
    ) -> Result<HighLevel, SourcesError> {
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
            require_installation: config.require_installation,
            kind_fallback,
        })
    }

    /// Whether events of tenants without a live installation are refused.
    pub fn require_installation(&self) -> bool {
        self.require_installation
    }

    /// Checks the request's signature over the raw `body`.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Proof, VerifyError> {
        if let Some(value) = single(headers, SIGNATURE_HEADER)? {
            return self.verify_ed25519(value, body);
        }
        if let Some(value) = single(headers, LEGACY_SIGNATURE_HEADER)? {
            return self.verify_rsa(value, body);
        }
        Err(VerifyError::Missing {
            expected: SIGNATURE_HEADER.into(),
        })
    }

    fn verify_ed25519(&self, value: &str, body: &[u8]) -> Result<Proof, VerifyError> {
        let header = SIGNATURE_HEADER;
        let bytes = base64(header, value)?;
        let bytes: [u8; Signature::BYTE_SIZE] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| VerifyError::Length {
                    header: header.into(),
                    actual: bytes.len(),
                    expected: Signature::BYTE_SIZE,
                })?;
        let signature = Signature::from_bytes(&bytes);
        // `verify_strict` also refuses weak public keys and non-canonical signatures, so one
        // message has exactly one valid signature per key (no malleability).
        self.ed25519_keys
            .iter()
            .position(|key| key.verify_strict(body, &signature).is_ok())
            .map(|key| Proof::new(SignatureKind::Ed25519, key))
            .ok_or(VerifyError::Mismatch {
                header: header.into(),
            })
    }

    fn verify_rsa(&self, value: &str, body: &[u8]) -> Result<Proof, VerifyError> {
        let header = LEGACY_SIGNATURE_HEADER;
        let bytes = base64(header, value)?;
        let Some(first) = self.rsa_keys.first() else {
            return Err(VerifyError::Mismatch {
                header: header.into(),
            });
        };
        // A PKCS#1 v1.5 signature is exactly as long as its key's modulus.
        if !self.rsa_keys.iter().any(|k| k.size() == bytes.len()) {
            return Err(VerifyError::Length {
                header: header.into(),
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
            .map(|key| Proof::new(SignatureKind::RsaSha256, key))
            .ok_or(VerifyError::Mismatch {
                header: header.into(),
            })
    }

    /// Reads the envelope of a verified body and applies this source's acceptance rules.
    pub(super) fn envelope(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Envelope, EnvelopeError> {
        let map = json_object(body)?;
        let fallback_kind: Option<String>;
        let mut fields = Fields::read(&map)?;
        if fields.kind.is_none()
            && let Some(rule) = &self.kind_fallback
        {
            // Rare (an event without `type`, on a source that names a fallback), so the copy
            // into a `Value` for the pointer lookup costs nothing that matters.
            fallback_kind = fields::read(rule, headers, &Value::Object(map.clone()))?;
            fields.kind = fallback_kind.as_deref();
        }
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
        let kind = fields.kind.unwrap_or_default();
        Ok(Envelope {
            id: fields
                .webhook_id
                .map(EventId::new)
                .unwrap_or_else(|| fallback_event_id(body)),
            lifecycle: match kind {
                "INSTALL" => Lifecycle::Install,
                "UNINSTALL" => Lifecycle::Uninstall,
                _ => Lifecycle::Other,
            },
            kind: kind.to_string(),
            company: fields
                .company
                .filter(|company| *company != tenant)
                .map(TenantId::new),
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
        let company = string_field(map, "companyId")?;
        let location = string_field(map, "locationId")?;
        let tenant = match location {
            Some(location) => Some(location),
            None => match company {
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
            company: location.and(company),
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

#[cfg(test)]
#[path = "highlevel_tests.rs"]
mod tests;
