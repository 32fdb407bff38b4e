//! Signing helpers: sign webhook bodies the way the senders do, with test keys, and give the
//! matching public keys in the PEM form `wasmhook.toml` takes.
//!
//! Each [`HighLevelSigner`] has its own fresh Ed25519 key, so two signers never trust each
//! other's Ed25519 signatures. The RSA key is generated once per test process and shared by all
//! signers: RSA key generation takes a noticeable time even at 2048 bits (HighLevel's real key
//! is 4096-bit, which would be far slower), and the legacy scheme needs no per-test keys.

use std::sync::OnceLock;

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{
    Signer, SigningKey, VerifyingKey,
    pkcs8::{EncodePublicKey, spki::der::pem::LineEnding},
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
