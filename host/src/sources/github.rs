//! The `github` scheme: GitHub webhooks.
//!
//! Verification: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body keyed with the
//! webhook secret as written. The legacy SHA-1 `X-Hub-Signature` is never consulted: accepting
//! it would let an attacker pick the weaker MAC. GitHub signs no timestamp, so replays are
//! stopped by the delivery id's dedup alone.
//!
//! Envelope: id = `X-GitHub-Delivery`, kind = `X-GitHub-Event`, tenant = the GitHub App
//! installation id in the body (`/installation/id`), else the source's name.

use http::HeaderMap;

use super::{
    Envelope, EnvelopeError, Proof, VerifyError,
    fields::{Defaults, Place, Plan},
    headers,
    mac::MacKeys,
};
use crate::{
    config::{FieldOverrides, MacAlgorithm},
    ids::SourceName,
    secret::Secret,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const PREFIX: &str = "sha256=";

const DEFAULTS: Defaults = Defaults {
    id: &[Place::Header("x-github-delivery")],
    kind: &[Place::Header("x-github-event")],
    tenant: &[Place::Pointer("/installation/id")],
};

/// A configured `github` source's keys.
pub struct GitHub {
    keys: MacKeys,
    plan: Plan,
}

impl GitHub {
    /// Builds the scheme from the webhook secrets; on failure, the index of the bad one and why.
    pub fn new(
        secrets: &[Secret],
        fields: &FieldOverrides,
    ) -> Result<GitHub, (usize, &'static str)> {
        Ok(GitHub {
            keys: MacKeys::from_secrets(secrets, MacAlgorithm::Sha256)?,
            plan: Plan::new(&DEFAULTS, fields),
        })
    }

    /// Checks `X-Hub-Signature-256` over the raw body.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Proof, VerifyError> {
        let value = headers::required(headers, SIGNATURE_HEADER)?;
        let Some(hex) = value.strip_prefix(PREFIX) else {
            return Err(VerifyError::Malformed {
                header: SIGNATURE_HEADER.into(),
                reason: "the value must start with `sha256=`",
            });
        };
        let signature = headers::hex(SIGNATURE_HEADER, hex)?;
        self.keys
            .prove(&[body], &[signature], SIGNATURE_HEADER, None)
    }

    /// The envelope of a verified request.
    pub(super) fn envelope(
        &self,
        source: &SourceName,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Envelope, EnvelopeError> {
        self.plan.json_envelope(source, headers, body, None)
    }

    /// The header value for `body` under key `index` (for `wasmhook send`).
    pub(super) fn sign(&self, index: usize, body: &[u8]) -> Option<(&'static str, String)> {
        let tag = self.keys.tag(index, &[body])?;
        Some((SIGNATURE_HEADER, format!("{PREFIX}{}", hex::encode(tag))))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;
    use crate::sources::SignatureKind;

    // GitHub's published test values ("Validating webhook deliveries", section "Testing the
    // webhook payload validation", docs.github.com).
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_PAYLOAD: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn github(secrets: &[&str]) -> GitHub {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        GitHub::new(&secrets, &FieldOverrides::default()).unwrap()
    }

    fn signed(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn the_documented_example_verifies_and_signs() {
        let gh = github(&[DOC_SECRET]);
        let proof = gh.verify(&signed(DOC_SIGNATURE), DOC_PAYLOAD).unwrap();
        assert_eq!((proof.kind, proof.key), (SignatureKind::HmacSha256, 0));
        // Hex of either case is hex.
        assert!(
            gh.verify(
                &signed(&DOC_SIGNATURE.to_uppercase().replace("SHA256=", "sha256=")),
                DOC_PAYLOAD
            )
            .is_ok()
        );
        assert_eq!(
            gh.sign(0, DOC_PAYLOAD),
            Some((SIGNATURE_HEADER, DOC_SIGNATURE.to_string()))
        );
    }

    #[test]
    fn rotation_accepts_either_secret() {
        let gh = github(&["new secret", DOC_SECRET]);
        assert_eq!(
            gh.verify(&signed(DOC_SIGNATURE), DOC_PAYLOAD).unwrap().key,
            1
        );
    }

    #[test]
    fn reject_cases() {
        let gh = github(&[DOC_SECRET]);
        let err = |h: HeaderMap, body: &[u8]| gh.verify(&h, body).unwrap_err();
        assert_eq!(
            err(HeaderMap::new(), DOC_PAYLOAD).code(),
            "missing_signature"
        );
        // The legacy SHA-1 header alone is not enough.
        let mut legacy = HeaderMap::new();
        legacy.insert("x-hub-signature", HeaderValue::from_static("sha1=0000"));
        assert_eq!(err(legacy, DOC_PAYLOAD).code(), "missing_signature");
        // Wrong version prefix, a partial signature, a flipped byte of the body or the MAC.
        let sha1 = DOC_SIGNATURE.replace("sha256=", "sha1=");
        assert!(matches!(
            err(signed(&sha1), DOC_PAYLOAD),
            VerifyError::Malformed { .. }
        ));
        assert!(
            matches!(
                err(signed(&DOC_SIGNATURE[..39]), DOC_PAYLOAD),
                VerifyError::Mismatch { .. }
            ),
            "half the MAC"
        );
        assert!(matches!(
            err(signed("sha256="), DOC_PAYLOAD),
            VerifyError::Mismatch { .. }
        ));
        assert!(
            matches!(
                err(signed(&DOC_SIGNATURE[..70]), DOC_PAYLOAD),
                VerifyError::Malformed { .. }
            ),
            "odd hex"
        );
        assert_eq!(
            err(signed(DOC_SIGNATURE), b"Hello, World?").code(),
            "bad_signature"
        );
        let flipped = DOC_SIGNATURE.replace("757107", "757106");
        assert_eq!(err(signed(&flipped), DOC_PAYLOAD).code(), "bad_signature");
        // An empty secret is refused when the source is built.
        assert_eq!(
            GitHub::new(&[Secret::new("")], &FieldOverrides::default())
                .err()
                .map(|(i, _)| i),
            Some(0)
        );
    }

    #[test]
    fn the_envelope_comes_from_the_delivery_headers() {
        let gh = github(&[DOC_SECRET]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-github-delivery",
            HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        );
        h.insert("x-github-event", HeaderValue::from_static("issues"));
        let body =
            serde_json::to_vec(&json!({"action": "opened", "installation": {"id": 5678}})).unwrap();
        let env = gh.envelope(&SourceName::new("gh"), &h, &body).unwrap();
        assert_eq!(env.id.as_str(), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(env.kind, "issues");
        assert_eq!(env.tenant.as_str(), "5678");
        let env = gh
            .envelope(&SourceName::new("gh"), &HeaderMap::new(), b"{}")
            .unwrap();
        assert!(env.id.as_str().starts_with("sha256:"));
        assert_eq!(env.tenant.as_str(), "gh");
    }
}
