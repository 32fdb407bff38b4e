//! The second half of a tiered hot swap: a plugin that went live on a fast-tier (Winch) build
//! gets its optimised (Cranelift) build in the background, which then replaces it in the live
//! set and is written to the compile cache (the fast build never is).
//!
//! Invariants:
//! - One optimised build at a time: Cranelift already uses both cores for one component, and a
//!   queue of them would only slow the next swap's fast build.
//! - An upgrade only ever replaces the fast build of the same component (same SHA-256, still
//!   on the fast tier); a plugin replaced or removed in the meantime is left alone, and its
//!   build is dropped (uncached). A manifest-only change during the build is kept: the optimised
//!   code is relinked with the manifest that is live when it lands.
//! - The swap is a compare-and-replace under the set's lock ([`SharedPlugins::update`]), so it
//!   never undoes a reconcile that ran meanwhile. Deliveries running on the fast build finish on
//!   it (they hold its `Arc`).
//! - If the optimised build fails (it passed every check on the fast tier, so this is not
//!   expected), the fast build stays live and the failure is logged.

use std::{sync::Arc, time::Instant};

use tokio::{sync::Mutex, task::JoinHandle};

use super::{PluginSet, SharedPlugins, registry::store_in_cache};
use crate::runtime::{LoadedPlugin, Loader, Tier};

/// The optimised builds owed to plugins live on the fast tier.
pub struct Upgrades {
    loader: Loader,
    plugins: SharedPlugins,
    /// Held while an optimised build runs: one at a time.
    turn: Arc<Mutex<()>>,
    running: Vec<JoinHandle<()>>,
}

impl Upgrades {
    /// Upgrades for the plugins of `plugins`, built by `loader`.
    pub fn new(loader: Loader, plugins: SharedPlugins) -> Upgrades {
        Upgrades {
            loader,
            plugins,
            turn: Arc::new(Mutex::new(())),
            running: Vec::new(),
        }
    }

    /// Starts the optimised build of `fast` (live now, built from `wasm`) in the background.
    pub fn start(&mut self, fast: &LoadedPlugin, wasm: Vec<u8>) {
        self.running.retain(|task| !task.is_finished());
        self.running.push(tokio::spawn(upgrade(
            self.loader.clone(),
            self.plugins.clone(),
            self.turn.clone(),
            Goal {
                name: fast.manifest.name.clone(),
                sha256: fast.sha256.clone(),
                landed: Instant::now(),
            },
            wasm,
        )));
    }

    /// Waits until every upgrade started so far has ended (swapped in or given up).
    pub async fn settled(&mut self) {
        for task in self.running.drain(..) {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a plugin's optimised build stopped unexpectedly");
            }
        }
    }
}

/// Which fast build an upgrade replaces.
struct Goal {
    name: crate::ids::PluginName,
    sha256: String,
    /// When the fast build went live.
    landed: Instant,
}

impl Goal {
    /// The fast build this upgrade is for, if it is still live.
    fn live_in(&self, set: &PluginSet) -> Option<Arc<LoadedPlugin>> {
        set.get(&self.name)
            .filter(|p| p.sha256 == self.sha256 && p.tier == Tier::Fast)
    }
}

async fn upgrade(
    loader: Loader,
    plugins: SharedPlugins,
    turn: Arc<Mutex<()>>,
    goal: Goal,
    wasm: Vec<u8>,
) {
    let _turn = turn.lock().await;
    // Replaced or removed while it waited for its turn: nothing to upgrade.
    let Some(mut linked_for) = goal.live_in(&plugins.current()) else {
        return;
    };
    let task_loader = loader.clone();
    let manifest = linked_for.manifest.clone();
    let built = tokio::task::spawn_blocking(move || task_loader.load_uncached(manifest, &wasm))
        .await
        .map_err(|e| e.to_string())
        .and_then(|loaded| loaded.map_err(|e| format!("{e:#}")));
    let (optimised, entry) = match built {
        Ok(built) => built,
        Err(error) => {
            tracing::error!(plugin = %goal.name, error,
                "the optimised build failed; the fast build stays live");
            return;
        }
    };
    let build_ms = optimised.compile_time.as_millis() as u64;
    let mut optimised = Arc::new(optimised);
    loop {
        let Some(live) = goal.live_in(&plugins.current()) else {
            return;
        };
        if !Arc::ptr_eq(&live, &linked_for) {
            // The manifest changed during the build: link the optimised code with the live one.
            match loader.relink(live.manifest.clone(), &optimised) {
                Ok(relinked) => optimised = Arc::new(relinked),
                Err(e) => {
                    tracing::error!(plugin = %goal.name, error = %format!("{e:#}"),
                        "relinking the optimised build failed; the fast build stays live");
                    return;
                }
            }
            linked_for = live;
        }
        let swapped = plugins.update(|set| {
            goal.live_in(set)
                .filter(|p| Arc::ptr_eq(p, &linked_for))
                .map(|_| set.with_changes(&[], [optimised.clone()]))
        });
        if swapped {
            break;
        }
    }
    metrics::counter!("wasmhook_plugin_tier_upgrades_total").increment(1);
    tracing::info!(plugin = %goal.name, build_ms,
        after_fast_ms = goal.landed.elapsed().as_millis() as u64,
        "plugin's optimised build replaced its fast build");
    store_in_cache(&loader, entry.into_iter().collect()).await;
}

#[cfg(test)]
mod tests;
