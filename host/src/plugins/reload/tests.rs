//! Reconciling the live set with the folder: add, replace, keep the working version over a
//! broken one (reported once), remove, and clean the compile cache.

use std::fs;

use super::*;
use crate::runtime::test_support::{self, FAIL_WITH_KIND, OK};

fn manifest_text(name: &str, extra: &str) -> String {
    format!("name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\n{extra}")
}

/// Writes `bytes` to `dir/file` through a temporary file and a rename, as an installer would.
fn put(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{file}.tmp"));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, dir.join(file)).unwrap();
}

fn reloader(dir: &Path) -> (Reloader, SharedPlugins) {
    let plugins = SharedPlugins::default();
    let reloader = Reloader::new(
        Loader::standalone().unwrap(),
        dir.to_path_buf(),
        plugins.clone(),
    );
    (reloader, plugins)
}

fn sha_of(plugins: &SharedPlugins, name: &str) -> Option<String> {
    plugins
        .current()
        .get(&PluginName::new(name))
        .map(|p| p.sha256.clone())
}

#[tokio::test]
async fn pairs_come_go_and_are_replaced_while_broken_files_never_replace_a_working_version() {
    let dir = tempfile::tempdir().unwrap();
    let (mut reloader, plugins) = reloader(dir.path());
    put(dir.path(), "a.wasm", &test_support::component(OK));
    put(dir.path(), "a.toml", manifest_text("a", "").as_bytes());

    let report = reloader.reconcile().await;
    assert_eq!(report.added, vec![PluginName::new("a")]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let v1 = sha_of(&plugins, "a").unwrap();
    let running = plugins.current().get(&PluginName::new("a")).unwrap();

    // Nothing changed: nothing reloads.
    let report = reloader.reconcile().await;
    assert!(!report.changed() && report.problems.is_empty());

    // A new component: swapped in; a delivery holding the old one keeps it.
    put(
        dir.path(),
        "a.wasm",
        &test_support::component(FAIL_WITH_KIND),
    );
    let report = reloader.reconcile().await;
    assert_eq!(report.replaced, vec![PluginName::new("a")]);
    let v2 = sha_of(&plugins, "a").unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        running.sha256, v1,
        "the running delivery's version is untouched"
    );

    // A half-written component: reported with the file, v2 stays; reported once.
    let half = test_support::component(OK);
    put(dir.path(), "a.wasm", &half[..half.len() / 2]);
    let report = reloader.reconcile().await;
    assert!(!report.changed());
    let message = report.problems[0].to_string();
    assert!(message.contains("a.wasm"), "{message}");
    assert_eq!(sha_of(&plugins, "a").unwrap(), v2);
    assert!(
        reloader.reconcile().await.problems.is_empty(),
        "not reported again"
    );

    // A broken manifest next to a good component: reported with the field, v2 stays.
    put(dir.path(), "a.wasm", &test_support::component(OK));
    put(
        dir.path(),
        "a.toml",
        manifest_text("a", "timeout = \"soon\"\n").as_bytes(),
    );
    let report = reloader.reconcile().await;
    assert!(!report.changed());
    let message = report.problems[0].to_string();
    assert!(
        message.contains("a.toml") && message.contains("timeout"),
        "{message}"
    );
    assert_eq!(sha_of(&plugins, "a").unwrap(), v2);

    // Fixed: the good pair takes over.
    put(dir.path(), "a.toml", manifest_text("a", "").as_bytes());
    let report = reloader.reconcile().await;
    assert_eq!(report.replaced, vec![PluginName::new("a")]);
    assert_eq!(sha_of(&plugins, "a").unwrap(), v1);

    // Deleted: it stops receiving.
    fs::remove_file(dir.path().join("a.wasm")).unwrap();
    fs::remove_file(dir.path().join("a.toml")).unwrap();
    let report = reloader.reconcile().await;
    assert_eq!(report.removed, vec![PluginName::new("a")]);
    assert!(plugins.current().is_empty());
    assert!(
        plugins
            .current()
            .subscribers("highlevel", "ContactCreate")
            .is_empty()
    );
}

#[tokio::test]
async fn a_lone_half_of_a_pair_is_reported_once_and_a_lost_file_removes_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let (mut reloader, plugins) = reloader(dir.path());
    put(dir.path(), "b.wasm", &test_support::component(OK));
    let report = reloader.reconcile().await;
    assert!(matches!(
        report.problems.as_slice(),
        [LoadError::MissingManifest { .. }]
    ));
    assert!(reloader.reconcile().await.problems.is_empty());

    put(dir.path(), "b.toml", manifest_text("b", "").as_bytes());
    assert_eq!(reloader.reconcile().await.added, vec![PluginName::new("b")]);

    fs::remove_file(dir.path().join("b.wasm")).unwrap();
    let report = reloader.reconcile().await;
    assert_eq!(report.removed, vec![PluginName::new("b")]);
    assert!(matches!(
        report.problems.as_slice(),
        [LoadError::MissingComponent { .. }]
    ));
    assert!(plugins.current().is_empty());
}

#[tokio::test]
async fn a_missing_folder_keeps_what_runs_and_is_reported_once() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("plugins");
    fs::create_dir(&dir).unwrap();
    let (mut reloader, plugins) = reloader(&dir);
    put(&dir, "c.wasm", &test_support::component(OK));
    put(&dir, "c.toml", manifest_text("c", "").as_bytes());
    reloader.reconcile().await;

    fs::rename(&dir, parent.path().join("moved")).unwrap();
    let report = reloader.reconcile().await;
    assert!(matches!(
        report.problems.as_slice(),
        [LoadError::ReadDir { .. }]
    ));
    assert_eq!(plugins.current().len(), 1, "c keeps running");
    assert!(reloader.reconcile().await.problems.is_empty());
}

#[tokio::test]
async fn entries_of_versions_no_longer_loaded_leave_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let plugins_dir = dir.path().join("plugins");
    let cache_dir = dir.path().join("cache");
    fs::create_dir(&plugins_dir).unwrap();
    let loader = Loader::new(
        crate::runtime::Loader::standalone()
            .unwrap()
            .engine()
            .clone(),
        Some(&cache_dir),
    )
    .unwrap();
    let plugins = SharedPlugins::default();
    let mut reloader = Reloader::new(loader.clone(), plugins_dir.clone(), plugins.clone());
    put(&plugins_dir, "d.wasm", &test_support::component(OK));
    put(&plugins_dir, "d.toml", manifest_text("d", "").as_bytes());
    reloader.reconcile().await;
    let v1 = loader
        .cache()
        .unwrap()
        .entry_path(&sha_of(&plugins, "d").unwrap());
    assert!(v1.is_file());

    put(
        &plugins_dir,
        "d.wasm",
        &test_support::component(FAIL_WITH_KIND),
    );
    reloader.reconcile().await;
    let v2 = loader
        .cache()
        .unwrap()
        .entry_path(&sha_of(&plugins, "d").unwrap());
    assert!(v2.is_file());
    assert!(!v1.exists(), "the replaced version's entry is deleted");
    assert_eq!(loader.compiles(), 2);
}
