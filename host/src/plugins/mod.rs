//! Plugins on disk: `name.toml` manifests (validated with errors naming file, field and fix)
//! and the set of loaded plugins the dispatcher and ingress consult.

pub mod manifest;
pub mod registry;

pub use manifest::{EventPattern, Manifest, ManifestError};
pub use registry::{LoadError, PluginSet, SharedPlugins, load_dir, load_pair};
