//! The generic `hmac` scheme: an HMAC (SHA-256 or SHA-512) of the raw body in one configured
//! header, hex or base64, after an optional prefix such as `sha256=`. For senders that follow
//! none of the named schemes.
//!
//! No timestamp is signed, so replays are stopped by the event id's dedup alone; configure
//! `event_id` to the sender's delivery id when it has one (the default is the body's hash).
//!
//! Envelope: nothing by default (id = the body hash, kind empty, tenant = the source's name);
//! `event_id`, `kind` and `tenant` overrides say where they are.

use http::{HeaderMap, HeaderName};

use super::{
    Envelope, EnvelopeError, Proof, VerifyError,
    fields::{Defaults, Plan},
    headers::{self, BASE64},
    mac::MacKeys,
};
use crate::{
    config::{FieldOverrides, HmacConfig, MacEncoding},
    ids::SourceName,
    secret::Secret,
};

const DEFAULTS: Defaults = Defaults {
    id: &[],
    kind: &[],
    tenant: &[],
};

/// A configured `hmac` source's keys and header format.
pub struct GenericHmac {
    keys: MacKeys,
    header: HeaderName,
    prefix: String,
    encoding: MacEncoding,
    plan: Plan,
}

impl GenericHmac {
    /// Builds the scheme; on failure, the index of the bad secret and why.
    pub fn new(
        secrets: &[Secret],
        config: &HmacConfig,
        fields: &FieldOverrides,
    ) -> Result<GenericHmac, (usize, &'static str)> {
        Ok(GenericHmac {
            keys: MacKeys::from_secrets(secrets, config.algorithm)?,
            header: config.header.clone(),
            prefix: config.prefix.clone(),
            encoding: config.encoding,
            plan: Plan::new(&DEFAULTS, fields),
        })
    }

    /// Checks the configured header over the raw body.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Proof, VerifyError> {
        let label = || self.header.as_str().to_owned().into();
        let value = headers::single_configured(headers, &self.header)?
            .ok_or_else(|| VerifyError::Missing { expected: label() })?;
        let Some(encoded) = value.strip_prefix(self.prefix.as_str()) else {
            return Err(VerifyError::Malformed {
                header: label(),
                reason: "the value does not start with the configured prefix",
            });
        };
        let signature = match self.encoding {
            MacEncoding::Hex => headers::hex(label(), encoded)?,
            MacEncoding::Base64 => headers::base64(label(), encoded)?,
        };
        self.keys.prove(&[body], &[signature], label(), None)
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

    /// The header name and value for `body` under key `index` (for `wasmhook send`).
    pub(super) fn sign(&self, index: usize, body: &[u8]) -> Option<(HeaderName, String)> {
        use base64::Engine;
        let tag = self.keys.tag(index, &[body])?;
        let encoded = match self.encoding {
            MacEncoding::Hex => hex::encode(tag),
            MacEncoding::Base64 => BASE64.encode(tag),
        };
        Some((self.header.clone(), format!("{}{encoded}", self.prefix)))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use http::HeaderValue;

    use super::*;
    use crate::{
        config::{FieldRule, MacAlgorithm},
        sources::SignatureKind,
    };

    fn config(prefix: &str, encoding: MacEncoding, algorithm: MacAlgorithm) -> HmacConfig {
        HmacConfig {
            secrets: Vec::new(),
            header: HeaderName::from_static("x-signature"),
            prefix: prefix.into(),
            encoding,
            algorithm,
        }
    }

    fn scheme(config: &HmacConfig) -> GenericHmac {
        GenericHmac::new(&[Secret::new("Jefe")], config, &FieldOverrides::default()).unwrap()
    }

    fn header(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-signature", HeaderValue::from_str(value).unwrap());
        map
    }

    // RFC 4231 test case 2 (key "Jefe"), used as a sender's MAC of the body.
    const BODY: &[u8] = b"what do ya want for nothing?";
    const SHA256: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const SHA512: &str = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";

    #[test]
    fn hex_and_base64_sha256_and_sha512_with_and_without_prefix() {
        let s = scheme(&config("sha256=", MacEncoding::Hex, MacAlgorithm::Sha256));
        assert!(s.verify(&header(&format!("sha256={SHA256}")), BODY).is_ok());
        assert_eq!(s.sign(0, BODY).unwrap().1, format!("sha256={SHA256}"));

        let s = scheme(&config("", MacEncoding::Base64, MacAlgorithm::Sha512));
        let b64 = BASE64.encode(hex::decode(SHA512).unwrap());
        let proof = s.verify(&header(&b64), BODY).unwrap();
        assert_eq!(proof.kind, SignatureKind::HmacSha512);
    }

    #[test]
    fn reject_cases() {
        let s = scheme(&config("sha256=", MacEncoding::Hex, MacAlgorithm::Sha256));
        let err = |h: HeaderMap, body: &[u8]| s.verify(&h, body).unwrap_err();
        let missing = err(HeaderMap::new(), BODY);
        assert_eq!(missing.code(), "missing_signature");
        assert!(missing.to_string().contains("x-signature"), "{missing}");
        assert!(
            matches!(err(header(SHA256), BODY), VerifyError::Malformed { .. }),
            "prefix missing"
        );
        assert_eq!(
            err(header(&format!("sha256={}", &SHA256[..32])), BODY).code(),
            "bad_signature"
        );
        assert_eq!(
            err(
                header(&format!("sha256={SHA256}")),
                b"what do ya want for nothing!"
            )
            .code(),
            "bad_signature"
        );
        assert_eq!(
            err(header(&format!("sha256={SHA512}")), BODY).code(),
            "bad_signature",
            "another algorithm"
        );
        assert!(
            GenericHmac::new(
                &[Secret::new("")],
                &config("", MacEncoding::Hex, MacAlgorithm::Sha256),
                &FieldOverrides::default()
            )
            .is_err()
        );
    }

    #[test]
    fn the_envelope_follows_the_overrides() {
        let overrides = FieldOverrides {
            event_id: Some(FieldRule::Header(HeaderName::from_static("x-delivery"))),
            kind: Some(FieldRule::Pointer("/event".into())),
            tenant: Some(FieldRule::Pointer("/org".into())),
        };
        let s = GenericHmac::new(
            &[Secret::new("k")],
            &config("", MacEncoding::Hex, MacAlgorithm::Sha256),
            &overrides,
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-delivery", HeaderValue::from_static("d-1"));
        let env = s
            .envelope(
                &SourceName::new("mac"),
                &h,
                br#"{"event":"build.done","org":"acme"}"#,
            )
            .unwrap();
        assert_eq!(
            (env.id.as_str(), env.kind.as_str(), env.tenant.as_str()),
            ("d-1", "build.done", "acme")
        );
    }
}
