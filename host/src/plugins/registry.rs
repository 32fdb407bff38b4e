//! The loaded plugins, and loading them from the plugin folder.
//!
//! A [`PluginSet`] is swapped as a whole (an `Arc` snapshot), so a running delivery keeps the
//! version it started with while new deliveries see the new set.
//!
//! Loading: the folder holds `name.toml` + `name.wasm` pairs. [`load_dir`] loads every pair it
//! finds and reports (without stopping) manifests without a component, components without a
//! manifest, invalid manifests and components that fail to compile or link. [`load_pair`] loads
//! one pair on its own, so a watcher can (re)load a single plugin; [`load_pair_tiered`] is the
//! hot swap's version of it (a relink, a cache hit, or a fast-tier build).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    ids::PluginName,
    plugins::{Manifest, ManifestError},
    runtime::{CacheEntry, Loaded, LoadedPlugin, Loader, RuntimeError, Tier},
    store::NewDelivery,
};

/// An immutable snapshot of the loaded plugins.
#[derive(Clone, Default)]
pub struct PluginSet {
    plugins: Arc<BTreeMap<PluginName, Arc<LoadedPlugin>>>,
}

impl PluginSet {
    /// A set of these plugins.
    pub fn new(plugins: impl IntoIterator<Item = Arc<LoadedPlugin>>) -> PluginSet {
        PluginSet {
            plugins: Arc::new(
                plugins
                    .into_iter()
                    .map(|p| (p.manifest.name.clone(), p))
                    .collect(),
            ),
        }
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &PluginName) -> Option<Arc<LoadedPlugin>> {
        self.plugins.get(name).cloned()
    }

    /// One delivery per plugin subscribed to `kind` events from `source`.
    pub fn subscribers(&self, source: &str, kind: &str) -> Vec<NewDelivery> {
        self.plugins
            .values()
            .filter(|p| p.manifest.events.iter().any(|e| e.matches(source, kind)))
            .map(|p| NewDelivery {
                plugin: p.manifest.name.clone(),
                max_attempts: p.manifest.max_attempts,
                ordering_key: p.manifest.ordering_key.clone(),
            })
            .collect()
    }

    /// Number of plugins.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// Whether no plugin is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plugins, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values()
    }

    /// This set without `removed`, and with `added` (replacing plugins of the same names).
    pub fn with_changes(
        &self,
        removed: &[PluginName],
        added: impl IntoIterator<Item = Arc<LoadedPlugin>>,
    ) -> PluginSet {
        let mut plugins = (*self.plugins).clone();
        for name in removed {
            plugins.remove(name);
        }
        for plugin in added {
            plugins.insert(plugin.manifest.name.clone(), plugin);
        }
        PluginSet {
            plugins: Arc::new(plugins),
        }
    }
}

/// The live plugin set, shared by ingress and the dispatcher. Readers take a cheap snapshot;
/// a reload replaces the whole set at once.
#[derive(Clone, Default)]
pub struct SharedPlugins(Arc<std::sync::RwLock<PluginSet>>);

impl SharedPlugins {
    /// Starts with `set`.
    pub fn new(set: PluginSet) -> SharedPlugins {
        SharedPlugins(Arc::new(std::sync::RwLock::new(set)))
    }

    /// The current set.
    pub fn current(&self) -> PluginSet {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the set; deliveries already running keep the plugin they started with.
    pub fn replace(&self, set: PluginSet) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// Replaces the set with what `change` makes of the current one, if anything, under the
    /// write lock: the reconcile and the tier upgrades both write, and neither may undo the
    /// other's change by storing a set derived from an older snapshot. `change` must be quick
    /// (no loading): readers wait for it. Returns whether the set was replaced.
    pub fn update(&self, change: impl FnOnce(&PluginSet) -> Option<PluginSet>) -> bool {
        let mut set = self.0.write().unwrap_or_else(|e| e.into_inner());
        match change(&set) {
            Some(next) => {
                *set = next;
                true
            }
            None => false,
        }
    }
}

/// Why one file of the plugin folder was not loaded. Displays the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder itself could not be listed.
    #[error("{}: cannot list the plugin folder: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest without its component.
    #[error(
        "{}: no component `{}` next to it; build the plugin and copy its .wasm here",
        manifest.display(),
        wasm.display()
    )]
    MissingComponent { manifest: PathBuf, wasm: PathBuf },
    /// A component without its manifest.
    #[error(
        "{}: no manifest `{}` next to it; add one (see the README) or remove the file",
        wasm.display(),
        manifest.display()
    )]
    MissingManifest { wasm: PathBuf, manifest: PathBuf },
    /// The manifest is invalid (its error names the file and the field).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The component could not be compiled, was refused, or does not fit the world.
    #[error("{}: {source}", path.display())]
    Runtime {
        path: PathBuf,
        #[source]
        source: RuntimeError,
    },
    /// The compile task panicked or was cancelled.
    #[error("{}: compiling stopped unexpectedly: {message}", path.display())]
    Task { path: PathBuf, message: String },
}

/// Loads every `name.toml` + `name.wasm` pair in `dir`. Failures are returned alongside the
/// plugins that loaded and never stop the others. They are returned, not logged: the caller
/// decides how to report them (`serve` logs them, `check` prints them). Each loaded plugin is
/// logged (name, events, SHA-256 prefix, whether it was compiled or cached, load time).
pub async fn load_dir(loader: &Loader, dir: &Path) -> (PluginSet, Vec<LoadError>) {
    let mut errors = Vec::new();
    let (manifests, orphans) = match scan(dir) {
        Ok(found) => found,
        Err(source) => {
            errors.push(LoadError::ReadDir {
                dir: dir.to_path_buf(),
                source,
            });
            return (PluginSet::default(), errors);
        }
    };
    for wasm in orphans {
        errors.push(LoadError::MissingManifest {
            manifest: wasm.with_extension("toml"),
            wasm,
        });
    }
    let mut plugins = Vec::new();
    // One at a time: compilation already uses every core, and loading is off the request path.
    for manifest in manifests {
        let wasm = manifest.with_extension("wasm");
        if !wasm.is_file() {
            errors.push(LoadError::MissingComponent { manifest, wasm });
            continue;
        }
        match load_pair(loader, &manifest, &wasm).await {
            Ok(plugin) => plugins.push(Arc::new(plugin)),
            Err(e) => errors.push(e),
        }
    }
    (PluginSet::new(plugins), errors)
}

/// Loads one plugin: reads and validates `manifest`, then compiles `wasm` on a blocking thread
/// (and writes a fresh compilation to the compile cache).
pub async fn load_pair(
    loader: &Loader,
    manifest: &Path,
    wasm: &Path,
) -> Result<LoadedPlugin, LoadError> {
    let (plugin, entry) = load_pair_uncached(loader, manifest, wasm).await?;
    store_in_cache(loader, entry.into_iter().collect()).await;
    Ok(plugin)
}

/// Writes fresh compilations to the compile cache on a blocking thread.
pub async fn store_in_cache(loader: &Loader, entries: Vec<CacheEntry>) {
    if entries.is_empty() {
        return;
    }
    let loader = loader.clone();
    let written = tokio::task::spawn_blocking(move || {
        for entry in entries {
            loader.store(entry);
        }
    })
    .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "writing the compile cache stopped unexpectedly");
    }
}

/// What a hot swap still owes after [`load_pair_tiered`] made the plugin.
pub enum Owed {
    /// Nothing: a relink, or a compile cache hit.
    Nothing,
    /// A fresh optimised compilation to write to the compile cache after the swap.
    CacheEntry(CacheEntry),
    /// A fast-tier build: the optimised build of these component bytes is to replace it.
    OptimisedBuild(Vec<u8>),
}

/// Loads one plugin for a hot swap: when `live` (the set being replaced) holds the same
/// component under the manifest's name, its compiled code is relinked with the new manifest;
/// else [`Loader::load_tiered`]: a compile cache hit, or a fast-tier build to show the new
/// behaviour quickly, whose optimised build is owed.
pub async fn load_pair_tiered(
    loader: &Loader,
    manifest: &Path,
    wasm: &Path,
    live: &PluginSet,
) -> Result<(LoadedPlugin, Owed), LoadError> {
    let (manifest, bytes) = read_pair(manifest, wasm).await?;
    let live = live.get(&manifest.name);
    let task_loader = loader.clone();
    let (plugin, owed) = compile_off_thread(wasm, move || {
        use sha2::Digest;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        if let Some(live) = live.filter(|p| p.sha256 == sha256) {
            return task_loader
                .relink(manifest, &live)
                .map(|plugin| (plugin, Owed::Nothing));
        }
        Ok(match task_loader.load_tiered(manifest, &bytes)? {
            Loaded::Final(plugin, entry) => (plugin, entry.map_or(Owed::Nothing, Owed::CacheEntry)),
            Loaded::Fast(plugin) => (plugin, Owed::OptimisedBuild(bytes)),
        })
    })
    .await?;
    log_loaded(&plugin);
    Ok((plugin, owed))
}

/// Like [`load_pair`], but a fresh compilation is handed back instead of being written to the
/// compile cache: the hot reload makes the plugin live first, then writes it
/// ([`store_in_cache`]).
pub async fn load_pair_uncached(
    loader: &Loader,
    manifest: &Path,
    wasm: &Path,
) -> Result<(LoadedPlugin, Option<CacheEntry>), LoadError> {
    let (manifest, bytes) = read_pair(manifest, wasm).await?;
    let task_loader = loader.clone();
    let (plugin, entry) =
        compile_off_thread(wasm, move || task_loader.load_uncached(manifest, &bytes)).await?;
    log_loaded(&plugin);
    Ok((plugin, entry))
}

/// Reads and validates a pair's manifest, then reads its component's bytes.
async fn read_pair(manifest: &Path, wasm: &Path) -> Result<(Manifest, Vec<u8>), LoadError> {
    let manifest = Manifest::load(manifest)?;
    let bytes = tokio::fs::read(wasm)
        .await
        .map_err(|source| LoadError::Read {
            path: wasm.to_path_buf(),
            source,
        })?;
    Ok((manifest, bytes))
}

/// Runs a compile (or relink) of `wasm` on a blocking thread, off the async workers; its
/// errors name the file.
async fn compile_off_thread<T: Send + 'static>(
    wasm: &Path,
    work: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LoadError::Task {
            path: wasm.to_path_buf(),
            message: e.to_string(),
        })?
        .map_err(|source| LoadError::Runtime {
            path: wasm.to_path_buf(),
            source,
        })
}

/// Logs a loaded plugin: name, events, SHA-256 prefix, how it was made and how long it took.
fn log_loaded(plugin: &LoadedPlugin) {
    let events: Vec<String> = plugin
        .manifest
        .events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.source.as_deref().unwrap_or("*"),
                e.kind.as_deref().unwrap_or("*")
            )
        })
        .collect();
    tracing::info!(
        plugin = %plugin.manifest.name,
        events = %events.join(","),
        sha256 = %plugin.sha256.get(..12).unwrap_or(&plugin.sha256),
        compiled = plugin.compiled,
        fast_tier = plugin.tier == Tier::Fast,
        load_ms = plugin.compile_time.as_millis() as u64,
        "plugin loaded"
    );
}

/// The manifests in `dir` (sorted) and the components that have no manifest.
fn scan(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut manifests = Vec::new();
    let mut components = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") if path.is_file() => manifests.push(path),
            Some("wasm") if path.is_file() => components.push(path),
            _ => {}
        }
    }
    manifests.sort();
    components.sort();
    let orphans = components
        .into_iter()
        .filter(|wasm| !wasm.with_extension("toml").is_file())
        .collect();
    Ok((manifests, orphans))
}

#[cfg(test)]
mod tests;
