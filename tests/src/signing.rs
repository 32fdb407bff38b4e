//! Signing helpers: sign webhook bodies the way the senders do, with test keys, and give the
//! matching public keys in the PEM form `wasmhook.toml` takes.
//!
//! Each [`HighLevelSigner`] has its own fresh Ed25519 key, so two signers never trust each
//! other's Ed25519 signatures. The RSA key is generated once per test process and shared by all
//! signers: RSA key generation takes a noticeable time even at 2048 bits (HighLevel's real key
//! is 4096-bit, which would be far slower), and the legacy scheme needs no per-test keys.
//!
//! The shared-secret schemes ([`Scheme`]) are signed here from their published descriptions,
//! independently of the host's code, so a test that passes shows the host agrees with the
//! senders, not merely with itself.

use std::sync::OnceLock;

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{
    Signer, SigningKey, VerifyingKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use rand::rngs::OsRng;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

/// Signs bodies like HighLevel: `x-ghl-signature` (Ed25519) and `x-wh-signature` (RSA).
pub struct HighLevelSigner {
    ed25519: SigningKey,
    rsa: &'static RsaPrivateKey,
}

/// The process's RSA test key (2048-bit, generated on first use).
fn rsa_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("generating the RSA test key"))
}

impl HighLevelSigner {
    /// A signer with a fresh Ed25519 key and the process's RSA test key.
    pub fn new() -> HighLevelSigner {
        HighLevelSigner {
            ed25519: SigningKey::generate(&mut OsRng),
            rsa: rsa_key(),
        }
    }

    /// The Ed25519 public key (`BEGIN PUBLIC KEY`, SPKI), for `ed25519_keys = [{ pem = ... }]`.
    pub fn ed25519_public_pem(&self) -> String {
        self.ed25519
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encoding an Ed25519 public key")
    }

    /// The RSA public key (`BEGIN PUBLIC KEY`, SPKI), for `rsa_keys = [{ pem = ... }]`.
    pub fn rsa_public_pem(&self) -> String {
        RsaPublicKey::from(self.rsa)
            .to_public_key_pem(LineEnding::LF)
            .expect("encoding an RSA public key")
    }

    /// The Ed25519 private key (`BEGIN PRIVATE KEY`, PKCS#8), for `wasmhook send --key`.
    pub fn ed25519_private_pem(&self) -> String {
        self.ed25519
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encoding an Ed25519 private key")
            .to_string()
    }

    /// The Ed25519 public key itself.
    pub fn ed25519_verifying_key(&self) -> VerifyingKey {
        self.ed25519.verifying_key()
    }

    /// The RSA public key itself.
    pub fn rsa_public_key(&self) -> RsaPublicKey {
        RsaPublicKey::from(self.rsa)
    }

    /// The `x-ghl-signature` value for `body`: Ed25519 over the exact bytes, base64.
    pub fn sign_ed25519(&self, body: &[u8]) -> String {
        STANDARD.encode(self.ed25519.sign(body).to_bytes())
    }

    /// The legacy `x-wh-signature` value for `body`: RSA PKCS#1 v1.5 over SHA-256, base64.
    pub fn sign_rsa(&self, body: &[u8]) -> String {
        let digest = Sha256::digest(body);
        let signature = self
            .rsa
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .expect("RSA signing with a valid key");
        STANDARD.encode(signature)
    }
}

impl Default for HighLevelSigner {
    fn default() -> Self {
        HighLevelSigner::new()
    }
}

/// A shared-secret scheme as its sender signs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `webhook-id` / `webhook-timestamp` / `webhook-signature: v1,<base64>` over `id.ts.body`,
    /// keyed with the base64-decoded part of a `whsec_` secret.
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    GitHub,
    /// `Stripe-Signature: t=<ts>,v1=<hex>` over `ts.body`, keyed with the secret as written.
    Stripe,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// `X-Slack-Signature: v0=<hex>` over `v0:ts:body`, with `X-Slack-Request-Timestamp`.
    Slack,
    /// The generic scheme as the tests configure it: `X-Signature: sha512=<base64>` of
    /// HMAC-SHA512 over the body.
    Hmac,
}

impl Scheme {
    /// Every shared-secret scheme.
    pub const ALL: [Scheme; 6] = [
        Scheme::StandardWebhooks,
        Scheme::GitHub,
        Scheme::Stripe,
        Scheme::Shopify,
        Scheme::Slack,
        Scheme::Hmac,
    ];

    /// The `scheme = "..."` name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::GitHub => "github",
            Scheme::Stripe => "stripe",
            Scheme::Shopify => "shopify",
            Scheme::Slack => "slack",
            Scheme::Hmac => "hmac",
        }
    }

    /// A fresh random secret in the form this scheme's senders hand out.
    pub fn new_secret(self) -> String {
        let bytes: [u8; 24] = rand::random();
        match self {
            Scheme::StandardWebhooks => format!("whsec_{}", STANDARD.encode(bytes)),
            Scheme::Stripe => format!("whsec_{}", hex::encode(bytes)),
            _ => hex::encode(bytes),
        }
    }

    /// The scheme-specific lines of a `[[sources]]` entry (besides `name`, `scheme` and
    /// `secrets`), as the tests configure it.
    pub fn extra_toml(self) -> &'static str {
        match self {
            Scheme::Hmac => {
                "header = \"X-Signature\"\nprefix = \"sha512=\"\nencoding = \"base64\"\n\
                 algorithm = \"sha512\"\nevent_id = { header = \"X-Delivery\" }\n\
                 kind = { pointer = \"/event\" }\ntenant = { pointer = \"/org\" }\n"
            }
            _ => "",
        }
    }

    /// The headers a sender of this scheme puts on `body`, signed with `secret` at `now_secs`;
    /// `id` is the delivery id for schemes that send one in a header, `kind` the event kind
    /// for those that name it in a header.
    pub fn headers(
        self,
        secret: &str,
        body: &[u8],
        now_secs: i64,
        id: &str,
        kind: &str,
    ) -> Vec<(String, String)> {
        let h = |k: &str, v: String| (k.to_string(), v);
        match self {
            Scheme::StandardWebhooks => {
                let key = STANDARD
                    .decode(secret.trim_start_matches("whsec_"))
                    .expect("a whsec_ secret is base64");
                let mac = hmac_sha256(&key, &[format!("{id}.{now_secs}.").as_bytes(), body]);
                vec![
                    h("webhook-id", id.to_string()),
                    h("webhook-timestamp", now_secs.to_string()),
                    h("webhook-signature", format!("v1,{}", STANDARD.encode(mac))),
                ]
            }
            Scheme::GitHub => vec![
                h("x-github-delivery", id.to_string()),
                h("x-github-event", kind.to_string()),
                h(
                    "x-hub-signature-256",
                    format!(
                        "sha256={}",
                        hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
                    ),
                ),
            ],
            Scheme::Stripe => {
                let mac = hmac_sha256(
                    secret.as_bytes(),
                    &[format!("{now_secs}.").as_bytes(), body],
                );
                vec![h(
                    "stripe-signature",
                    format!("t={now_secs},v1={}", hex::encode(mac)),
                )]
            }
            Scheme::Shopify => vec![
                h("x-shopify-webhook-id", id.to_string()),
                h("x-shopify-topic", kind.to_string()),
                h("x-shopify-shop-domain", "example.myshopify.com".to_string()),
                h(
                    "x-shopify-hmac-sha256",
                    STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body])),
                ),
            ],
            Scheme::Slack => {
                let mac = hmac_sha256(
                    secret.as_bytes(),
                    &[format!("v0:{now_secs}:").as_bytes(), body],
                );
                vec![
                    h("x-slack-request-timestamp", now_secs.to_string()),
                    h("x-slack-signature", format!("v0={}", hex::encode(mac))),
                ]
            }
            Scheme::Hmac => {
                use hmac::{Hmac, Mac};
                let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes any key length");
                mac.update(body);
                vec![
                    h("x-delivery", id.to_string()),
                    h(
                        "x-signature",
                        format!("sha512={}", STANDARD.encode(mac.finalize().into_bytes())),
                    ),
                ]
            }
        }
    }

    /// A body this scheme's senders would send, carrying `id` and `kind` where the scheme reads
    /// them from the body, and the tenant `tenant`.
    pub fn body(self, id: &str, kind: &str, tenant: &str) -> Vec<u8> {
        let value = match self {
            Scheme::StandardWebhooks => {
                serde_json::json!({ "type": kind, "timestamp": "2026-01-01T00:00:00Z", "data": { "id": id } })
            }
            Scheme::GitHub => {
                serde_json::json!({ "action": "opened", "installation": { "id": tenant.parse::<u64>().unwrap_or(1) } })
            }
            Scheme::Stripe => {
                serde_json::json!({ "id": id, "object": "event", "type": kind, "account": tenant, "data": { "object": {} } })
            }
            Scheme::Shopify => {
                serde_json::json!({ "id": 820982911946154508u64, "email": "jon@example.com" })
            }
            Scheme::Slack => serde_json::json!({
                "type": "event_callback", "event_id": id, "team_id": tenant,
                "event": { "type": kind, "text": "hello" }
            }),
            Scheme::Hmac => serde_json::json!({ "event": kind, "org": tenant }),
        };
        serde_json::to_vec(&value).expect("serialising a JSON value")
    }
}

/// HMAC-SHA256 of `parts` concatenated.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    wasmhook::ids::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};
    use wasmhook::{
        config::Config,
        sources::{SignatureKind, Source, VerifyError},
    };

    use super::*;

    /// A `highlevel` source trusting `signer`, built through config validation exactly as a
    /// user's `wasmhook.toml` would be.
    fn source_trusting(signer: &HighLevelSigner) -> Arc<Source> {
        let toml = format!(
            "[[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"a\"\n\
             ed25519_keys = [{{ pem = \"\"\"\n{}\"\"\" }}]\nrsa_keys = [{{ pem = \"\"\"\n{}\"\"\" }}]\n",
            signer.ed25519_public_pem(),
            signer.rsa_public_pem(),
        );
        let config = Config::parse(Path::new("wasmhook.toml"), &toml).unwrap();
        Arc::new(Source::from_config(&config.sources[0]).unwrap())
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn signatures_verify_against_the_pems_through_the_config() {
        let signer = HighLevelSigner::new();
        let source = source_trusting(&signer);
        let body = br#"{"type":"ContactCreate"}"#;

        let ed = headers("x-ghl-signature", &signer.sign_ed25519(body));
        let proof = source
            .verify(&ed, Bytes::from_static(body))
            .unwrap()
            .proof();
        assert_eq!(proof.kind, SignatureKind::Ed25519);

        let rsa = headers("x-wh-signature", &signer.sign_rsa(body));
        let proof = source
            .verify(&rsa, Bytes::from_static(body))
            .unwrap()
            .proof();
        assert_eq!(proof.kind, SignatureKind::RsaSha256);
    }

    #[test]
    fn every_shared_secret_scheme_verifies_through_a_configured_source() {
        let dir = tempfile::tempdir().unwrap();
        for scheme in Scheme::ALL {
            let secret = scheme.new_secret();
            let file = dir.path().join(scheme.name());
            std::fs::write(&file, &secret).unwrap();
            let toml = format!(
                "[[sources]]\nname = \"s\"\nscheme = \"{}\"\nsecrets = [{{ file = \"{}\" }}]\n{}",
                scheme.name(),
                file.display(),
                scheme.extra_toml()
            );
            let config = Config::parse(Path::new("wasmhook.toml"), &toml).unwrap();
            let source = Arc::new(Source::from_config(&config.sources[0]).unwrap());
            let body = scheme.body("evt-1", "thing.happened", "tenant-1");
            let mut headers = HeaderMap::new();
            for (k, v) in scheme.headers(&secret, &body, now_secs(), "evt-1", "thing.happened") {
                headers.insert(
                    http::HeaderName::try_from(k).unwrap(),
                    HeaderValue::try_from(v).unwrap(),
                );
            }
            let verified = source
                .verify(&headers, Bytes::from(body.clone()))
                .unwrap_or_else(|e| panic!("{}: {e}", scheme.name()));
            let envelope = verified.envelope(wasmhook::ids::now_ms()).unwrap();
            assert_eq!(envelope.kind, "thing.happened", "{}", scheme.name());
            // The same headers with another secret's MAC are refused.
            let other = scheme.new_secret();
            let mut forged = HeaderMap::new();
            for (k, v) in scheme.headers(&other, &body, now_secs(), "evt-1", "thing.happened") {
                forged.insert(
                    http::HeaderName::try_from(k).unwrap(),
                    HeaderValue::try_from(v).unwrap(),
                );
            }
            assert!(
                source.verify(&forged, Bytes::from(body)).is_err(),
                "{}",
                scheme.name()
            );
        }
    }

    #[test]
    fn another_signers_ed25519_signature_is_refused() {
        let signer = HighLevelSigner::new();
        let stranger = HighLevelSigner::new();
        let source = source_trusting(&signer);
        let body = b"{}";
        let ed = headers("x-ghl-signature", &stranger.sign_ed25519(body));
        let err = source.verify(&ed, Bytes::from_static(body)).unwrap_err();
        assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
        assert_ne!(signer.ed25519_public_pem(), stranger.ed25519_public_pem());
        assert_eq!(
            signer.rsa_public_pem(),
            stranger.rsa_public_pem(),
            "one RSA key per process"
        );
    }
}
