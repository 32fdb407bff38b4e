//! Turning component bytes into a [`LoadedPlugin`]: the compile cache or a fresh compile, the
//! import and export checks, and pre-instantiation against the host's linker.
//!
//! A [`Loader`] holds the engines and their linkers but no services, so `wasmhook check` can
//! load and check every plugin exactly as `serve` would without opening the store.
//!
//! Two compiler tiers: [`Tier::Optimised`] (Cranelift on the main engine, the only code written
//! to the compile cache) and, when the runtime has one, [`Tier::Fast`] (Winch on a second
//! engine). [`Loader::load_tiered`] serves a hot swap: a cache hit as usual, else a fast build
//! that the caller replaces with [`Loader::load_uncached`]'s optimised one later. A component
//! the fast compiler cannot handle (Winch lacks some proposals, e.g. tail calls and
//! exceptions) falls back to the optimised compile, whose error, if any, is the one reported.
//!
//! Invariants: every component, fresh or from the cache, of either tier, goes through the same
//! checks ([`imports::check`](super::imports::check), then the generated bindings' type check);
//! a cache entry is only used for the exact bytes (SHA-256) and engine configuration it was made
//! for, and only optimised code is ever cached; [`Loader::compiles`] counts real compilations
//! of either tier, so a test can tell a warm start from a cold one.

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

/// Which compiler made a plugin's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Cranelift on the main engine: what runs for good, and what the compile cache holds.
    Optimised,
    /// Winch on the fast tier's engine: live within a hot swap's first tens of milliseconds,
    /// until the optimised build replaces it.
    Fast,
}

/// What [`Loader::load_tiered`] produced.
pub enum Loaded {
    /// Optimised code: from the compile cache, or compiled now (then with its cache entry).
    Final(LoadedPlugin, Option<CacheEntry>),
    /// A fast-tier build; the optimised build is still owed ([`Loader::load_uncached`]).
    Fast(LoadedPlugin),
}

/// Compiles (or loads from the compile cache), checks and pre-instantiates plugins. Cheap to
/// clone.
#[derive(Clone)]
pub struct Loader {
    inner: Arc<LoaderInner>,
}

struct LoaderInner {
    optimised: Compiler,
    fast: Option<Compiler>,
    cache: Option<CompileCache>,
    compiles: AtomicU64,
}

/// One tier: an engine and the host's linker for it.
struct Compiler {
    engine: Engine,
    linker: Linker<State>,
}

impl Compiler {
    fn new(engine: Engine) -> Result<Compiler, RuntimeError> {
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("linking WASI: {e:#}")))?;
        bindings::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(format!("linking the plugin imports: {e:#}")))?;
        Ok(Compiler { engine, linker })
    }
}

impl Loader {
    /// A loader for `engine`, with the compile cache in `cache_dir` when given (created `0700`;
    /// refused if others may write to it).
    pub fn new(engine: Engine, cache_dir: Option<&Path>) -> Result<Loader, RuntimeError> {
        Loader::tiered(engine, None, cache_dir)
    }

    /// Like [`Loader::new`], with `fast` (see [`engine::build_fast`]) as the fast tier when
    /// given.
    pub fn tiered(
        engine: Engine,
        fast: Option<Engine>,
        cache_dir: Option<&Path>,
    ) -> Result<Loader, RuntimeError> {
        let cache = cache_dir
            .map(|dir| CompileCache::open(dir, &engine))
            .transpose()?;
        Ok(Loader {
            inner: Arc::new(LoaderInner {
                optimised: Compiler::new(engine)?,
                fast: fast.map(Compiler::new).transpose()?,
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

    /// The engine optimised plugins are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.optimised.engine
    }

    /// Whether hot swaps can go live on a fast-tier build first.
    pub fn has_fast_tier(&self) -> bool {
        self.inner.fast.is_some()
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
            .and_then(|cache| cache.load(self.engine(), &sha256));
        let compiled = cached.is_none();
        let component = match cached {
            Some(component) => {
                metrics::counter!("wasmhook_plugin_cache_hits_total").increment(1);
                component
            }
            None => self.compile(&self.inner.optimised, wasm)?,
        };
        let mut plugin = self.link(&self.inner.optimised, manifest, &component, sha256)?;
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

    /// For a hot swap: the optimised build from the compile cache when there is one, else a
    /// fast-tier build when the fast tier can compile `wasm`, else the optimised compile (as
    /// [`Loader::load_uncached`]). A fast build that the checks refuse is refused outright: the
    /// checks do not depend on the compiler.
    pub fn load_tiered(&self, manifest: Manifest, wasm: &[u8]) -> Result<Loaded, RuntimeError> {
        let Some(fast) = &self.inner.fast else {
            return self
                .load_uncached(manifest, wasm)
                .map(|(plugin, entry)| Loaded::Final(plugin, entry));
        };
        let started = Instant::now();
        let sha256 = hex::encode(Sha256::digest(wasm));
        if self
            .cache()
            .is_some_and(|c| c.entry_path(&sha256).is_file())
        {
            return self
                .load_uncached(manifest, wasm)
                .map(|(plugin, entry)| Loaded::Final(plugin, entry));
        }
        let component = match self.compile(fast, wasm) {
            Ok(component) => component,
            Err(e) => {
                tracing::info!(error = %e, "the fast compiler tier cannot compile this component; compiling it optimised");
                return self
                    .load_uncached(manifest, wasm)
                    .map(|(plugin, entry)| Loaded::Final(plugin, entry));
            }
        };
        let mut plugin = self.link(fast, manifest, &component, sha256)?;
        plugin.compiled = true;
        plugin.tier = Tier::Fast;
        plugin.compile_time = started.elapsed();
        Ok(Loaded::Fast(plugin))
    }

    /// `live`'s compiled code linked again with `manifest` (a manifest-only change): no compile
    /// and no cache read, on the tier `live` is on.
    pub fn relink(
        &self,
        manifest: Manifest,
        live: &LoadedPlugin,
    ) -> Result<LoadedPlugin, RuntimeError> {
        let started = Instant::now();
        let compiler = match (live.tier, &self.inner.fast) {
            (Tier::Fast, Some(fast)) => fast,
            _ => &self.inner.optimised,
        };
        let component = live.pre.instance_pre().component().clone();
        let mut plugin = self.link(compiler, manifest, &component, live.sha256.clone())?;
        plugin.tier = live.tier;
        plugin.compile_time = started.elapsed();
        Ok(plugin)
    }

    /// Writes `entry` to the compile cache (blocking file I/O; failures are logged, as the
    /// cache only saves time).
    pub fn store(&self, entry: CacheEntry) {
        if let Some(cache) = self.cache() {
            cache.store(&entry.sha256, &entry.component);
        }
    }

    fn compile(&self, compiler: &Compiler, wasm: &[u8]) -> Result<Component, RuntimeError> {
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
        let component = Component::new(&compiler.engine, wasm)
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        self.inner.compiles.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("wasmhook_plugin_compiles_total").increment(1);
        Ok(component)
    }

    /// Checks and pre-instantiates a compiled component, fresh or from the cache alike.
    fn link(
        &self,
        compiler: &Compiler,
        manifest: Manifest,
        component: &Component,
        sha256: String,
    ) -> Result<LoadedPlugin, RuntimeError> {
        imports::check(&compiler.engine, component)?;
        let instance_pre = compiler
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
            tier: Tier::Optimised,
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
