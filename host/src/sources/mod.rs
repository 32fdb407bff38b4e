//! Webhook sources: the configured senders, their signature schemes and the envelope (id, kind,
//! tenant) of what they send.
//!
//! Invariants:
//! - Verification runs on the raw body bytes before anything parses them. Only
//!   [`Source::verify`] constructs a [`Verified`]; the envelope can only be read from a
//!   `Verified` ([`Verified::envelope`]), so no code path can use an unverified body.
//! - A missing signature is an error, never a pass; several keys may be trusted at once.
//! - [`Scheme`] is closed: adding a signature scheme means adding its file (like `highlevel.rs`,
//!   with `verify` and `envelope`), a variant of `Scheme`, and its arm in each `match` below.

mod envelope;
mod error;
pub mod highlevel;
pub mod timestamp;
mod verified;

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use http::HeaderMap;

pub use envelope::{Envelope, MAX_FIELD_LEN};
pub use error::{EnvelopeError, SourcesError, VerifyError};
pub use verified::{Proof, SignatureKind, Verified};

use crate::{
    config::{SchemeConfig, SourceConfig},
    ids::{ApiName, SourceName},
};

/// All configured sources, by name. Immutable once built; a reload builds a new one.
pub struct Sources {
    by_name: BTreeMap<String, Arc<Source>>,
}

impl Sources {
    /// Builds every `[[sources]]` entry. Fails on a repeated name or a source without keys
    /// (config validation reports both first; this guards callers that skip it).
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
    /// HighLevel marketplace webhooks (`highlevel.rs`).
    HighLevel(highlevel::HighLevel),
}

impl Source {
    /// Builds a source from its validated config.
    pub fn from_config(config: &SourceConfig) -> Result<Source, SourcesError> {
        let scheme = match &config.scheme {
            SchemeConfig::HighLevel(hl) => {
                Scheme::HighLevel(highlevel::HighLevel::new(&config.name, hl)?)
            }
        };
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

    /// The scheme's config name (`highlevel`, ...), for logs and metrics.
    pub fn scheme_name(&self) -> &'static str {
        match &self.scheme {
            Scheme::HighLevel(_) => "highlevel",
        }
    }

    /// Verifies the request's signature over the raw `body` and, on success, binds the body to
    /// this source as a [`Verified`]. Nothing about the body is parsed before this succeeds.
    pub fn verify(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Verified, VerifyError> {
        let proof = match &self.scheme {
            Scheme::HighLevel(hl) => hl.verify(headers, &body)?,
        };
        Ok(Verified::new(Arc::clone(self), body, proof))
    }

    /// The envelope of a body this source verified. Private: reached only through
    /// [`Verified::envelope`], which is what guarantees `body` was verified.
    fn envelope(&self, body: &[u8], now_ms: i64) -> Result<Envelope, EnvelopeError> {
        match &self.scheme {
            Scheme::HighLevel(hl) => hl.envelope(body, now_ms),
        }
    }
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
