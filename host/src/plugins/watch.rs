//! Hot reload: watches the plugin folder (inotify through `notify`) and reconciles the live set
//! after a burst of changes has been quiet for `debounce`, plus a periodic rescan that catches
//! whatever events cannot (a network file system, a lost watch, a folder deleted and re-created).
//!
//! Invariants: events only mark the folder dirty (a `Notify` permit), so none is lost while a
//! reconcile runs and a burst costs one reconcile; only events that can change a pair count
//! (writes, creations, renames, deletions of `.wasm` / `.toml` files; not the reconcile's own
//! reads, not temporary files); a burst that never goes quiet is reconciled after
//! [`MAX_DEBOUNCE_ROUNDS`] debounce periods anyway. Problems are reported through
//! `alerts::raise` (a lone half of a pair, usually a copy in progress, only as a warning).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use notify::{
    EventKind, RecommendedWatcher, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode},
};
use tokio::sync::{Notify, watch};

use super::{LoadError, reload::Reloader};
use crate::alerts::{self, AlertKind};

/// How the folder is watched.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// React to file-system events (else only the periodic rescan reloads).
    pub events: bool,
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// How often the folder is rescanned regardless of events.
    pub rescan: Duration,
}

/// A burst of events delays its reconcile by at most this many debounce periods.
const MAX_DEBOUNCE_ROUNDS: u32 = 40;

/// Keeps the live set in line with the folder until `stop` turns true.
pub async fn run(mut reloader: Reloader, options: WatchOptions, mut stop: watch::Receiver<bool>) {
    let dirty = Arc::new(Notify::new());
    let mut watcher = options
        .events
        .then(|| start_watcher(reloader.dir(), dirty.clone()))
        .flatten();
    // Whatever changed between the caller's last reconcile and the watch starting produced no
    // event this watcher saw: reconcile once now rather than at the first rescan.
    if watcher.is_some() {
        dirty.notify_one();
    }
    let mut rescan =
        tokio::time::interval_at(tokio::time::Instant::now() + options.rescan, options.rescan);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = dirty.notified() => {
                if !quiet(&dirty, options.debounce, &mut stop).await {
                    return;
                }
            }
            _ = rescan.tick() => {
                // The folder may have appeared since the watch failed.
                if options.events && watcher.is_none() {
                    watcher = start_watcher(reloader.dir(), dirty.clone());
                }
            }
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let report = reloader.reconcile().await;
        for problem in &report.problems {
            announce(problem);
        }
        if report.changed() {
            tracing::debug!(
                added = report.added.len(),
                replaced = report.replaced.len(),
                removed = report.removed.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "plugin folder reloaded"
            );
        }
    }
}

/// Reports a load problem: a lone half of a pair is usually a copy in progress (a warning); any
/// other is an alert, since a working version stays live and someone must fix the files.
pub fn announce(problem: &LoadError) {
    match problem {
        LoadError::MissingComponent { .. } | LoadError::MissingManifest { .. } => {
            tracing::warn!(problem = %problem, "plugin incomplete; waiting for the other file");
        }
        _ => alerts::raise(
            AlertKind::PluginLoad,
            "plugin not loaded",
            &problem.to_string(),
        ),
    }
}

/// Waits until no event arrived for `debounce` (bounded); false if asked to stop meanwhile.
async fn quiet(dirty: &Notify, debounce: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    for _ in 0..MAX_DEBOUNCE_ROUNDS {
        tokio::select! {
            () = dirty.notified() => continue,
            () = tokio::time::sleep(debounce) => return true,
            _ = stop.changed() => return false,
        }
    }
    true
}

/// Watches `dir` (not recursively); `None` (with a warning) if the watch cannot be set up, in
/// which case the periodic rescan still reloads.
fn start_watcher(dir: &Path, dirty: Arc<Notify>) -> Option<RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if relevant(&event) => dirty.notify_one(),
        Ok(_) => {}
        // e.g. the kernel's event queue overflowed: rescan to be sure.
        Err(e) => {
            tracing::debug!(error = %e, "plugin folder watch error; reloading to be sure");
            dirty.notify_one();
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e,
                "cannot watch the plugin folder; changes are picked up by the periodic rescan only");
            None
        }
    }
}

/// Whether `event` can change a plugin pair.
fn relevant(event: &notify::Event) -> bool {
    let content_changed = match event.kind {
        // Opening and reading (the reconcile's own reads among them) change nothing; closing a
        // file that was written finishes a write.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    content_changed
        && event.paths.iter().any(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("wasm" | "toml")
            )
        })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use notify::event::{CreateKind, ModifyKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn writes_renames_and_deletions_of_pairs_count() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(notify::event::RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(relevant(&event(kind, "/p/tagger.wasm")), "{kind:?}");
            assert!(relevant(&event(kind, "/p/tagger.toml")), "{kind:?}");
        }
    }

    #[test]
    fn reads_and_other_files_do_not() {
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert!(!relevant(&event(kind, "/p/tagger.wasm")), "{kind:?}");
        }
        let write = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert!(!relevant(&event(write, "/p/tagger.wasm.tmp")));
        assert!(!relevant(&event(write, "/p/README.md")));
    }
}
