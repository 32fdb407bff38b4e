//! The compile cache: private folder, atomic entries keyed by engine and component hash, a warm
//! loader compiles nothing, corrupt and stale entries go away.

use std::{collections::HashSet, os::unix::fs::PermissionsExt};

use super::*;
use crate::runtime::{
    Loader,
    engine::{self, EngineOptions},
    test_support::{self, OK},
};

fn engine() -> Engine {
    engine::build(&EngineOptions {
        pooling: false,
        ..EngineOptions::default()
    })
    .unwrap()
    .0
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_folder_is_created_private_and_a_shared_one_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data/compile-cache");
    CompileCache::open(&dir, &engine()).unwrap();
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
    let err = CompileCache::open(&dir, &engine()).unwrap_err().to_string();
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("770") && err.contains("chmod 700"), "{err}");

    let file = parent.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let err = CompileCache::open(&file, &engine())
        .unwrap_err()
        .to_string();
    assert!(err.contains("compile cache"), "{err}");
}

#[test]
fn a_second_loader_on_the_same_folder_compiles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let wasm = test_support::component(OK);

    let cold = Loader::new(engine(), Some(&cache_dir)).unwrap();
    let first = cold.load(test_support::manifest("a", ""), &wasm).unwrap();
    assert!(first.compiled);
    assert_eq!(cold.compiles(), 1);
    let names = entries(&cache_dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].ends_with(&format!("-{}.cwasm", first.sha256)),
        "{names:?}"
    );

    // Another engine with the same settings: a restart.
    let warm = Loader::new(engine(), Some(&cache_dir)).unwrap();
    let again = warm.load(test_support::manifest("a", ""), &wasm).unwrap();
    assert!(!again.compiled);
    assert_eq!(warm.compiles(), 0);
    assert_eq!(again.sha256, first.sha256);
}

#[test]
fn a_corrupt_entry_is_replaced_by_a_fresh_compile() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = test_support::component(OK);
    let loader = Loader::new(engine(), Some(dir.path())).unwrap();
    let plugin = loader.load(test_support::manifest("a", ""), &wasm).unwrap();
    let entry = loader.cache().unwrap().entry_path(&plugin.sha256);
    fs::write(&entry, b"not a compiled component").unwrap();

    let reloaded = Loader::new(engine(), Some(dir.path())).unwrap();
    let plugin = reloaded
        .load(test_support::manifest("a", ""), &wasm)
        .unwrap();
    assert!(plugin.compiled, "the corrupt entry was not used");
    // Rewritten: the next start is warm again.
    let warm = Loader::new(engine(), Some(dir.path())).unwrap();
    assert!(
        !warm
            .load(test_support::manifest("a", ""), &wasm)
            .unwrap()
            .compiled
    );
}

#[test]
fn a_refused_component_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let loader = Loader::new(engine(), Some(dir.path())).unwrap();
    let wasi_http = test_support::component_importing(
        r#"(import "wasi:http/outgoing-handler@0.2.0" (instance))"#,
        OK,
    );
    assert!(
        loader
            .load(test_support::manifest("a", ""), &wasi_http)
            .is_err()
    );
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn stale_entries_and_leftover_temporary_files_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let loader = Loader::new(engine(), Some(dir.path())).unwrap();
    let kept = loader
        .load(
            test_support::manifest("a", ""),
            &test_support::component(OK),
        )
        .unwrap();
    let dropped = loader
        .load(
            test_support::manifest("b", ""),
            &test_support::component(test_support::FAIL_WITH_KIND),
        )
        .unwrap();
    let other_engine = dir
        .path()
        .join(format!("0123456789abcdef-{}.cwasm", kept.sha256));
    fs::write(&other_engine, b"from another wasmtime").unwrap();
    fs::write(dir.path().join("x.00ff.cwasm.tmp"), b"half").unwrap();
    fs::write(dir.path().join("README"), b"not ours to delete").unwrap();

    let cache = CompileCache::open(dir.path(), loader.engine()).unwrap();
    assert!(!entries(dir.path()).iter().any(|n| n.ends_with(".tmp")));
    let removed = cache.retain(&HashSet::from([kept.sha256.clone()]));
    assert_eq!(removed, 2, "the other engine's entry and b's");
    let kept_entry = cache.entry_path(&kept.sha256);
    let kept_name = kept_entry.file_name().unwrap().to_string_lossy();
    let mut expected = vec!["README".to_string(), kept_name.into_owned()];
    expected.sort();
    assert_eq!(entries(dir.path()), expected);
    assert!(!cache.entry_path(&dropped.sha256).exists());
}

#[test]
fn the_engine_key_is_stable_and_follows_the_settings() {
    assert_eq!(engine_key(&engine()), engine_key(&engine()));
    // Without epoch interruption the generated code differs: a different key.
    let other = Engine::new(&wasmtime::Config::new()).unwrap();
    assert_ne!(engine_key(&engine()), engine_key(&other));
}

#[test]
fn a_deferred_entry_is_written_only_when_stored() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cache");
    let loader = Loader::new(engine(), Some(&dir)).unwrap();
    let wasm = test_support::component(OK);

    let (plugin, entry) = loader
        .load_uncached(test_support::manifest("p", ""), &wasm)
        .unwrap();
    assert!(plugin.compiled);
    let entry = entry.expect("a fresh compilation is handed back");
    assert_eq!(entry.sha256(), plugin.sha256);
    assert!(entries(&dir).is_empty(), "nothing written before `store`");

    loader.store(entry);
    assert_eq!(entries(&dir).len(), 1);
    let (again, entry) = loader
        .load_uncached(test_support::manifest("p", ""), &wasm)
        .unwrap();
    assert!(!again.compiled, "the stored entry serves the next load");
    assert!(entry.is_none(), "a cache hit has nothing to write");
    assert_eq!(loader.compiles(), 1);
}
