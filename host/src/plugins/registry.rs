//! The loaded plugins. Swapped as a whole (an `Arc` snapshot), so a running delivery keeps the
//! version it started with while new deliveries see the new set.

use std::{collections::BTreeMap, sync::Arc};

use crate::{ids::PluginName, runtime::LoadedPlugin, store::NewDelivery};

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
}

// Integration stub, replaced by the runtime branch.
/// Load.
pub async fn load_dir(
    _rt: &crate::runtime::Runtime,
    _dir: &std::path::Path,
) -> (PluginSet, Vec<String>) {
    (PluginSet::default(), vec![])
}
