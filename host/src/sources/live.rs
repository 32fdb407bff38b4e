//! `LiveSources`: the sources ingress uses right now, replaced as a whole on reload (SIGHUP).
//!
//! Invariants: a request takes one snapshot (`current`) and uses it to the end, so it never
//! sees half of an old config and half of a new one; a replacement never waits for requests
//! and never drops a connection. The lock is held only to clone or swap an `Arc`.

use std::sync::{Arc, PoisonError, RwLock};

use super::Sources;

/// The current [`Sources`], swappable while serving.
pub struct LiveSources {
    inner: RwLock<Arc<Sources>>,
}

impl LiveSources {
    /// Starts with `sources`.
    pub fn new(sources: Sources) -> LiveSources {
        LiveSources {
            inner: RwLock::new(Arc::new(sources)),
        }
    }

    /// The sources in force now.
    pub fn current(&self) -> Arc<Sources> {
        // A poisoned lock only means a panic elsewhere while swapping an `Arc`, which leaves
        // the value whole; keep serving.
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `sources` in force for every later request.
    pub fn replace(&self, sources: Sources) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(sources);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{GitHubConfig, SchemeConfig, SourceConfig},
        ids::SourceName,
        secret::SecretRef,
    };

    #[test]
    fn a_snapshot_outlives_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "x").unwrap();
        let config = |name: &str| {
            SourceConfig::new(
                SourceName::new(name),
                None,
                SchemeConfig::GitHub(GitHubConfig {
                    secrets: vec![SecretRef::File(secret.clone())],
                }),
            )
        };
        let live = LiveSources::new(Sources::from_config(&[config("old")]).unwrap());
        let before = live.current();
        live.replace(Sources::from_config(&[config("new")]).unwrap());
        assert!(before.get("old").is_some(), "the old snapshot is intact");
        assert!(live.current().get("new").is_some());
        assert!(live.current().get("old").is_none());
    }
}
