//! The `shopify` scheme: Shopify webhooks.
//!
//! Verification: `X-Shopify-Hmac-Sha256`, base64 of HMAC-SHA256 over the raw body, keyed with
//! the app's client secret as written. Shopify signs no timestamp (`X-Shopify-Triggered-At` is
//! not covered by the MAC), so replays are stopped by the webhook id's dedup alone.
//!
//! Envelope: id = `X-Shopify-Webhook-Id`, kind = `X-Shopify-Topic` (e.g. `orders/create`),
//! tenant = `X-Shopify-Shop-Domain` (the shop), else the source's name.

use http::HeaderMap;

use super::{
    Envelope, EnvelopeError, Proof, VerifyError,
    fields::{Defaults, Place, Plan},
    headers::{self, BASE64},
    mac::MacKeys,
};
use crate::{
    config::{FieldOverrides, MacAlgorithm},
    ids::SourceName,
    secret::Secret,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";

const DEFAULTS: Defaults = Defaults {
    id: &[Place::Header("x-shopify-webhook-id")],
    kind: &[Place::Header("x-shopify-topic")],
    tenant: &[Place::Header("x-shopify-shop-domain")],
};

/// A configured `shopify` source's keys.
pub struct Shopify {
    keys: MacKeys,
    plan: Plan,
}

impl Shopify {
    /// Builds the scheme from the client secrets; on failure, the index of the bad one and why.
    pub fn new(
        secrets: &[Secret],
        fields: &FieldOverrides,
    ) -> Result<Shopify, (usize, &'static str)> {
        Ok(Shopify {
            keys: MacKeys::from_secrets(secrets, MacAlgorithm::Sha256)?,
            plan: Plan::new(&DEFAULTS, fields),
        })
    }

    /// Checks `X-Shopify-Hmac-Sha256` over the raw body.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Proof, VerifyError> {
        let value = headers::required(headers, SIGNATURE_HEADER)?;
        let signature = headers::base64(SIGNATURE_HEADER, value)?;
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
        use base64::Engine;
        let tag = self.keys.tag(index, &[body])?;
        Some((SIGNATURE_HEADER, BASE64.encode(tag)))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use http::HeaderValue;

    use super::*;

    const SECRET: &str = "shpss_client_secret";
    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;

    fn shopify() -> Shopify {
        Shopify::new(&[Secret::new(SECRET)], &FieldOverrides::default()).unwrap()
    }

    /// An independent computation: base64(HMAC-SHA256(secret, body)).
    fn mac(body: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        BASE64.encode(mac.finalize().into_bytes())
    }

    fn header(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn a_signed_body_verifies_and_signing_agrees() {
        let s = shopify();
        assert!(s.verify(&header(&mac(BODY)), BODY).is_ok());
        assert_eq!(s.sign(0, BODY).unwrap().1, mac(BODY));
    }

    #[test]
    fn reject_cases() {
        let s = shopify();
        assert_eq!(
            s.verify(&HeaderMap::new(), BODY).unwrap_err().code(),
            "missing_signature"
        );
        let good = mac(BODY);
        assert!(matches!(
            s.verify(&header(&good[..20]), BODY).unwrap_err(),
            VerifyError::Mismatch { .. }
        ));
        assert!(matches!(
            s.verify(&header("not*base64"), BODY).unwrap_err(),
            VerifyError::Encoding { .. }
        ));
        let hex_instead = hex::encode(BASE64.decode(&good).unwrap());
        assert_eq!(
            s.verify(&header(&hex_instead), BODY).unwrap_err().code(),
            "bad_signature",
            "wrong encoding"
        );
        let mut flipped = BODY.to_vec();
        flipped[5] ^= 1;
        assert_eq!(
            s.verify(&header(&good), &flipped).unwrap_err().code(),
            "bad_signature"
        );
        assert!(Shopify::new(&[Secret::new("")], &FieldOverrides::default()).is_err());
    }

    #[test]
    fn the_envelope_comes_from_the_shopify_headers() {
        let mut h = header(&mac(BODY));
        h.insert(
            "x-shopify-webhook-id",
            HeaderValue::from_static("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
        );
        h.insert("x-shopify-topic", HeaderValue::from_static("orders/create"));
        h.insert(
            "x-shopify-shop-domain",
            HeaderValue::from_static("example.myshopify.com"),
        );
        let env = shopify()
            .envelope(&SourceName::new("shop"), &h, BODY)
            .unwrap();
        assert_eq!(env.id.as_str(), "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        assert_eq!(env.kind, "orders/create");
        assert_eq!(env.tenant.as_str(), "example.myshopify.com");
    }
}
