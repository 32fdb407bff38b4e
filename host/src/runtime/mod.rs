//! The plugin runtime: one wasmtime `Engine` and `Linker`, each plugin compiled and
//! pre-instantiated once, and a fresh `Store` per delivery with a memory cap over all its linear
//! memories, a wall-clock deadline covering host calls, and capped log capture.
//!
//! Invariants:
//! - Nothing a plugin does can outlive its delivery or escape its budget: each invocation gets
//!   a new store (dropped at the end), the whole instantiate + `handle` call runs under the
//!   manifest's timeout (epoch interruption for guest code, a tokio timeout for host waits), and
//!   memory growth past the manifest's cap is refused.
//! - Only the imports checked in [`imports`] are linked; WASI grants nothing ambient.
//! - `load` is CPU-heavy (compilation) and synchronous: callers run it on a blocking thread.
//!
//! Layout: `engine` (config, pool, fast tier, epoch ticker), `bindings` (the one `bindgen!`), `state`
//! (per-delivery host state), `limits`, `logs` + `output` (log capture), `host_*` (the imports),
//! `imports` (load-time checks), `loader` (compile or cache, check, pre-instantiate), `cache`
//! (the on-disk compile cache), `invoke` (one delivery).

mod bindings;
mod cache;
mod engine;
mod error;
mod host_api;
mod host_config;
mod host_kv;
mod host_log;
mod host_pages;
mod imports;
mod invoke;
mod limits;
mod loader;
mod logs;
mod output;
mod state;

#[cfg(test)]
mod host_api_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::{fmt, sync::Arc, time::Duration};

pub use cache::{CacheError, CompileCache};
pub use engine::{Allocator, EngineOptions};
pub use error::RuntimeError;
pub use loader::{CacheEntry, Loaded, Loader, Tier};

use self::{bindings::PluginPre, engine::EpochTicker, state::State};
use crate::{
    api::{ApiClient, Capabilities},
    ids::DeliveryId,
    plugins::Manifest,
    store::{AnyStore, LogLine, StoredEvent},
};

/// What the runtime needs from the rest of the host.
#[derive(Clone)]
pub struct Services {
    /// Backs the `kv` import.
    pub store: AnyStore,
    /// Backs the `api` import.
    pub api: ApiClient,
}

/// A compiled, pre-instantiated plugin. Cheap to instantiate per delivery; share it in an `Arc`.
pub struct LoadedPlugin {
    /// The manifest it was loaded with.
    pub manifest: Manifest,
    /// SHA-256 of the component bytes, lower-case hex.
    pub sha256: String,
    /// How long loading took: compiling (or reading the compile cache) and linking.
    pub compile_time: Duration,
    /// Whether it was compiled now rather than taken from the compile cache.
    pub compiled: bool,
    /// Which compiler made its code: a fast-tier build is replaced by the optimised one.
    pub tier: Tier,
    pre: PluginPre<State>,
    /// Shared with every delivery's state, so a delivery does not copy the manifest's grants.
    capabilities: Arc<Capabilities>,
    config: Arc<serde_json::Map<String, serde_json::Value>>,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// The delivery being run.
#[derive(Clone, Debug)]
pub struct DeliveryInfo {
    /// Stable across attempts.
    pub id: DeliveryId,
    /// 1-based.
    pub attempt: u32,
    /// Stable across attempts and redeliveries; the plugin uses it for idempotent side effects.
    pub idempotency_key: String,
}

/// How one invocation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `handle` returned `ok`.
    Succeeded,
    /// The plugin asked to retry.
    Retry {
        /// Why, in the plugin's words.
        reason: String,
        /// The earliest next attempt the plugin asked for; the host's backoff when `None`.
        after: Option<Duration>,
    },
    /// The plugin said retrying cannot help.
    Fail(String),
    /// The guest trapped (panic, unreachable, stack overflow, ...), or failed to instantiate.
    Trap(String),
    /// The wall-clock deadline passed (guest code interrupted, or a host wait cut short).
    Timeout,
    /// The guest tried to grow its memories past the manifest's cap and then failed.
    MemoryExceeded(String),
    /// An API call had to wait for something outside the plugin (the tenant's credentials are
    /// not ready, or the API's quota is spent) and the plugin did not succeed: the delivery
    /// waits `after` without spending an attempt, showing `note`.
    Deferred { after: Duration, note: String },
}

/// The result of running a plugin once.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// How it ended.
    pub outcome: Outcome,
    /// The plugin's log lines and captured output, capped.
    pub logs: Vec<LogLine>,
    /// API calls handed to the client (calls refused for `max_api_calls` are not counted).
    pub api_calls: u32,
    /// Wall-clock time of the attempt, instantiation included.
    pub duration: Duration,
    /// Linear memory the instance held when it ended, in bytes: its peak, since a WebAssembly
    /// memory never shrinks. What a manifest's `memory` must cover.
    pub memory_bytes: usize,
}

/// The plugin runtime. Cheap to clone; the epoch thread stops when the last clone drops.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    loader: Loader,
    services: Arc<Services>,
    allocator: Allocator,
    // Declared last: dropped (and its thread joined) after everything else.
    _ticker: EpochTicker,
}

impl Runtime {
    /// The runtime with production engine settings.
    pub fn new(services: Services) -> Result<Runtime, RuntimeError> {
        Runtime::with_options(services, EngineOptions::default())
    }

    /// The runtime with explicit engine settings (tests use a small pool).
    pub fn with_options(
        services: Services,
        options: EngineOptions,
    ) -> Result<Runtime, RuntimeError> {
        let (engine, allocator) = engine::build(&options)?;
        let fast = options
            .fast_tier
            .then(|| engine::build_fast(&options))
            .flatten();
        let ticker = EpochTicker::start(
            [Some(engine.clone()), fast.clone()]
                .into_iter()
                .flatten()
                .collect(),
            options.epoch_tick,
        )?;
        let loader = Loader::tiered(engine, fast, options.compile_cache.as_deref())?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                loader,
                services: Arc::new(services),
                allocator,
                _ticker: ticker,
            }),
        })
    }

    /// Which instance allocator the engine uses (pooling unless the address space forbids it).
    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// The loader: compiles (or takes from the compile cache), checks and pre-instantiates.
    pub fn loader(&self) -> &Loader {
        &self.inner.loader
    }

    /// Loads a plugin (see [`Loader::load`]). CPU-heavy: call it on a blocking thread.
    pub fn load(&self, manifest: Manifest, wasm: &[u8]) -> Result<LoadedPlugin, RuntimeError> {
        self.inner.loader.load(manifest, wasm)
    }

    /// Runs the plugin's `handle` on `event` in a fresh instance, within the manifest's timeout
    /// and memory cap. Never fails: every ending is an [`Outcome`].
    pub async fn invoke(
        &self,
        plugin: &LoadedPlugin,
        event: &StoredEvent,
        delivery: &DeliveryInfo,
    ) -> Invocation {
        invoke::run(&self.inner, plugin, event, delivery).await
    }
}
