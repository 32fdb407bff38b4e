//! Hot swap benchmark: how long after a plugin's files land in the watched plugin folder its new
//! version is live (the `SharedPlugins` snapshot every new delivery reads holds it), through the
//! production path: the `notify` watcher, the debounce, `Reloader::reconcile`, the compile cache.
//!
//! Two subjects: the trivial Rust plugin (`tests/plugins/trivial`: it parses the event and
//! returns ok), and the hostile test plugin in mode `ok` (`tests/plugins/hostile`, several times
//! larger: it carries every misbehaviour of the sandbox tests). Two kinds of swap of each:
//! - a new component (a rebuilt variant: new bytes, so it is compiled): it goes live on the fast
//!   tier (Winch), split into the load the host timed and the rest (event, debounce, reading,
//!   swap); then the optimised (Cranelift) build replaces it in the background and is cached;
//! - a manifest-only change (same component: the live compiled code relinked);
//!
//! next to bare loads of the same bytes on each tier (`Loader::load` on the main engine,
//! `Loader::load_tiered` on a runtime without a cache), the compiles a swap cannot avoid, and the
//! invocation cost of the fast build against the optimised one (fresh instance + `handle` on one
//! thread, what a delivery pays while the fast build is live).
//!
//! Run: `cargo run --release -p wasmhook-benches --bin reload` (`--quick`: three swaps of each
//! kind, what CI runs so the benchmark keeps compiling and working).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use wasmhook::{
    api::ApiClient,
    config::StoreUrl,
    ids::{DeliveryId, EventId, PluginName, SourceName, TenantId},
    plugins::{Manifest, Reloader, SharedPlugins, WatchOptions, watch},
    runtime::{
        DeliveryInfo, EngineOptions, Loaded, LoadedPlugin, Outcome, Runtime, Services, Tier,
    },
    store::{AnyStore, StoredEvent},
};
use wasmhook_tests::plugins::{install, rust_plugin, variant};

/// The plugin's name in the watched folder.
const NAME: &str = "swapped";

fn manifest(generation: usize) -> String {
    format!(
        "name = \"{NAME}\"\nevents = [\"highlevel:ContactCreate\"]\n\n\
         [config]\nmode = \"ok\"\ngeneration = \"{generation}\"\n"
    )
}

/// Waits until the live plugin satisfies `live`; returns it and how long that took from
/// `landed`.
async fn visible(
    plugins: &SharedPlugins,
    landed: Instant,
    live: impl Fn(&LoadedPlugin) -> bool,
) -> anyhow::Result<(Duration, Arc<LoadedPlugin>)> {
    loop {
        if let Some(plugin) = plugins
            .current()
            .get(&PluginName::new(NAME))
            .filter(|p| live(p.as_ref()))
        {
            return Ok((landed.elapsed(), plugin));
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
    for (subject, about) in [
        ("trivial", "the trivial Rust plugin (tests/plugins/trivial)"),
        (
            "hostile",
            "the hostile test plugin, mode `ok` (tests/plugins/hostile)",
        ),
    ] {
        swaps(subject, about, quick).await?;
        println!();
    }
    println!("target: visible <= 200 ms after the file lands (release build)");
    Ok(())
}

/// Measures the swaps of the Rust test plugin `subject` and prints them.
async fn swaps(subject: &str, about: &str, quick: bool) -> anyhow::Result<()> {
    let rounds = if quick { 3 } else { 15 };
    let dir = tempfile::tempdir()?;
    let built = rust_plugin(subject);
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
        "hot swap of {about} ({size} bytes), debounce {:?}{}",
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

    // The fast tier alone, for comparison: a runtime without a compile cache.
    let uncached = Runtime::with_options(
        Services {
            store: AnyStore::open(&StoreUrl::Sqlite(dir.path().join("bare.db"))).await?,
            api: ApiClient::new(&BTreeMap::new())?,
        },
        EngineOptions {
            pooled_instances: 4,
            ..EngineOptions::default()
        },
    )?;
    let mut compiled = Vec::new();
    let mut relinked = Vec::new();
    let mut bare = Vec::new();
    let mut bare_fast = Vec::new();
    let mut loads = Vec::new();
    let mut around = Vec::new();
    let mut upgraded = Vec::new();
    let mut optimised_loads = Vec::new();
    let (mut last_fast, mut last_optimised) = (None, None);
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
        let started = Instant::now();
        let fast = uncached
            .loader()
            .load_tiered(Manifest::load(&manifest_path)?, &bytes)?;
        bare_fast.push(started.elapsed());
        anyhow::ensure!(
            matches!(fast, Loaded::Fast(_)),
            "the fast tier did not compile the plugin"
        );

        install(&plugins_dir, &path, NAME, &manifest(generation));
        let landed = Instant::now();
        let (took, live) = visible(&plugins, landed, |p| p.sha256 == sha).await?;
        compiled.push(took);
        // Split the swap: the load itself (compile + checks + pre-instantiation, as the host
        // timed it) and everything around it (the event, the debounce, reading the files, the
        // swap).
        loads.push(live.compile_time);
        around.push(took.saturating_sub(live.compile_time));
        anyhow::ensure!(
            live.tier == Tier::Fast,
            "the swap did not go live on the fast tier"
        );
        last_fast = Some(live);
        // The optimised build replaces it; the next step waits for it, so that it does not
        // share the cores with that build.
        let (took, live) = visible(&plugins, landed, |p| {
            p.sha256 == sha && p.tier == Tier::Optimised
        })
        .await?;
        upgraded.push(took);
        optimised_loads.push(live.compile_time);
        last_optimised = Some(live);
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
            .await?
            .0,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    watcher.await?;

    summary("new component visible (fast tier)", compiled);
    summary("  of which the load (Winch + link)", loads);
    summary("  of which event, debounce, swap", around);
    summary("optimised build live (after landing)", upgraded);
    summary("  its build (Cranelift + link)", optimised_loads);
    summary("manifest only (relink the live code)", relinked);
    summary("baseline: bare Cranelift compile+link", bare);
    summary("baseline: bare Winch compile + link", bare_fast);

    // What a delivery pays on each build: fresh instance + `handle` + drop, one thread.
    let (fast, optimised) = (
        last_fast.expect("a fast build"),
        last_optimised.expect("an optimised build"),
    );
    let calls = if quick { 200 } else { 5_000 };
    for (label, plugin) in [
        ("invoke, optimised build", &optimised),
        ("invoke, fast build", &fast),
    ] {
        invoke(&runtime, plugin, calls / 10).await?;
        let mut figures = invoke(&runtime, plugin, calls).await?;
        figures.sort();
        println!(
            "{label:<34} n={:<5} p50 {:>7.1} µs   p99 {:>7.1} µs",
            figures.len(),
            figures[figures.len() / 2].as_secs_f64() * 1e6,
            figures[figures.len() * 99 / 100].as_secs_f64() * 1e6
        );
    }
    Ok(())
}

/// `calls` deliveries of one event to `plugin`, one after another; each one's latency.
async fn invoke(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    calls: usize,
) -> anyhow::Result<Vec<Duration>> {
    let event = StoredEvent {
        source: SourceName::new("highlevel"),
        id: EventId::new("evt-1"),
        kind: "ContactCreate".into(),
        tenant: TenantId::new("loc-1"),
        received_at_ms: wasmhook::ids::now_ms(),
        payload: br#"{"type":"ContactCreate","locationId":"loc-1","id":"c-1"}"#.to_vec(),
    };
    let mut figures = Vec::with_capacity(calls);
    for _ in 0..calls {
        let id = DeliveryId::generate();
        let delivery = DeliveryInfo {
            idempotency_key: id.as_str().to_string(),
            id,
            attempt: 1,
        };
        let started = Instant::now();
        let outcome = runtime.invoke(plugin, &event, &delivery).await.outcome;
        figures.push(started.elapsed());
        anyhow::ensure!(outcome == Outcome::Succeeded, "the call ended {outcome:?}");
    }
    Ok(figures)
}

/// SHA-256 of a file, lower-case hex, as the host computes it.
fn wasmhook_sha(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    Ok(hex::encode(sha2::Sha256::digest(std::fs::read(path)?)))
}
