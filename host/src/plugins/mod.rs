//! Plugins on disk: `name.toml` manifests (validated with errors naming file, field and fix),
//! the set of loaded plugins the dispatcher and ingress consult, and hot reload of the folder
//! (`reload` brings the live set in line with the files, `watch` runs it on file-system events
//! and a periodic rescan, `upgrade` replaces a hot swap's fast build with its optimised one),
//! and `crosscheck`, which checks the names a manifest uses against the
//! host config.

pub mod crosscheck;
pub mod manifest;
pub mod registry;
pub mod reload;
pub mod upgrade;
pub mod watch;

pub use manifest::{EventPattern, Manifest, ManifestError};
pub use registry::{LoadError, PluginSet, SharedPlugins, load_dir, load_pair};
pub use reload::{Reloader, Report};
pub use watch::WatchOptions;
