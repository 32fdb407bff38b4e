//! What a claimer asks for: how many deliveries, and per plugin how many more may run and under
//! how long a lease.
//!
//! Invariants a backend keeps when it honours a [`ClaimRequest`]:
//! - It never returns more than `limit` deliveries in all, nor more than a plugin's `free` for
//!   that plugin, so one slow plugin cannot take every worker (the dispatcher passes each
//!   plugin's `concurrency` minus what it already runs).
//! - With [`ClaimRequest::plugins`] set, deliveries of unlisted plugins are left alone: they are
//!   not loaded, and claiming them would only spend work (they wait, attempts untouched).

use std::time::Duration;

use crate::ids::PluginName;

/// One plugin's room in a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSlots {
    pub plugin: PluginName,
    /// Deliveries of this plugin that may start now (its concurrency minus those running).
    pub free: usize,
    /// The lease its claimed deliveries get: longer than the plugin's timeout, so that a live
    /// worker's renewals always land before it lapses.
    pub lease: Duration,
}

/// A claim: at most `limit` due deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Most deliveries handed out by this claim (the dispatcher's free workers).
    pub limit: usize,
    /// `None`: any plugin's deliveries, oldest due first, each under `lease`.
    /// `Some`: only these plugins', each within its `free` slots and under its own lease;
    /// plugins are served in the order given (the dispatcher rotates it for fairness).
    pub plugins: Option<Vec<PluginSlots>>,
    /// The lease when `plugins` is `None`.
    pub lease: Duration,
}

impl ClaimRequest {
    /// Up to `limit` deliveries of any plugin, oldest due first, under `lease`.
    pub fn any(limit: usize, lease: Duration) -> ClaimRequest {
        ClaimRequest {
            limit,
            plugins: None,
            lease,
        }
    }

    /// Up to `limit` deliveries in all, within each plugin's slots.
    pub fn per_plugin(limit: usize, plugins: Vec<PluginSlots>) -> ClaimRequest {
        let lease = plugins.iter().map(|p| p.lease).max().unwrap_or_default();
        ClaimRequest {
            limit,
            plugins: Some(plugins),
            lease,
        }
    }
}
