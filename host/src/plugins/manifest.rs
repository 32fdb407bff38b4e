//! A plugin's manifest (`name.toml`), see DESIGN.md §4.

use std::{path::PathBuf, time::Duration};

use crate::{api::Capabilities, ids::PluginName};

/// A validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    pub name: PluginName,
    /// Which events it receives.
    pub events: Vec<EventPattern>,
    /// Wall-clock budget per attempt, host calls included. Default 30 s.
    pub timeout: Duration,
    /// Cap on all linear memories together, in bytes. Default 64 MiB.
    pub memory: u64,
    /// Attempts before a delivery is dead. Default 5.
    pub max_attempts: u32,
    /// API calls allowed per attempt. Default 50.
    pub max_api_calls: u32,
    /// Deliveries of this plugin running at once (within the global `plugins.workers`).
    /// Default 4.
    pub concurrency: u32,
    /// JSON pointer into the payload (e.g. `/contactId`): deliveries with the same value run
    /// one at a time, in arrival order. None: no ordering.
    pub ordering_key: Option<String>,
    pub capabilities: Capabilities,
    /// The `[config]` table, as JSON.
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// `source:kind` with `*` for either part, or `*` alone for everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPattern {
    /// None = any source.
    pub source: Option<String>,
    /// None = any kind.
    pub kind: Option<String>,
}

impl EventPattern {
    /// Whether an event of `kind` from `source` matches.
    pub fn matches(&self, source: &str, kind: &str) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self.kind.as_deref().is_none_or(|k| k == kind)
    }
}

/// A manifest problem: the file, the field and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {field}: {message}")]
pub struct ManifestError {
    pub path: PathBuf,
    pub field: String,
    pub message: String,
}
