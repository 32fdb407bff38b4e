//! Signing a body the way a source's sender would, for `wasmhook send` (and benchmarks): the
//! same header names, the same signed content, fresh delivery ids where the sender sends one.
//!
//! Invariants: signing uses the scheme's own MAC code, so what `send` produces is exactly what
//! the server verifies; keys are read once and never printed; errors name what is missing.

use ed25519_dalek::Signer;
use http::HeaderName;

use super::{
    Scheme, Source, SourcesError, github, headers::BASE64, highlevel, shopify, standard_webhooks,
};
use crate::{
    config::{SchemeConfig, SourceConfig},
    secret::Secret,
};

/// Why a body could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The scheme needs a private key the config does not hold (HighLevel, Standard Webhooks
    /// `v1a` with only a public key).
    #[error("{0}")]
    NeedKey(&'static str),
    /// The given key cannot sign for this scheme; says why without quoting it.
    #[error("the key cannot sign for this source: {0}")]
    BadKey(&'static str),
    /// The source's own secret could not be read.
    #[error(transparent)]
    Source(#[from] SourcesError),
    /// The HighLevel source's `signing_key` could not be read.
    #[error("source {source_name}: cannot read signing_key ({reference}): {error}")]
    SigningKey {
        source_name: String,
        reference: String,
        error: crate::secret::SecretError,
    },
}

/// What to sign with: `key` overrides the source's configured secret (an HMAC secret, a
/// `whsec_`/`whsk_` Standard Webhooks key, or a PEM private key for HighLevel).
pub struct Signing<'a> {
    pub key: Option<&'a Secret>,
    /// Seconds since the epoch to sign as "now".
    pub now_secs: i64,
    /// The event kind, for schemes that carry it in a header (GitHub, Shopify).
    pub kind: Option<&'a str>,
}

/// The headers to send with `body` to `config`'s source, signed as its sender would.
pub fn sign(
    config: &SourceConfig,
    signing: &Signing<'_>,
    body: &[u8],
) -> Result<Vec<(HeaderName, String)>, SignError> {
    let mut out: Vec<(HeaderName, String)> = Vec::new();
    let mut push = |name: &str, value: String| {
        // Every name pushed below is a lower-case literal or a validated config header.
        if let Ok(name) = HeaderName::try_from(name) {
            out.push((name, value));
        }
    };
    if let SchemeConfig::HighLevel(hl) = &config.scheme {
        let configured;
        let key = match (signing.key, &hl.signing_key) {
            (Some(key), _) => key,
            (None, Some(reference)) => {
                configured = reference.load().map_err(|error| SignError::SigningKey {
                    source_name: config.name.to_string(),
                    reference: reference.describe(),
                    error,
                })?;
                &configured
            }
            (None, None) => {
                return Err(SignError::NeedKey(
                    "HighLevel bodies are signed with a private key: pass --key with an Ed25519 or RSA private key (PEM), or set the source's signing_key (`wasmhook init` writes a dev key)",
                ));
            }
        };
        let (header, value) = sign_highlevel(key.expose(), body)?;
        push(header, value);
        return Ok(out);
    }
    if let SchemeConfig::StandardWebhooks(_) = config.scheme {
        let key = match signing.key {
            Some(key) => key.clone(),
            None => first_secret(config)?,
        };
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let signature = standard_webhooks::sign(key.expose(), &id, signing.now_secs, body)
            .map_err(SignError::BadKey)?;
        push("webhook-id", id);
        push("webhook-timestamp", signing.now_secs.to_string());
        push("webhook-signature", signature);
        return Ok(out);
    }
    // The shared-secret schemes: build the source with the one secret to sign with.
    let secret = match signing.key {
        Some(key) => key.clone(),
        None => first_secret(config)?,
    };
    let source = with_secret(config, &secret)?;
    let bad = SignError::BadKey("the secret is not usable as a key");
    match &source.scheme {
        Scheme::GitHub(s) => {
            let (name, value) = s.sign(0, body).ok_or(bad)?;
            push("x-github-delivery", uuid::Uuid::new_v4().to_string());
            push("x-github-event", signing.kind.unwrap_or("ping").to_string());
            push(name, value);
        }
        Scheme::Stripe(s) => {
            let (name, value) = s.sign(0, signing.now_secs, body).ok_or(bad)?;
            push(name, value);
        }
        Scheme::Shopify(s) => {
            let (name, value) = s.sign(0, body).ok_or(bad)?;
            push("x-shopify-webhook-id", uuid::Uuid::new_v4().to_string());
            if let Some(kind) = signing.kind {
                push("x-shopify-topic", kind.to_string());
            }
            push(name, value);
        }
        Scheme::Slack(s) => {
            for (name, value) in s.sign(0, signing.now_secs, body).ok_or(bad)? {
                push(name, value);
            }
        }
        Scheme::Hmac(s) => {
            let (name, value) = s.sign(0, body).ok_or(bad)?;
            out.push((name, value));
        }
        Scheme::HighLevel(_) | Scheme::StandardWebhooks(_) => {
            unreachable!("handled above")
        }
    }
    Ok(out)
}

/// The content type a sender of this scheme uses for `body`.
pub fn content_type(config: &SourceConfig, body: &[u8]) -> &'static str {
    let json = body.trim_ascii_start().starts_with(b"{");
    match config.scheme {
        SchemeConfig::Slack(_) if !json => "application/x-www-form-urlencoded",
        _ => "application/json",
    }
}

fn first_secret(config: &SourceConfig) -> Result<Secret, SignError> {
    let reference = config.scheme.secrets().first().ok_or(SignError::NeedKey(
        "the source has no secret to sign with; pass --key",
    ))?;
    reference.load().map_err(|error| {
        SignError::Source(SourcesError::Secret {
            source_name: config.name.clone(),
            index: 0,
            reference: reference.describe(),
            error,
        })
    })
}

/// `config`'s source, keyed with `secret` alone.
fn with_secret(config: &SourceConfig, secret: &Secret) -> Result<Source, SignError> {
    use crate::config::{GitHubConfig, HmacConfig, ShopifyConfig, SlackConfig, StripeConfig};
    let fields = &config.fields;
    let one = std::slice::from_ref(secret);
    let bad = |(_, reason): (usize, &'static str)| SignError::BadKey(reason);
    let scheme = match &config.scheme {
        SchemeConfig::GitHub(GitHubConfig { .. }) => {
            Scheme::GitHub(github::GitHub::new(one, fields).map_err(bad)?)
        }
        SchemeConfig::Stripe(StripeConfig { tolerance, .. }) => {
            Scheme::Stripe(super::stripe::Stripe::new(one, *tolerance, fields).map_err(bad)?)
        }
        SchemeConfig::Shopify(ShopifyConfig { .. }) => {
            Scheme::Shopify(shopify::Shopify::new(one, fields).map_err(bad)?)
        }
        SchemeConfig::Slack(SlackConfig { tolerance, .. }) => {
            Scheme::Slack(super::slack::Slack::new(one, *tolerance, fields).map_err(bad)?)
        }
        SchemeConfig::Hmac(c @ HmacConfig { .. }) => {
            Scheme::Hmac(super::hmac::GenericHmac::new(one, c, fields).map_err(bad)?)
        }
        SchemeConfig::HighLevel(_) | SchemeConfig::StandardWebhooks(_) => {
            return Err(SignError::BadKey(
                "this scheme is not signed with a shared secret",
            ));
        }
    };
    Ok(Source {
        name: config.name.clone(),
        api: config.api.clone(),
        scheme,
    })
}

/// `x-ghl-signature` (Ed25519 key) or `x-wh-signature` (RSA key) for `body`.
fn sign_highlevel(pem: &str, body: &[u8]) -> Result<(&'static str, String), SignError> {
    use base64::Engine;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim()) {
        return Ok((
            highlevel::SIGNATURE_HEADER,
            BASE64.encode(key.sign(body).to_bytes()),
        ));
    }
    let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(pem.trim())
        .or_else(|_| {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_pem(pem.trim())
        })
        .map_err(|_| {
            SignError::BadKey("expected an Ed25519 or RSA private key in PEM (`BEGIN PRIVATE KEY`)")
        })?;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(body);
    let signature = rsa
        .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
        .map_err(|_| SignError::BadKey("the RSA key cannot sign"))?;
    Ok((highlevel::LEGACY_SIGNATURE_HEADER, BASE64.encode(signature)))
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use bytes::Bytes;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::{config::Config, ids::now_ms};

    /// Signs `body` for the source of `toml` and verifies it through the same config.
    fn round_trip(toml: &str, key: Option<&str>, body: &[u8]) -> Result<(), String> {
        let config = Config::parse(Path::new("w.toml"), toml).map_err(|e| e.to_string())?;
        let source_config = &config.sources[0];
        let key = key.map(Secret::new);
        let signing = Signing {
            key: key.as_ref(),
            now_secs: now_ms() / 1000,
            kind: Some("push"),
        };
        let headers: HeaderMap = sign(source_config, &signing, body)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k, HeaderValue::try_from(v).unwrap()))
            .collect();
        let source = Arc::new(Source::from_config(source_config).map_err(|e| e.to_string())?);
        let verified = source
            .verify(&headers, Bytes::copy_from_slice(body))
            .map_err(|e| e.to_string())?;
        verified
            .envelope(now_ms())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_shared_secret_scheme_round_trips() {
        // SAFETY-free: the variables are unique to this test.
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "whsec_c2VjcmV0LWJ5dGVz").unwrap();
        let file = secret.display().to_string();
        for scheme in ["github", "stripe", "shopify", "slack", "standard-webhooks"] {
            let toml = format!(
                "[[sources]]\nname = \"s\"\nscheme = \"{scheme}\"\nsecrets = [{{ file = \"{file}\" }}]\n"
            );
            round_trip(&toml, None, br#"{"id":"evt_1","type":"t"}"#)
                .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        }
        let toml = format!(
            "[[sources]]\nname = \"s\"\nscheme = \"hmac\"\nheader = \"X-Sig\"\nprefix = \"sha512=\"\n\
             algorithm = \"sha512\"\nencoding = \"base64\"\nsecrets = [{{ file = \"{file}\" }}]\n"
        );
        round_trip(&toml, None, b"{}").unwrap();
        // A Slack form body.
        let toml = format!(
            "[[sources]]\nname = \"s\"\nscheme = \"slack\"\nsecrets = [{{ file = \"{file}\" }}]\n"
        );
        round_trip(&toml, None, b"command=%2Fdeploy&team_id=T1").unwrap();
        // A --key overrides the configured secret: signing with another secret fails to verify.
        let toml = format!(
            "[[sources]]\nname = \"s\"\nscheme = \"github\"\nsecrets = [{{ file = \"{file}\" }}]\n"
        );
        assert!(
            round_trip(&toml, Some("other"), b"{}")
                .unwrap_err()
                .contains("does not match")
        );
    }

    #[test]
    fn private_key_schemes_need_a_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let toml = format!(
            "[[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"app\"\nrequire_installation = false\n\
             ed25519_keys = [{{ pem = \"\"\"\n{public}\"\"\" }}]\n"
        );
        let body = br#"{"type":"ContactCreate","appId":"app","locationId":"l"}"#;
        round_trip(&toml, Some(&private), body).unwrap();
        assert!(round_trip(&toml, None, body).unwrap_err().contains("--key"));
        assert!(
            round_trip(&toml, Some("not a key"), body)
                .unwrap_err()
                .contains("PEM")
        );

        let seed = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sk");
        std::fs::write(&path, format!("whsk_{seed}")).unwrap();
        let toml = format!(
            "[[sources]]\nname = \"sw\"\nscheme = \"standard-webhooks\"\nsecrets = [{{ file = \"{}\" }}]\n",
            path.display()
        );
        round_trip(&toml, None, b"{}").unwrap();
    }

    #[test]
    fn a_highlevel_source_signs_with_its_signing_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let public = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("dev.pem");
        std::fs::write(
            &private,
            key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let toml = |signing: &str| {
            format!(
                "[[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"app\"\n\
                 require_installation = false\nsigning_key = {{ file = \"{signing}\" }}\n\
                 ed25519_keys = [{{ pem = \"\"\"\n{public}\"\"\" }}]\n"
            )
        };
        let body = br#"{"type":"ContactCreate","appId":"app","locationId":"l"}"#;
        round_trip(&toml(&private.display().to_string()), None, body).unwrap();
        let missing = dir.path().join("gone.pem").display().to_string();
        let err = round_trip(&toml(&missing), None, body).unwrap_err();
        assert!(
            err.contains("signing_key") && err.contains("gone.pem"),
            "{err}"
        );
    }
}
