//! Tiered hot swaps through `Reloader::reconcile` on a runtime with both tiers and a compile
//! cache: the fast build goes live and runs, the optimised build replaces it and is the only
//! one cached, a manifest change meanwhile is kept, and a component the fast tier cannot
//! compile goes live optimised at once.

use std::{fs, path::Path};

use super::*;
use crate::{
    ids::PluginName,
    plugins::Reloader,
    runtime::{EngineOptions, Outcome, Runtime, test_support},
};

fn put(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{file}.tmp"));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, dir.join(file)).unwrap();
}

fn manifest_text(extra: &str) -> String {
    format!("name = \"a\"\nevents = [\"*\"]\n{extra}")
}

/// A runtime with both tiers and a compile cache in `dir/cache`, and a reloader of
/// `dir/plugins` that has done its start-up load of `a` (the `OK` component).
async fn started(dir: &Path) -> (Runtime, Reloader, SharedPlugins) {
    let runtime = Runtime::with_options(
        test_support::services(dir).await,
        EngineOptions {
            pooled_instances: 8,
            compile_cache: Some(dir.join("cache")),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    assert!(runtime.loader().has_fast_tier());
    let plugins_dir = dir.join("plugins");
    fs::create_dir(&plugins_dir).unwrap();
    put(
        &plugins_dir,
        "a.wasm",
        &test_support::component(test_support::OK),
    );
    put(&plugins_dir, "a.toml", manifest_text("").as_bytes());
    let plugins = SharedPlugins::default();
    let mut reloader = Reloader::new(runtime.loader().clone(), plugins_dir, plugins.clone());
    let report = reloader.reconcile().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.fast.is_empty(),
        "the start-up load compiles optimised"
    );
    assert_eq!(live(&plugins).tier, Tier::Optimised);
    (runtime, reloader, plugins)
}

fn live(plugins: &SharedPlugins) -> Arc<LoadedPlugin> {
    plugins.current().get(&PluginName::new("a")).unwrap()
}

fn cache_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn entry_name(runtime: &Runtime, sha256: &str) -> String {
    let path = runtime.loader().cache().unwrap().entry_path(sha256);
    path.file_name().unwrap().to_string_lossy().into_owned()
}

async fn outcome(runtime: &Runtime, plugin: &LoadedPlugin) -> Outcome {
    runtime
        .invoke(plugin, &test_support::event(), &test_support::delivery())
        .await
        .outcome
}

#[tokio::test]
async fn a_new_component_runs_on_the_fast_build_until_the_optimised_one_replaces_it_and_is_the_only_one_cached()
 {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, mut reloader, plugins) = started(dir.path()).await;
    let plugins_dir = dir.path().join("plugins");

    put(
        &plugins_dir,
        "a.wasm",
        &test_support::component(test_support::FAIL_WITH_KIND),
    );
    let report = reloader.reconcile().await;
    assert_eq!(report.replaced, vec![PluginName::new("a")]);
    assert_eq!(report.fast, vec![PluginName::new("a")]);
    let fast = live(&plugins);
    let v2 = fast.sha256.clone();
    assert_eq!(fast.tier, Tier::Fast);
    assert!(
        !dir.path()
            .join("cache")
            .join(entry_name(&runtime, &v2))
            .exists(),
        "the fast build is not cached"
    );
    // The new behaviour runs at once, on the fast build.
    assert_eq!(
        outcome(&runtime, &fast).await,
        Outcome::Fail("ContactCreate".into())
    );

    reloader.upgrades_settled().await;
    let optimised = live(&plugins);
    assert_eq!(optimised.tier, Tier::Optimised);
    assert_eq!(optimised.sha256, v2);
    assert_eq!(
        outcome(&runtime, &optimised).await,
        Outcome::Fail("ContactCreate".into())
    );
    // The fast build still runs for a delivery that holds it.
    assert_eq!(fast.tier, Tier::Fast);
    assert_eq!(
        outcome(&runtime, &fast).await,
        Outcome::Fail("ContactCreate".into())
    );
    // Only the optimised build is cached (the replaced version's entry is gone).
    assert_eq!(cache_entries(dir.path()), vec![entry_name(&runtime, &v2)]);
    // Start-up compile, fast build, optimised build.
    assert_eq!(runtime.loader().compiles(), 3);

    // A restart (a fresh engine with the same settings) finds the optimised build.
    let elsewhere = tempfile::tempdir().unwrap();
    let restarted = Runtime::with_options(
        test_support::services(elsewhere.path()).await,
        EngineOptions {
            pooled_instances: 8,
            compile_cache: Some(dir.path().join("cache")),
            ..EngineOptions::default()
        },
    );
    let restarted = restarted.unwrap();
    let wasm = fs::read(plugins_dir.join("a.wasm")).unwrap();
    let loaded = restarted
        .load(test_support::manifest("a", ""), &wasm)
        .unwrap();
    assert!(!loaded.compiled);
}

#[tokio::test]
async fn a_manifest_change_while_the_optimised_build_runs_is_kept_and_compiles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, mut reloader, plugins) = started(dir.path()).await;
    let plugins_dir = dir.path().join("plugins");

    put(
        &plugins_dir,
        "a.wasm",
        &test_support::component(test_support::FAIL_WITH_KIND),
    );
    reloader.reconcile().await;
    put(
        &plugins_dir,
        "a.toml",
        manifest_text("[config]\ngeneration = \"2\"\n").as_bytes(),
    );
    let report = reloader.reconcile().await;
    assert_eq!(report.replaced, vec![PluginName::new("a")]);
    assert!(report.fast.is_empty(), "a relink, not a build");

    reloader.upgrades_settled().await;
    let optimised = live(&plugins);
    assert_eq!(optimised.tier, Tier::Optimised);
    assert_eq!(
        optimised.manifest.config.get("generation"),
        Some(&serde_json::Value::String("2".into()))
    );
    assert_eq!(
        runtime.loader().compiles(),
        3,
        "the manifest change compiled nothing"
    );
    assert_eq!(
        cache_entries(dir.path()),
        vec![entry_name(&runtime, &optimised.sha256)]
    );
}

#[tokio::test]
async fn a_version_replaced_before_its_optimised_build_lands_leaves_no_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, mut reloader, plugins) = started(dir.path()).await;
    let plugins_dir = dir.path().join("plugins");

    put(
        &plugins_dir,
        "a.wasm",
        &test_support::component(test_support::FAIL_WITH_KIND),
    );
    reloader.reconcile().await;
    put(
        &plugins_dir,
        "a.wasm",
        &test_support::component(test_support::RETRY_WITH_KEY),
    );
    reloader.reconcile().await;
    let v3 = live(&plugins).sha256.clone();
    reloader.upgrades_settled().await;
    // Whatever order the builds ran in, v3's optimised build is live and the only entry left
    // once the next reconcile cleans the cache.
    reloader.reconcile().await;
    let optimised = live(&plugins);
    assert_eq!(
        (optimised.sha256.as_str(), optimised.tier),
        (v3.as_str(), Tier::Optimised)
    );
    assert_eq!(cache_entries(dir.path()), vec![entry_name(&runtime, &v3)]);
}

#[tokio::test]
async fn a_component_the_fast_tier_cannot_compile_goes_live_optimised_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, mut reloader, plugins) = started(dir.path()).await;
    // A tail call (never taken): Winch does not support the proposal, Cranelift does.
    let tail_call = format!(
        "(if (i32.eqz (i32.const 1)) (then (return_call $recurse (i32.const 0)))) {}",
        test_support::OK
    );
    put(
        &dir.path().join("plugins"),
        "a.wasm",
        &test_support::component(&tail_call),
    );
    let report = reloader.reconcile().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.fast.is_empty());
    let plugin = live(&plugins);
    assert_eq!(plugin.tier, Tier::Optimised);
    assert_eq!(outcome(&runtime, &plugin).await, Outcome::Succeeded);
    assert_eq!(
        cache_entries(dir.path()),
        vec![entry_name(&runtime, &plugin.sha256)]
    );
}
