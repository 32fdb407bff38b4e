//! The dispatcher: background workers that claim due deliveries and run plugins on them.
//!
//! Plugins run on their own multi-threaded tokio runtime, separate from the one serving HTTP, so
//! plugin CPU can never starve ingress. Two limits bound what runs at once:
//! - `plugins.workers` (global): deliveries in flight across all plugins;
//! - each plugin's manifest `concurrency`: its own deliveries in flight. The claim asks the store
//!   for at most each plugin's free slots, so one slow plugin fills only its own slots and every
//!   other plugin keeps getting workers.
//!
//! The loop claims as many due deliveries as there is room for, runs each in its own task, and
//! waits until a task finishes, ingress wakes it, or `poll_interval` passes (retries become due
//! by time alone). Plugins are offered to the claim in a rotating order, so that when workers are
//! scarce no plugin is always served last.
//!
//! A delivery holds its slots from its claim until its plugin's run ends, not until its
//! completion is committed: the completion is handed to the store first (the SQLite writer runs
//! its queue in order, so the next claim commits after it and the store never shows more of a
//! plugin's deliveries running than its `concurrency`), and the slot goes to the next claim while
//! the commit's fsync is under way. Holding the slot across that commit made every slot wait
//! for two durable commits (claim and completion) per delivery, each ~1.5 ms in a group commit
//! shared with ingest, against well under a millisecond of plugin work for a typical handler.
//!
//! Leases (see `lease`): each claimed delivery holds one of its plugin's timeout plus a margin,
//! renewed every third of its length while the plugin runs, so a long-running delivery is never
//! claimed twice, while a crashed worker's delivery becomes claimable once the lease lapses.
//!
//! Shutdown: stop claiming, let running deliveries finish within the grace period; any still
//! running then is cut off and put back to pending at once (no attempt spent), so the next start
//! runs it without waiting for its lease to lapse.

mod backoff;
mod inflight;
mod lease;
mod slot;
mod worker;

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, mpsc, watch},
    task::JoinSet,
};

use crate::{
    config::PluginsConfig,
    ids::{PluginName, now_ms},
    plugins::{Manifest, SharedPlugins},
    runtime::Runtime,
    store::{AnyStore, ClaimRequest, PluginSlots, Store},
};

pub use backoff::delay as retry_delay;
pub use inflight::InFlight;
pub use lease::{LEASE_MARGIN, lease_for};

use self::slot::Slot;

/// Most deliveries claimed in one store round trip.
const MAX_CLAIM_BATCH: usize = 64;

/// What the workers need.
#[derive(Clone)]
pub struct Deps {
    pub store: AnyStore,
    pub plugins: SharedPlugins,
    pub runtime: Runtime,
    /// Notified by ingress after it stored new deliveries.
    pub wake: Arc<Notify>,
    pub config: PluginsConfig,
}

/// A running dispatcher. Call [`Dispatcher::shutdown`] to stop it.
pub struct Dispatcher {
    /// Always `Some` until `Drop` takes it (see there).
    plugin_runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    main: tokio::task::JoinHandle<()>,
    inflight: InFlight,
    store: AnyStore,
}

impl Dispatcher {
    /// Starts the plugin runtime (`config.threads` threads) and the dispatch loop on it.
    pub fn start(deps: Deps) -> std::io::Result<Dispatcher> {
        let plugin_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(deps.config.threads)
            .thread_name("wasmhook-plugins")
            .enable_all()
            .build()?;
        let (stop, stop_rx) = watch::channel(false);
        let inflight = InFlight::default();
        let store = deps.store.clone();
        let main = plugin_runtime.spawn(dispatch_loop(deps, inflight.clone(), stop_rx));
        Ok(Dispatcher {
            plugin_runtime: Some(plugin_runtime),
            stop,
            main,
            inflight,
            store,
        })
    }

    /// Deliveries running now (for status and tests).
    pub fn inflight(&self) -> &InFlight {
        &self.inflight
    }

    /// Stops claiming, lets running deliveries finish within `grace`, then stops. Deliveries
    /// still running after `grace` are cut off and put back to pending, due now, without
    /// spending their attempt (the host stopped them, not the plugin); if even that fails their
    /// leases lapse and they run again after that.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let main = &mut self.main;
        if tokio::time::timeout(grace, &mut *main).await.is_err() {
            main.abort();
            let _ = main.await;
            let cut_off = self.inflight.take_all();
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                deliveries = cut_off.len(),
                "deliveries still running at the end of the shutdown grace period; they run again at the next start"
            );
            for running in cut_off {
                let note = "interrupted by a shutdown; runs again at the next start".to_owned();
                if let Err(e) = self
                    .store
                    .defer(&running.delivery, &running.lease, now_ms(), note)
                    .await
                {
                    tracing::warn!(delivery = %running.delivery, error = %e,
                        "could not release an interrupted delivery; it runs again once its lease lapses");
                }
            }
        }
        // `Drop` detaches the plugin runtime's threads.
    }
}

impl Drop for Dispatcher {
    /// Dropping a tokio runtime inside an async context panics, and `run` may drop a started
    /// dispatcher on an early error; detaching its threads is always allowed.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.plugin_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Each plugin's free slots (its `concurrency` minus its running deliveries) and lease, for
/// those with room, starting at `rotation` (mod their count).
fn slots<'a>(
    manifests: impl Iterator<Item = &'a Manifest>,
    running: &HashMap<PluginName, usize>,
    rotation: usize,
) -> Vec<PluginSlots> {
    let mut all: Vec<PluginSlots> = manifests
        .filter_map(|manifest| {
            let busy = running.get(&manifest.name).copied().unwrap_or(0);
            let free = (manifest.concurrency as usize).saturating_sub(busy);
            (free > 0).then(|| PluginSlots {
                plugin: manifest.name.clone(),
                free,
                lease: lease_for(manifest.timeout),
            })
        })
        .collect();
    if !all.is_empty() {
        let at = rotation % all.len();
        all.rotate_left(at);
    }
    all
}

async fn dispatch_loop(deps: Deps, inflight: InFlight, mut stop: watch::Receiver<bool>) {
    let workers = deps.config.workers;
    // Workers running or completing; the loop only waits for them at shutdown.
    let mut running: JoinSet<()> = JoinSet::new();
    // Slots come back here when a plugin's run ends (see `slot`).
    let (freed, mut freed_rx) = mpsc::unbounded_channel::<PluginName>();
    let mut busy = 0usize;
    let mut per_plugin: HashMap<PluginName, usize> = HashMap::new();
    let mut rotation = 0usize;
    let give_back = |busy: &mut usize, per_plugin: &mut HashMap<PluginName, usize>, plugin| {
        *busy = busy.saturating_sub(1);
        if let Some(n) = per_plugin.get_mut(&plugin) {
            *n = n.saturating_sub(1);
        }
    };
    loop {
        while running.try_join_next().is_some() {}
        while let Ok(plugin) = freed_rx.try_recv() {
            give_back(&mut busy, &mut per_plugin, plugin);
        }
        if *stop.borrow() {
            break;
        }
        let room = workers.saturating_sub(busy).min(MAX_CLAIM_BATCH);
        if room > 0 {
            let set = deps.plugins.current();
            let slots = slots(set.iter().map(|p| &p.manifest), &per_plugin, rotation);
            rotation = rotation.wrapping_add(1);
            if !slots.is_empty() {
                match deps
                    .store
                    .claim(ClaimRequest::per_plugin(room, slots))
                    .await
                {
                    Ok(claimed) if !claimed.is_empty() => {
                        for delivery in claimed {
                            busy += 1;
                            *per_plugin.entry(delivery.plugin.clone()).or_default() += 1;
                            let slot = Slot::new(delivery.plugin.clone(), freed.clone());
                            let deps = deps.clone();
                            let inflight = inflight.clone();
                            running.spawn(async move {
                                worker::run(&deps, &inflight, delivery, slot).await;
                            });
                        }
                        // There may be more due: claim again at once.
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "claiming deliveries failed"),
                }
            }
        }
        tokio::select! {
            Some(plugin) = freed_rx.recv() => give_back(&mut busy, &mut per_plugin, plugin),
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = deps.wake.notified() => {}
            _ = tokio::time::sleep(deps.config.poll_interval) => {}
            _ = stop.changed() => break,
        }
    }
    // Stop claiming; let what runs finish (the caller bounds this by the grace period).
    while running.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::test_support::manifest;

    #[test]
    fn slots_leave_out_full_plugins_and_rotate() {
        let a = manifest("a", "concurrency = 2\ntimeout = \"1s\"");
        let b = manifest("b", "concurrency = 1");
        let c = manifest("c", "");
        let running = HashMap::from([(PluginName::new("a"), 1), (PluginName::new("b"), 1)]);
        let got = slots([&a, &b, &c].into_iter(), &running, 0);
        let names: Vec<(&str, usize)> = got.iter().map(|s| (s.plugin.as_str(), s.free)).collect();
        assert_eq!(
            names,
            vec![("a", 1), ("c", 4)],
            "b is full; c has the default 4"
        );
        assert_eq!(got[0].lease, Duration::from_secs(1) + LEASE_MARGIN);
        let rotated = slots([&a, &b, &c].into_iter(), &running, 1);
        assert_eq!(
            rotated[0].plugin.as_str(),
            "c",
            "the next claim starts elsewhere"
        );
        assert!(slots(std::iter::empty(), &running, 3).is_empty());
    }
}
