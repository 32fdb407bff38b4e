//! Webhook sources: the configured senders, their signature schemes and the envelope (id, kind,
//! tenant) of what they send. One file per scheme: `highlevel`, `standard_webhooks`, `github`,
//! `stripe`, `shopify`, `slack`, `hmac`; shared pieces in `headers` (reading and decoding
//! signature headers), `mac` (HMAC keys, constant-time matching), `window` (signed timestamps),
//! `fields` (where ids, kinds and tenants are read), `form` (form-encoded bodies) and `sign`
//! (signing as a sender would, for `wasmhook send`).
//!
//! Invariants:
//! - Verification runs on the raw body bytes before anything parses them. Only
//!   [`Source::verify`] constructs a [`Verified`]; the envelope can only be read from a
//!   `Verified` ([`Verified::envelope`]), so no code path can use an unverified body.
//! - A missing signature is an error, never a pass; several keys may be trusted at once; MACs
//!   are compared in constant time.
//! - Secrets are read from their references when a `Sources` is built (start-up, SIGHUP) and
//!   never appear in `Debug` output, errors or logs.
//! - [`Scheme`] is closed: adding a signature scheme means adding its file, a variant of
//!   `Scheme`, and its arm in each `match` below and in `sign`.

mod envelope;
mod error;
mod fields;
mod form;
pub mod github;
mod headers;
pub mod highlevel;
pub mod hmac;
mod live;
mod mac;
pub mod shopify;
pub mod sign;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod timestamp;
mod verified;
mod window;

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use http::HeaderMap;

pub use envelope::{Envelope, Lifecycle, MAX_FIELD_LEN};
pub use error::{EnvelopeError, Label, SourcesError, VerifyError};
pub use live::LiveSources;
pub use verified::{Proof, SignatureKind, Verified};

use crate::{
    config::{SchemeConfig, SourceConfig},
    ids::{ApiName, SourceName, now_ms},
    secret::Secret,
};

/// All configured sources, by name. Immutable once built; a reload builds a new one.
pub struct Sources {
    by_name: BTreeMap<String, Arc<Source>>,
}

impl Sources {
    /// Builds every `[[sources]]` entry, reading their secrets now. Fails on a repeated name,
    /// a source without keys, or a secret that cannot be read or used (config validation
    /// reports the first two before; the others depend on the environment and the disk).
    pub fn from_config(configs: &[SourceConfig]) -> Result<Sources, SourcesError> {
        let mut by_name = BTreeMap::new();
        for config in configs {
            let source = Source::from_config(config)?;
            let name = config.name.as_str().to_string();
            if by_name.insert(name, Arc::new(source)).is_some() {
                return Err(SourcesError::DuplicateName(config.name.clone()));
            }
        }
        Ok(Sources { by_name })
    }

    /// The source served at `/webhooks/{name}`.
    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.by_name.get(name)
    }

    /// The configured sources, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.by_name.values()
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no source is configured (every webhook would get 404).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// One configured source: a name, the API its tenants belong to, and its scheme.
pub struct Source {
    name: SourceName,
    api: Option<ApiName>,
    scheme: Scheme,
}

/// The signature scheme of a source, with its keys and rules. One variant per scheme file.
enum Scheme {
    HighLevel(highlevel::HighLevel),
    StandardWebhooks(standard_webhooks::StandardWebhooks),
    GitHub(github::GitHub),
    Stripe(stripe::Stripe),
    Shopify(shopify::Shopify),
    Slack(slack::Slack),
    Hmac(hmac::GenericHmac),
}

impl Source {
    /// Builds a source from its validated config, reading its secrets now.
    pub fn from_config(config: &SourceConfig) -> Result<Source, SourcesError> {
        let secrets = load_secrets(config)?;
        let bad_key = |(index, reason): (usize, &'static str)| SourcesError::BadKey {
            source_name: config.name.clone(),
            index,
            reference: config.scheme.secrets()[index].describe(),
            reason,
        };
        let fields = &config.fields;
        let scheme = match &config.scheme {
            SchemeConfig::HighLevel(hl) => Scheme::HighLevel(highlevel::HighLevel::new(
                &config.name,
                hl,
                fields.kind.clone(),
            )?),
            SchemeConfig::StandardWebhooks(c) => Scheme::StandardWebhooks(
                standard_webhooks::StandardWebhooks::new(&secrets, c.tolerance, fields)
                    .map_err(bad_key)?,
            ),
            SchemeConfig::GitHub(_) => {
                Scheme::GitHub(github::GitHub::new(&secrets, fields).map_err(bad_key)?)
            }
            SchemeConfig::Stripe(c) => {
                Scheme::Stripe(stripe::Stripe::new(&secrets, c.tolerance, fields).map_err(bad_key)?)
            }
            SchemeConfig::Shopify(_) => {
                Scheme::Shopify(shopify::Shopify::new(&secrets, fields).map_err(bad_key)?)
            }
            SchemeConfig::Slack(c) => {
                Scheme::Slack(slack::Slack::new(&secrets, c.tolerance, fields).map_err(bad_key)?)
            }
            SchemeConfig::Hmac(c) => {
                Scheme::Hmac(hmac::GenericHmac::new(&secrets, c, fields).map_err(bad_key)?)
            }
        };
        if secrets.is_empty() && !matches!(scheme, Scheme::HighLevel(_)) {
            return Err(SourcesError::NoKeys(config.name.clone()));
        }
        Ok(Source {
            name: config.name.clone(),
            api: config.api.clone(),
            scheme,
        })
    }

    /// The source's name (the `{source}` in `/webhooks/{source}`).
    pub fn name(&self) -> &SourceName {
        &self.name
    }

    /// The API this source's tenants call back into, if any.
    pub fn api(&self) -> Option<&ApiName> {
        self.api.as_ref()
    }

    /// The namespace of this source's installations: its API, or its own name without one.
    pub fn installation_api(&self) -> ApiName {
        self.api
            .clone()
            .unwrap_or_else(|| ApiName::new(self.name.as_str()))
    }

    /// Whether events of tenants without a pending, active or needs-reauth installation are
    /// refused (HighLevel's `require_installation`).
    pub fn require_installation(&self) -> bool {
        match &self.scheme {
            Scheme::HighLevel(hl) => hl.require_installation(),
            _ => false,
        }
    }

    /// Whether this source's events install and uninstall the app (its INSTALL / UNINSTALL
    /// events keep the installations table).
    pub fn tracks_installations(&self) -> bool {
        matches!(self.scheme, Scheme::HighLevel(_))
    }

    /// The scheme's config name (`highlevel`, ...), for logs and metrics.
    pub fn scheme_name(&self) -> &'static str {
        match &self.scheme {
            Scheme::HighLevel(_) => "highlevel",
            Scheme::StandardWebhooks(_) => "standard-webhooks",
            Scheme::GitHub(_) => "github",
            Scheme::Stripe(_) => "stripe",
            Scheme::Shopify(_) => "shopify",
            Scheme::Slack(_) => "slack",
            Scheme::Hmac(_) => "hmac",
        }
    }

    /// Verifies the request's signature over the raw `body` now; see [`Source::verify_at`].
    pub fn verify(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Verified, VerifyError> {
        self.verify_at(headers, body, now_ms())
    }

    /// Verifies the request's signature over the raw `body`, judging signed timestamps against
    /// `now_ms`, and on success binds the body to this source as a [`Verified`]. Nothing about
    /// the body is parsed before this succeeds.
    pub fn verify_at(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: Bytes,
        now_ms: i64,
    ) -> Result<Verified, VerifyError> {
        let proof = match &self.scheme {
            Scheme::HighLevel(s) => s.verify(headers, &body)?,
            Scheme::StandardWebhooks(s) => s.verify(headers, &body, now_ms)?,
            Scheme::GitHub(s) => s.verify(headers, &body)?,
            Scheme::Stripe(s) => s.verify(headers, &body, now_ms)?,
            Scheme::Shopify(s) => s.verify(headers, &body)?,
            Scheme::Slack(s) => s.verify(headers, &body, now_ms)?,
            Scheme::Hmac(s) => s.verify(headers, &body)?,
        };
        Ok(Verified::new(
            Arc::clone(self),
            headers.clone(),
            body,
            proof,
        ))
    }

    /// The envelope of a request this source verified. Private: reached only through
    /// [`Verified::envelope`], which is what guarantees `body` was verified.
    fn envelope(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        proof: Proof,
        now_ms: i64,
    ) -> Result<Envelope, EnvelopeError> {
        let name = &self.name;
        match &self.scheme {
            Scheme::HighLevel(s) => s.envelope(headers, body, now_ms),
            Scheme::StandardWebhooks(s) => s.envelope(name, headers, body, proof),
            Scheme::GitHub(s) => s.envelope(name, headers, body),
            Scheme::Stripe(s) => s.envelope(name, headers, body, proof),
            Scheme::Shopify(s) => s.envelope(name, headers, body),
            Scheme::Slack(s) => s.envelope(name, headers, body, proof),
            Scheme::Hmac(s) => s.envelope(name, headers, body),
        }
    }

    /// The challenge of a verified endpoint check (Slack's `url_verification`), if it is one.
    fn challenge(&self, _headers: &HeaderMap, body: &[u8]) -> Option<String> {
        match &self.scheme {
            Scheme::Slack(_) => slack::Slack::challenge(body),
            _ => None,
        }
    }
}

/// Reads every secret of `config`, in order.
fn load_secrets(config: &SourceConfig) -> Result<Vec<Secret>, SourcesError> {
    config
        .scheme
        .secrets()
        .iter()
        .enumerate()
        .map(|(index, reference)| {
            reference.load().map_err(|error| SourcesError::Secret {
                source_name: config.name.clone(),
                index,
                reference: reference.describe(),
                error,
            })
        })
        .collect()
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("scheme", &self.scheme_name())
            .field("api", &self.api)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        config::{GitHubConfig, SourceConfig, StripeConfig},
        secret::SecretRef,
    };

    #[test]
    fn secrets_are_read_at_build_time_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gh.secret");
        std::fs::write(&path, "file-secret-value\n").unwrap();
        let config = SourceConfig::new(
            SourceName::new("gh"),
            None,
            SchemeConfig::GitHub(GitHubConfig {
                secrets: vec![SecretRef::File(path.clone())],
            }),
        );
        let source = Source::from_config(&config).unwrap();
        assert!(!format!("{source:?}").contains("file-secret-value"));
        assert_eq!(source.scheme_name(), "github");
        assert!(!source.require_installation());
        assert_eq!(source.installation_api().as_str(), "gh");

        // A missing file names the reference; an empty one is refused; neither shows a value.
        std::fs::remove_file(&path).unwrap();
        let err = Source::from_config(&config).unwrap_err().to_string();
        assert!(
            err.contains("gh.secret") && err.contains("secret 0"),
            "{err}"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(Source::from_config(&config).is_err());
    }

    #[test]
    fn an_unusable_key_is_named_by_reference() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "whsec_dGVzdA==").unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "whsec_!!not-base64!!").unwrap();
        let config = SourceConfig::new(
            SourceName::new("sw"),
            None,
            SchemeConfig::StandardWebhooks(crate::config::StandardWebhooksConfig {
                secrets: vec![SecretRef::File(good), SecretRef::File(bad)],
                tolerance: Duration::from_secs(300),
            }),
        );
        let err = Source::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("secret 1") && err.contains("base64"), "{err}");
        assert!(!err.contains("not-base64!!"), "{err}");
    }

    #[test]
    fn a_source_without_secrets_cannot_be_built() {
        let config = SourceConfig::new(
            SourceName::new("st"),
            None,
            SchemeConfig::Stripe(StripeConfig {
                secrets: vec![],
                tolerance: Duration::from_secs(300),
            }),
        );
        assert!(matches!(
            Source::from_config(&config),
            Err(SourcesError::NoKeys(_))
        ));
    }
}
