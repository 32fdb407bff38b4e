//! The on-disk compile cache: compiled components, so a restart (or a hot reload back to a
//! version seen before) deserializes in microseconds instead of compiling for hundreds of
//! milliseconds (seconds for Python or JavaScript plugins).
//!
//! Invariants:
//! - Entries are named `<engine>-<sha256>.cwasm`: `<engine>` is derived from wasmtime's
//!   `Engine::precompile_compatibility_hash` (the wasmtime version and every `Config` setting that
//!   affects code), `<sha256>` is the component's own hash. An entry is only ever loaded into an
//!   engine it was compiled for, and only for the exact bytes it was compiled from.
//! - Loading an entry runs its machine code without validation (`Component::deserialize_file` is
//!   `unsafe` for that reason), so the folder must be writable by this user alone: it is created
//!   `0700`, and a folder that is not ours or that group or others may write is refused at open.
//!   Each entry is checked to be ours before it is loaded.
//! - Entries are written to a temporary name and renamed into place, so a crash never leaves a
//!   half-written entry under a real name; leftover temporary files are removed at open.
//! - The cache is an optimisation: a missing, unreadable or corrupt entry means compiling again
//!   (a corrupt one is deleted), and a failed write only costs the next start a compile.

use std::{
    ffi::OsStr,
    fs,
    hash::{Hash, Hasher},
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, component::Component};

/// File name suffix of entries.
const ENTRY_SUFFIX: &str = ".cwasm";
/// File name suffix of entries being written.
const TEMP_SUFFIX: &str = ".cwasm.tmp";

/// Why the cache folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The folder could not be created or inspected.
    #[error("compile cache {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The folder could be written by someone else, so its entries cannot be trusted.
    #[error(
        "compile cache {}: {reason}; the host runs compiled code from this folder, so only its \
         own user may write there (e.g. `chmod 700`, or set plugins.cache_dir to a private folder)",
        dir.display()
    )]
    Insecure { dir: PathBuf, reason: String },
}

/// An open compile cache folder for one engine configuration.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    /// The engine part of entry names.
    engine_key: String,
}

impl CompileCache {
    /// Opens (creating, `0700`) the cache folder `dir` for `engine`, refusing a folder others can
    /// write, and removes temporary files a crash left behind.
    pub fn open(dir: &Path, engine: &Engine) -> Result<CompileCache, CacheError> {
        let io = |source| CacheError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        create_private_dir(dir).map_err(io)?;
        check_private(dir)?;
        for entry in fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if has_suffix(&path, TEMP_SUFFIX) {
                remove(&path);
            }
        }
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: engine_key(engine),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for the component whose SHA-256 (lower-case hex) is `sha256`.
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{sha256}{ENTRY_SUFFIX}", self.engine_key))
    }

    /// The cached compilation of `sha256`, if there is a usable one. A corrupt or foreign entry
    /// is deleted (after a warning) so that it is compiled and written again.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry_path(sha256);
        let metadata = fs::symlink_metadata(&path).ok()?;
        if let Err(reason) = owned_regular_file(&metadata) {
            tracing::warn!(entry = %path.display(), reason, "compile cache entry refused; compiling again");
            remove(&path);
            return None;
        }
        // SAFETY: the entry was written by this host into a folder only its user can write
        // (checked at open; the entry itself checked just above), and its name carries the
        // engine's compatibility hash; wasmtime also checks the version and configuration
        // recorded in the artifact before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %format!("{e:#}"),
                    "compile cache entry unusable; deleting it and compiling again");
                remove(&path);
                None
            }
        }
    }

    /// Writes `component`'s compilation as the entry for `sha256`: a temporary file (`0600`),
    /// synced, then renamed into place. Failures are logged: the cache only saves time.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.entry_path(sha256);
        // Unique per writer, so two writers of one entry never share a temporary file.
        let tmp = self.dir.join(format!(
            "{}-{sha256}.{:016x}{TEMP_SUFFIX}",
            self.engine_key,
            rand::random::<u64>()
        ));
        if let Err(e) = write_entry(&tmp, &path, component) {
            tracing::warn!(entry = %path.display(), error = %e,
                "cannot write the compile cache entry; the next start compiles this plugin again");
        }
    }

    /// Deletes every entry that is not for this engine or whose component is not in `live`
    /// (SHA-256 hex of the plugins loaded now). Returns how many were deleted.
    pub fn retain(&self, live: &std::collections::HashSet<String>) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let prefix = format!("{}-", self.engine_key);
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(OsStr::to_str) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(ENTRY_SUFFIX) else {
                continue;
            };
            let keep = stem
                .strip_prefix(&prefix)
                .is_some_and(|sha| live.contains(sha));
            if !keep && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %self.dir.display(), "stale compile cache entries deleted");
        }
        removed
    }
}

/// Serializes `component` into `tmp`, syncs it and renames it to `path`.
fn write_entry(tmp: &Path, path: &Path, component: &Component) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let written = (|| {
        let mut file = private_file(tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(tmp, path)
    })();
    if written.is_err() {
        remove(tmp);
    }
    written.map_err(|e| e.to_string())
}

/// 16 hex digits of SHA-256 over wasmtime's compatibility hash: stable across processes (unlike
/// `DefaultHasher`, whose algorithm may change between Rust releases).
fn engine_key(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            let digest = self.0.clone().finalize();
            u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.ends_with(suffix))
}

fn remove(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot delete a compile cache file");
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Parents are created like any folder; the cache folder itself is private.
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(unix)]
fn check_private(dir: &Path) -> Result<(), CacheError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let insecure = |reason: String| CacheError::Insecure {
        dir: dir.to_path_buf(),
        reason,
    };
    let metadata = fs::symlink_metadata(dir).map_err(|source| CacheError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(insecure(
            "it is not a folder (or it is a symbolic link)".into(),
        ));
    }
    let me = current_uid();
    if metadata.uid() != me {
        return Err(insecure(format!(
            "it belongs to user id {}, not to this process's user id {me}",
            metadata.uid()
        )));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "its mode is {mode:03o}: group or others may write to it"
        )));
    }
    Ok(())
}

#[cfg(unix)]
fn owned_regular_file(metadata: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    if metadata.uid() != current_uid() {
        return Err(format!("owned by user id {}", metadata.uid()));
    }
    if metadata.permissions().mode() & 0o022 != 0 {
        return Err("writable by group or others".into());
    }
    Ok(())
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(not(unix))]
compile_error!("the compile cache's permission checks are written for Unix");

#[cfg(test)]
mod tests;
