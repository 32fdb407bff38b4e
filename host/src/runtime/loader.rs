//! Turning component bytes into a [`LoadedPlugin`]: the compile cache or a fresh compile, the
//! import and export checks, and pre-instantiation against the host's linker.
//!
//! A [`Loader`] holds the engine and the linker but no services, so `wasmhook check` can load
//! and check every plugin exactly as `serve` would without opening the store.
//!
//! Invariants: every component, fresh or from the cache, goes through the same checks
//! ([`imports::check`](super::imports::check), then the generated bindings' type check); a cache
//! entry is only used for the exact bytes (SHA-256) and engine configuration it was made for;
//! [`Loader::compiles`] counts real compilations, so a test can tell a warm start from a cold one.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use wasmtime::{
    Engine,
    component::{Component, HasSelf, Linker},
};

use super::{
    LoadedPlugin, RuntimeError, bindings,
    bindings::PluginPre,
    cache::CompileCache,
    engine::{self, EngineOptions},
    imports,
    state::State,
};
use crate::plugins::Manifest;

/// Compiles (or loads from the compile cache), checks and pre-instantiates plugins. Cheap to
/// clone.
#[derive(Clone)]
pub struct Loader {
    inner: Arc<LoaderInner>,
}

struct LoaderInner {
    engine: Engine,
    linker: Linker<State>,
    cache: Option<CompileCache>,
    compiles: AtomicU64,
}

impl Loader {
    /// A loader for `engine`, with the compile cache in `cache_dir` when given (created `0700`;
    /// refused if others may write to it).
    pub fn new(engine: Engine, cache_dir: Option<&Path>) -> Result<Loader, RuntimeError> {
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("linking WASI: {e:#}")))?;
        bindings::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(format!("linking the plugin imports: {e:#}")))?;
        let cache = cache_dir
            .map(|dir| CompileCache::open(dir, &engine))
            .transpose()?;
        Ok(Loader {
            inner: Arc::new(LoaderInner {
                engine,
                linker,
                cache,
                compiles: AtomicU64::new(0),
            }),
        })
    }

    /// A loader with its own engine (on-demand allocation, no cache): for checking plugins
    /// without running them.
    pub fn standalone() -> Result<Loader, RuntimeError> {
        let (engine, _) = engine::build(&EngineOptions {
            pooling: false,
            ..EngineOptions::default()
        })?;
        Loader::new(engine, None)
    }

    /// The engine plugins are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The compile cache, if one is configured.
    pub fn cache(&self) -> Option<&CompileCache> {
        self.inner.cache.as_ref()
    }

    /// Components compiled (not taken from the cache) by this loader so far.
    pub fn compiles(&self) -> u64 {
        self.inner.compiles.load(Ordering::Relaxed)
    }

    /// Loads `wasm` from the compile cache or compiles it (and caches the result), checks its
    /// imports and exports, and pre-instantiates it.
    ///
    /// CPU-heavy when it compiles (hundreds of milliseconds for a typical Rust plugin, seconds
    /// for Python or JavaScript): call it on a blocking thread.
    pub fn load(&self, manifest: Manifest, wasm: &[u8]) -> Result<LoadedPlugin, RuntimeError> {
        let (plugin, entry) = self.load_uncached(manifest, wasm)?;
        if let Some(entry) = entry {
            self.store(entry);
        }
        Ok(plugin)
    }

    /// Like [`Loader::load`], but a fresh compilation is handed back as a [`CacheEntry`]
    /// instead of being written to the compile cache, so a caller can make the plugin live
    /// first and write the entry (serialize + fsync, tens of milliseconds) afterwards with
    /// [`Loader::store`]. `None` when the component came from the cache or there is no cache.
    pub fn load_uncached(
        &self,
        manifest: Manifest,
        wasm: &[u8],
    ) -> Result<(LoadedPlugin, Option<CacheEntry>), RuntimeError> {
        let started = Instant::now();
        let sha256 = hex::encode(Sha256::digest(wasm));
        let cached = self
            .cache()
            .and_then(|cache| cache.load(&self.inner.engine, &sha256));
        let compiled = cached.is_none();
        let component = match cached {
            Some(component) => {
                metrics::counter!("wasmhook_plugin_cache_hits_total").increment(1);
                component
            }
            None => {
                let component = self.compile(wasm)?;
                self.inner.compiles.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("wasmhook_plugin_compiles_total").increment(1);
                component
            }
        };
        let mut plugin = self.link(manifest, &component, sha256)?;
        // Only a component that passed every check is cached: a refused one compiles (and is
        // refused) again, which keeps the cache free of entries nobody can use.
        let entry = (compiled && self.cache().is_some()).then(|| CacheEntry {
            sha256: plugin.sha256.clone(),
            component,
        });
        plugin.compiled = compiled;
        plugin.compile_time = started.elapsed();
        Ok((plugin, entry))
    }

    /// Writes `entry` to the compile cache (blocking file I/O; failures are logged, as the
    /// cache only saves time).
    pub fn store(&self, entry: CacheEntry) {
        if let Some(cache) = self.cache() {
            cache.store(&entry.sha256, &entry.component);
        }
    }

    fn compile(&self, wasm: &[u8]) -> Result<Component, RuntimeError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(RuntimeError::Compile(
                "not a WebAssembly file (no `\\0asm` header); is it half-written, or another \
                 kind of file?"
                    .into(),
            ));
        }
        if is_core_module(wasm) {
            return Err(RuntimeError::Compile(
                "this is a core WebAssembly module, not a component; build the plugin for \
                 wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
                    .into(),
            ));
        }
        Component::new(&self.inner.engine, wasm)
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }

    /// Checks and pre-instantiates a compiled component, fresh or from the cache alike.
    fn link(
        &self,
        manifest: Manifest,
        component: &Component,
        sha256: String,
    ) -> Result<LoadedPlugin, RuntimeError> {
        imports::check(&self.inner.engine, component)?;
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| RuntimeError::WrongWorld(format!("{e:#}")))?;
        let pre =
            PluginPre::new(instance_pre).map_err(|e| RuntimeError::WrongWorld(format!("{e:#}")))?;
        Ok(LoadedPlugin {
            capabilities: Arc::new(manifest.capabilities.clone()),
            config: Arc::new(manifest.config.clone()),
            manifest,
            sha256,
            compile_time: Duration::ZERO,
            compiled: false,
            pre,
        })
    }
}

/// A fresh compilation that passed every check and is not in the compile cache yet; write it
/// with [`Loader::store`] (dropping it only costs the next start a compile).
pub struct CacheEntry {
    sha256: String,
    component: Component,
}

impl CacheEntry {
    /// SHA-256 (lower-case hex) of the component it was compiled from.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// Whether `wasm` is a core module (layer 0) rather than a component (layer 1).
fn is_core_module(wasm: &[u8]) -> bool {
    // Header: `\0asm`, then a 16-bit version and a 16-bit layer, little-endian.
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[6..8] == [0, 0]
}
