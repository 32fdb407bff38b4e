//! The dispatcher: background workers that claim due deliveries and run plugins on them.
//!
//! Plugins run on their own multi-threaded tokio runtime, separate from the one serving HTTP, so
//! plugin CPU can never starve ingress. A semaphore bounds deliveries in flight (`workers`); the
//! loop claims as many due deliveries as it has free permits, runs each in its own task, and
//! sleeps until ingress wakes it or `poll_interval` passes (retries become due by time alone).
//!
//! Each claimed delivery holds a lease that a side task renews every third of its length, so a
//! plugin that runs long is never claimed twice, while a crashed worker's delivery becomes
//! claimable again once the lease lapses.

mod backoff;
mod worker;

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, Semaphore, watch},
    task::JoinSet,
};

use crate::{
    config::PluginsConfig,
    plugins::SharedPlugins,
    runtime::Runtime,
    store::{AnyStore, Store},
};

pub use backoff::delay as retry_delay;

/// How long a claimed delivery is held before another worker may take it over. Renewed every
/// `LEASE / 3` while the plugin runs, so it only lapses when the worker or process is gone.
pub const LEASE: Duration = Duration::from_secs(30);

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
    plugin_runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    main: tokio::task::JoinHandle<()>,
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
        let main = plugin_runtime.spawn(dispatch_loop(deps, stop_rx));
        Ok(Dispatcher {
            plugin_runtime,
            stop,
            main,
        })
    }

    /// Stops claiming, lets running deliveries finish within `grace`, then stops. Deliveries
    /// still running after `grace` are abandoned: their leases lapse and another worker (or the
    /// next start) runs them again.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut main = self.main;
        if tokio::time::timeout(grace, &mut main).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "deliveries still running at shutdown; they will run again after their lease lapses"
            );
            main.abort();
        }
        // Dropping a runtime inside an async context is not allowed; this detaches its threads.
        self.plugin_runtime.shutdown_background();
    }
}

async fn dispatch_loop(deps: Deps, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(deps.config.workers));
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let first = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let mut held = vec![first];
        while held.len() < MAX_CLAIM_BATCH {
            match permits.clone().try_acquire_owned() {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        match deps.store.claim(held.len(), LEASE).await {
            Ok(claimed) if !claimed.is_empty() => {
                for (delivery, permit) in claimed.into_iter().zip(held.drain(..)) {
                    let deps = deps.clone();
                    running.spawn(async move {
                        worker::run(&deps, delivery).await;
                        drop(permit);
                    });
                }
                // Permits not matched by a claim are released here; loop at once for more.
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "claiming deliveries failed"),
        }
        drop(held);
        tokio::select! {
            _ = deps.wake.notified() => {}
            _ = tokio::time::sleep(deps.config.poll_interval) => {}
            _ = stop.changed() => break,
        }
    }
    // Stop claiming; let what runs finish (the caller bounds this by the grace period).
    while running.join_next().await.is_some() {}
}
