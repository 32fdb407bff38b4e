//! Hot swap benchmark: how long after a plugin's files land in the watched plugin folder its new
//! version is live (the `SharedPlugins` snapshot every new delivery reads holds it), through the
//! production path: the `notify` watcher, the debounce, `Reloader::reconcile`, the compile cache.
//!
//! Two kinds of swap of the trivial Rust test plugin (`tests/plugins/hostile`, mode `ok`):
//! - a new component (a rebuilt variant: new bytes, so it is compiled, swapped in, then cached),
//!   split into the load the host timed and the rest (event, debounce, reading, swap);
//! - a manifest-only change (same component: loaded from the compile cache and relinked);
//!
//! next to a bare `Loader::load` of the same bytes, the compile the swap cannot avoid.
//!
//! Run: `cargo run --release -p wasmhook-benches --bin reload` (`--quick`: three swaps of each
//! kind, what CI runs so the benchmark keeps compiling and working).

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use wasmhook::{
    api::ApiClient,
    config::StoreUrl,
    ids::PluginName,
    plugins::{Manifest, Reloader, SharedPlugins, WatchOptions, watch},
    runtime::{EngineOptions, Runtime, Services},
    store::AnyStore,
};
use wasmhook_tests::plugins::{install, rust_plugin, variant};

const NAME: &str = "trivial";

fn manifest(generation: usize) -> String {
    format!(
        "name = \"{NAME}\"\nevents = [\"highlevel:ContactCreate\"]\n\n\
         [config]\nmode = \"ok\"\ngeneration = \"{generation}\"\n"
    )
}

/// Waits until the live `trivial` satisfies `live`; returns how long that took from `landed`.
async fn visible(
    plugins: &SharedPlugins,
    landed: Instant,
    live: impl Fn(&wasmhook::runtime::LoadedPlugin) -> bool,
) -> anyhow::Result<Duration> {
    loop {
        if plugins
            .current()
            .get(&PluginName::new(NAME))
            .is_some_and(|p| live(&p))
        {
            return Ok(landed.elapsed());
        }
        anyhow::ensure!(
            landed.elapsed() < Duration::from_secs(30),
            "the swap never became visible"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn summary(name: &str, mut figures: Vec<Duration>) {
    figures.sort();
    let p50 = figures[figures.len() / 2];
    let max = figures[figures.len() - 1];
    println!(
        "{name:<34} n={:<3} p50 {:>7.1} ms   max {:>7.1} ms",
        figures.len(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 15 };
    let dir = tempfile::tempdir()?;
    let built = rust_plugin("hostile");
    let size = std::fs::metadata(&built)?.len();

    let store = AnyStore::open(&StoreUrl::Sqlite(dir.path().join("store.db"))).await?;
    let runtime = Runtime::with_options(
        Services {
            store,
            api: ApiClient::new(&BTreeMap::new())?,
        },
        EngineOptions {
            compile_cache: Some(dir.path().join("compile-cache")),
            ..EngineOptions::default()
        },
    )?;
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    let plugins = SharedPlugins::default();
    let reloader = Reloader::new(
        runtime.loader().clone(),
        plugins_dir.clone(),
        plugins.clone(),
    );
    let options = WatchOptions {
        events: true,
        debounce: Duration::from_millis(25),
        rescan: Duration::from_secs(30),
    };
    println!(
        "hot swap of the trivial Rust plugin ({size} bytes), debounce {:?}{}",
        options.debounce,
        if quick { " (--quick)" } else { "" }
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch::run(reloader, options, stopped));

    // Generation 0 goes live first.
    let variants = dir.path().join("variants");
    std::fs::create_dir_all(&variants)?;
    let wasm = |generation: usize| -> anyhow::Result<(std::path::PathBuf, String)> {
        let path = variant(
            &built,
            &generation.to_string(),
            &variants.join(format!("{generation}.wasm")),
        );
        let sha = wasmhook_sha(&path)?;
        Ok((path, sha))
    };
    let (first, first_sha) = wasm(0)?;
    install(&plugins_dir, &first, NAME, &manifest(0));
    visible(&plugins, Instant::now(), |p| p.sha256 == first_sha).await?;

    let mut compiled = Vec::new();
    let mut relinked = Vec::new();
    let mut bare = Vec::new();
    let mut loads = Vec::new();
    let mut around = Vec::new();
    for generation in 1..=rounds {
        let (path, sha) = wasm(generation)?;
        // The compile alone, for comparison (same engine, no cache).
        let bytes = std::fs::read(&path)?;
        let manifest_path = variants.join(format!("{NAME}.toml"));
        std::fs::write(&manifest_path, manifest(generation))?;
        let started = Instant::now();
        let standalone = wasmhook::runtime::Loader::standalone()?;
        standalone.load(Manifest::load(&manifest_path)?, &bytes)?;
        bare.push(started.elapsed());

        install(&plugins_dir, &path, NAME, &manifest(generation));
        let landed = Instant::now();
        let took = visible(&plugins, landed, |p| p.sha256 == sha).await?;
        compiled.push(took);
        // Split the swap: the load itself (compile + checks + pre-instantiation, as the host
        // timed it) and everything around it (the event, the debounce, reading the files, the
        // swap).
        let load = plugins
            .current()
            .get(&PluginName::new(NAME))
            .map_or(Duration::ZERO, |p| p.compile_time);
        loads.push(load);
        around.push(took.saturating_sub(load));
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Same component, new manifest: the compile cache serves it.
        let marker = format!("{generation}b");
        install(
            &plugins_dir,
            &path,
            NAME,
            &manifest(generation).replace(
                &format!("generation = \"{generation}\""),
                &format!("generation = \"{marker}\""),
            ),
        );
        let landed = Instant::now();
        relinked.push(
            visible(&plugins, landed, |p| {
                p.manifest.config.get("generation").and_then(|v| v.as_str()) == Some(&marker)
            })
            .await?,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    watcher.await?;

    summary("new component (compile, swap)", compiled);
    summary("  of which the load (compile + link)", loads);
    summary("  of which event, debounce, swap", around);
    summary("manifest only (cache hit + relink)", relinked);
    summary("baseline: bare compile + link", bare);
    println!("target: visible <= 200 ms after the file lands (release build)");
    Ok(())
}

/// SHA-256 of a file, lower-case hex, as the host computes it.
fn wasmhook_sha(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    Ok(hex::encode(sha2::Sha256::digest(std::fs::read(path)?)))
}
