//! The `stripe` scheme: Stripe webhooks.
//!
//! Verification: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]`. The
//! signed payload is `t.body`, MACed with HMAC-SHA256 keyed by the endpoint secret exactly as
//! written (`whsec_...`, prefix included: Stripe does not decode it). Several `v1` values may be
//! present (Stripe sends one per active secret while one is rolled) and any may match; other
//! schemes (`v0`, test-mode) are ignored. `t` must be within the tolerance both ways (Stripe's
//! libraries only bound the past; a far-future `t` would outlive the dedup retention).
//!
//! Envelope: id = body `id` (`evt_...`), kind = body `type`, tenant = body `account` (Connect),
//! else the source's name.

use std::time::Duration;

use http::HeaderMap;

use super::{
    Envelope, EnvelopeError, Proof, VerifyError,
    fields::{Defaults, Place, Plan},
    headers,
    mac::MacKeys,
    window,
};
use crate::{
    config::{FieldOverrides, MacAlgorithm},
    ids::SourceName,
    secret::Secret,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

const DEFAULTS: Defaults = Defaults {
    id: &[Place::Pointer("/id")],
    kind: &[Place::Pointer("/type")],
    tenant: &[Place::Pointer("/account")],
};

/// A configured `stripe` source's keys and rules.
pub struct Stripe {
    keys: MacKeys,
    tolerance: Duration,
    plan: Plan,
}

impl Stripe {
    /// Builds the scheme from the endpoint secrets; on failure, the index of the bad one and why.
    pub fn new(
        secrets: &[Secret],
        tolerance: Duration,
        fields: &FieldOverrides,
    ) -> Result<Stripe, (usize, &'static str)> {
        Ok(Stripe {
            keys: MacKeys::from_secrets(secrets, MacAlgorithm::Sha256)?,
            tolerance,
            plan: Plan::new(&DEFAULTS, fields),
        })
    }

    /// Checks `Stripe-Signature` over `t.body` at `now_ms`.
    pub(super) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Proof, VerifyError> {
        let value = headers::required(headers, SIGNATURE_HEADER)?;
        let malformed = |reason| VerifyError::Malformed {
            header: SIGNATURE_HEADER.into(),
            reason,
        };
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for item in value.split(',') {
            let Some((key, val)) = item.trim().split_once('=') else {
                return Err(malformed("expected comma-separated `key=value` items"));
            };
            match key {
                "t" if timestamp.is_some() => return Err(malformed("`t=` is given twice")),
                "t" => timestamp = Some(val),
                // A value that is not hex cannot match; skip it like an unknown scheme.
                "v1" => v1.extend(hex::decode(val).ok()),
                _ => {}
            }
        }
        let t = timestamp.ok_or_else(|| malformed("no `t=` timestamp"))?;
        let sent_secs = headers::unix_seconds(SIGNATURE_HEADER, t)?;
        window::check(SIGNATURE_HEADER, sent_secs, now_ms, self.tolerance)?;
        if v1.is_empty() {
            return Err(VerifyError::NoSupportedVersion {
                header: SIGNATURE_HEADER.into(),
                supported: "v1",
            });
        }
        // `t` is MACed exactly as sent (the digits were checked above).
        let signed_at_ms = Some(sent_secs.saturating_mul(1000));
        self.keys.prove(
            &[t.as_bytes(), b".", body],
            &v1,
            SIGNATURE_HEADER,
            signed_at_ms,
        )
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

    /// The header value for `body` signed at `t` under key `index` (for `wasmhook send`).
    pub(super) fn sign(&self, index: usize, t: i64, body: &[u8]) -> Option<(&'static str, String)> {
        let t = t.to_string();
        let tag = self.keys.tag(index, &[t.as_bytes(), b".", body])?;
        Some((SIGNATURE_HEADER, format!("t={t},v1={}", hex::encode(tag))))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_700_000_000;
    const NOW_MS: i64 = T * 1000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","account":"acct_9"}"#;

    fn stripe(secrets: &[&str]) -> Stripe {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        Stripe::new(
            &secrets,
            Duration::from_secs(300),
            &FieldOverrides::default(),
        )
        .unwrap()
    }

    fn header(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        map
    }

    /// An independent computation of the v1 value: HMAC-SHA256(secret, "t.body"), hex.
    fn v1(secret: &str, t: i64, body: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_signed_event_verifies_with_the_literal_secret() {
        let s = stripe(&[SECRET]);
        let value = format!(
            "t={T},v1={},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
            v1(SECRET, T, BODY)
        );
        let proof = s.verify(&header(&value), BODY, NOW_MS).unwrap();
        assert_eq!(proof.signed_at_ms, Some(NOW_MS));
        assert_eq!(
            s.sign(0, T, BODY).unwrap().1,
            format!("t={T},v1={}", v1(SECRET, T, BODY))
        );
        // The `whsec_` prefix is part of the key: a source with the secret decoded or stripped
        // does not verify Stripe's MAC.
        assert!(
            stripe(&["test_secret"])
                .verify(&header(&value), BODY, NOW_MS)
                .is_err()
        );
    }

    #[test]
    fn several_v1_values_and_rolled_secrets() {
        let s = stripe(&["whsec_old", SECRET]);
        let value = format!("t={T},v1={},v1={}", "00".repeat(32), v1(SECRET, T, BODY));
        assert_eq!(s.verify(&header(&value), BODY, NOW_MS).unwrap().key, 1);
    }

    #[test]
    fn reject_cases() {
        let s = stripe(&[SECRET]);
        let good = v1(SECRET, T, BODY);
        let err =
            |value: &str, body: &[u8], now: i64| s.verify(&header(value), body, now).unwrap_err();
        assert_eq!(
            s.verify(&HeaderMap::new(), BODY, NOW_MS)
                .unwrap_err()
                .code(),
            "missing_signature"
        );
        assert!(
            matches!(
                err(&format!("v1={good}"), BODY, NOW_MS),
                VerifyError::Malformed { .. }
            ),
            "no t"
        );
        assert!(matches!(
            err(&format!("t={T},t={T},v1={good}"), BODY, NOW_MS),
            VerifyError::Malformed { .. }
        ));
        assert!(matches!(
            err("garbage", BODY, NOW_MS),
            VerifyError::Malformed { .. }
        ));
        // Only another scheme's signature (wrong version).
        assert!(matches!(
            err(&format!("t={T},v0={good}"), BODY, NOW_MS),
            VerifyError::NoSupportedVersion { .. }
        ));
        // Partial signature, flipped body byte, MAC under another t.
        assert_eq!(
            err(&format!("t={T},v1={}", &good[..32]), BODY, NOW_MS).code(),
            "bad_signature"
        );
        let mut flipped = BODY.to_vec();
        flipped[8] ^= 1;
        assert_eq!(
            err(&format!("t={T},v1={good}"), &flipped, NOW_MS).code(),
            "bad_signature"
        );
        assert_eq!(
            err(&format!("t={},v1={good}", T + 1), BODY, NOW_MS).code(),
            "bad_signature"
        );
        // Stale and future.
        assert_eq!(
            err(&format!("t={T},v1={good}"), BODY, NOW_MS + 301_000).code(),
            "stale_timestamp"
        );
        assert_eq!(
            err(&format!("t={T},v1={good}"), BODY, NOW_MS - 301_000).code(),
            "future_timestamp"
        );
        // An empty secret.
        assert!(
            Stripe::new(
                &[Secret::new("")],
                Duration::from_secs(1),
                &FieldOverrides::default()
            )
            .is_err()
        );
    }

    #[test]
    fn the_envelope_comes_from_the_event_object() {
        let s = stripe(&[SECRET]);
        let proof = Proof {
            kind: crate::sources::SignatureKind::HmacSha256,
            key: 0,
            signed_at_ms: Some(NOW_MS),
        };
        let env = s
            .envelope(&SourceName::new("stripe"), &HeaderMap::new(), BODY, proof)
            .unwrap();
        assert_eq!(
            (env.id.as_str(), env.kind.as_str(), env.tenant.as_str()),
            ("evt_1", "invoice.paid", "acct_9")
        );
        let body = serde_json::to_vec(&json!({"id": "evt_2", "type": "charge.failed"})).unwrap();
        let env = s
            .envelope(&SourceName::new("stripe"), &HeaderMap::new(), &body, proof)
            .unwrap();
        assert_eq!(env.tenant.as_str(), "stripe");
    }
}
