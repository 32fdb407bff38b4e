//! Invocation benchmark: a fresh instance + `handle` + drop through wasmhook's real runtime
//! (`Runtime::invoke`, production engine settings: pooling with keep-resident slots, epoch
//! deadlines, memory limiter, log capture), per plugin:
//! - the trivial Rust test plugin (`tests/plugins/hostile`, mode `ok`: it reads its config and
//!   returns `ok`);
//! - the example plugins on their fixture events, each making its real API calls to a fake API
//!   on loopback: contact-tagger and pipeline-sync (Rust), sms-router (Python), won-followup
//!   (JavaScript, which also claims the deal in kv, a SQLite write).
//!
//! Every plugin is built from source. Each call must end `Succeeded` (a failed call stops the
//! benchmark with its outcome). Figures: p50/p99 on 1 thread, calls/s on 1 and 2 threads (as
//! many concurrent invocation loops on a 2-worker tokio runtime).
//!
//! Baseline, in the same process on the runtime's own `Engine` (so the same engine settings):
//! bare wasmtime `instantiate_async` + `call_async` + drop of an empty component (one core
//! function, no imports, no memory) written in WAT. `ratio` = plugin p50 / baseline p50
//! (how many bare calls one plugin call costs) and plugin calls/s / baseline calls/s.
//!
//! Profile: where a trivial invocation's time goes (callgrind instructions, which stay the same
//! under shared load: `INVOKE_ONLY=trivial valgrind --tool=callgrind
//! --toggle-collect='invoke::measure::*' target/release/invoke --quick`, minus the same run with
//! `INVOKE_ONLY=none` for its 1,600 bare calls, over the 1,550 plugin calls): ~184k instructions
//! per call before, ~174k after building the WASI context only on a plugin's first WASI call
//! (-3k) and decoding the payload with the strict UTF-8 check first (-5k). What remains is
//! almost all wasmtime instantiating this guest's shape: `Instantiator::build_imports` wiring
//! the component's core instances to each other (the Rust guest's WASI adapter and shims import
//! and export hundreds of functions, each a funcref initialised and located per instance):
//! ~76k (42%); `Component::trampoline_ptrs` / `store_invariant_func`: ~37k (21%); registering
//! the modules with the fresh store: ~7k; `Store::new` + drop: ~9k; resetting the dirty pages of
//! the pooled memory: ~5k; the host's own state, event and result: under 2k. The empty WAT
//! baseline has one core instance and no imports (~9k instructions), which is why the ratio is
//! large; cutting further means a guest with fewer core imports, not host-side changes.
//!
//! Run: `cargo build --release -p wasmhook-benches && target/release/invoke` (`--quick`: a short
//! pass, what CI runs so the benchmark keeps working). `INVOKE_ONLY=trivial` measures only the
//! plugins whose label starts with that text: how to profile the host side under callgrind,
//! where compiling the Python and JavaScript components alone would take hours.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::http::Method;
use serde_json::{Value, json};
use wasmhook::{
    api::ApiClient,
    config::{Config, StoreUrl},
    ids::{DeliveryId, EventId, SourceName, TenantId},
    plugins::Manifest,
    runtime::{DeliveryInfo, EngineOptions, LoadedPlugin, Outcome, Runtime, Services},
    store::{AnyStore, StoredEvent},
};
use wasmhook_benches::{
    args::Args,
    bare,
    report::{Section, Target, round},
    stats::{Latencies, us},
};
use wasmhook_tests::{
    FakeApi,
    fake_api::Reply,
    fixtures,
    plugins::{js_plugin, python_plugin, rust_plugin},
};

/// The environment variable that picks the plugins to measure by label prefix.
const ONLY_VAR: &str = "INVOKE_ONLY";

/// One plugin to measure.
struct Case {
    label: &'static str,
    plugin: Arc<LoadedPlugin>,
    /// The fixture the events are made from, and the changes giving each call unique ids.
    fixture: &'static str,
    unique: fn(usize) -> Value,
    /// Calls per thread: (quick, full).
    calls: (usize, usize),
}

impl Case {
    fn event(&self, n: usize) -> StoredEvent {
        let id = format!("bench-{n}");
        let body = fixtures::highlevel_body_with(self.fixture, "bench-app", &id, (self.unique)(n));
        let parsed: Value = serde_json::from_slice(&body).unwrap_or_default();
        StoredEvent {
            source: SourceName::new("highlevel"),
            id: EventId::new(id),
            kind: parsed["type"].as_str().unwrap_or_default().to_string(),
            tenant: TenantId::new(parsed["locationId"].as_str().unwrap_or_default()),
            received_at_ms: wasmhook::ids::now_ms(),
            payload: body,
        }
    }
}

fn delivery() -> DeliveryInfo {
    let id = DeliveryId::generate();
    DeliveryInfo {
        idempotency_key: id.as_str().to_string(),
        id,
        attempt: 1,
    }
}

/// What one measurement produced.
struct Run {
    latencies: Latencies,
    per_second: f64,
}

/// Runs `threads` loops of `calls` each of `call(thread, i)` at once; latencies of every call.
async fn measure<F, Fut>(threads: usize, calls: usize, call: F) -> anyhow::Result<Run>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for thread in 0..threads {
        let call = call.clone();
        loops.spawn(async move {
            let mut latencies = Vec::with_capacity(calls);
            for i in 0..calls {
                let t = Instant::now();
                call(thread, i).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(threads * calls);
    while let Some(done) = loops.join_next().await {
        all.extend(done??);
    }
    let elapsed = started.elapsed();
    Ok(Run {
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        latencies: Latencies::new(all),
    })
}

/// Measures `case` on `threads` loops; every call must succeed.
async fn measure_plugin(
    runtime: &Runtime,
    case: &Case,
    threads: usize,
    calls: usize,
    round_no: usize,
) -> anyhow::Result<Run> {
    // Events are made before the clock starts: the figure is the invocation alone.
    let events: Arc<Vec<Vec<StoredEvent>>> = Arc::new(
        (0..threads)
            .map(|t| {
                (0..calls)
                    .map(|i| case.event((round_no * 10 + t) * 1_000_000 + i))
                    .collect()
            })
            .collect(),
    );
    let (runtime, plugin, label) = (runtime.clone(), case.plugin.clone(), case.label);
    measure(threads, calls, move |t, i| {
        let (runtime, plugin, events) = (runtime.clone(), plugin.clone(), events.clone());
        async move {
            let done = runtime.invoke(&plugin, &events[t][i], &delivery()).await;
            anyhow::ensure!(
                done.outcome == Outcome::Succeeded,
                "{label}: a call ended {:?}; logs: {:?}",
                done.outcome,
                done.logs
            );
            Ok(())
        }
    })
    .await
}

/// The highlevel API pointing at `fake`, as a server would configure it.
fn client_for(fake: &FakeApi, dir: &Path) -> anyhow::Result<ApiClient> {
    std::fs::write(dir.join("highlevel.token"), "pit-bench-token\n")?;
    let text = format!(
        "[storage]\nurl = \"sqlite://unused.db\"\n\
         [apis.highlevel]\nbase_url = \"{}\"\ntoken = {{ file = \"highlevel.token\" }}\n\
         idempotency_header = \"{}\"\n",
        fake.url(),
        fake.idempotency_header()
    );
    let path = dir.join("wasmhook.toml");
    std::fs::write(&path, text)?;
    let config = Config::load(&path).context("the benchmark's API config")?;
    Ok(ApiClient::new(&config.apis)?)
}

/// Scripts the fake the way the example plugins' tests do, so every call succeeds.
fn script(fake: &FakeApi) {
    fake.on(
        Method::GET,
        "/opportunities/pipelines",
        Reply::Json(
            200,
            json!({"pipelines": [
                {"id": "VDm7RPYC2GLUvdpKmBfC", "name": "Sales", "stages": [
                    {"id": "st-new", "name": "New Lead"},
                    {"id": "st-demo", "name": "Demo Requested"},
                    {"id": "e93ba61a-53b3-45e7-985a-c7732dbcdb69", "name": "Proposal"}]}]}),
        ),
    );
    fake.on(
        Method::POST,
        "/contacts/search",
        Reply::Json(
            200,
            json!({"contacts": [{"id": "c1"}, {"id": "c2"}, {"id": "c3"}], "total": 3}),
        ),
    );
    fake.on(
        Method::GET,
        "/opportunities/search",
        Reply::Json(
            200,
            json!({"opportunities": [{"id": "opp-1", "pipelineStageId": "st-new"}],
                   "meta": {"total": 1}}),
        ),
    );
}

fn manifest(name: &str, text: &str) -> anyhow::Result<Manifest> {
    Ok(Manifest::parse(Path::new(&format!("{name}.toml")), text)?)
}

fn example_manifest(name: &str) -> anyhow::Result<Manifest> {
    let path = wasmhook_tests::repo_root()
        .join("example-plugins")
        .join(name)
        .join(format!("{name}.toml"));
    Ok(Manifest::load(path)?)
}

fn load(runtime: &Runtime, manifest: Manifest, wasm: &Path) -> anyhow::Result<Arc<LoadedPlugin>> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    Ok(Arc::new(runtime.load(manifest, &bytes)?))
}

/// A plugin to measure, before it is built and loaded.
struct Spec {
    label: &'static str,
    load: fn(&Runtime) -> anyhow::Result<Arc<LoadedPlugin>>,
    fixture: &'static str,
    unique: fn(usize) -> Value,
    calls: (usize, usize),
}

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            label: "trivial (Rust, hostile mode ok)",
            load: |runtime| {
                let trivial = manifest(
                    "trivial",
                    "name = \"trivial\"\nevents = [\"highlevel:ContactCreate\"]\n\
                     [config]\nmode = \"ok\"\n",
                )?;
                load(runtime, trivial, &rust_plugin("hostile"))
            },
            fixture: "contact-create",
            unique: |_| json!({}),
            calls: (500, 50_000),
        },
        Spec {
            // Its kv write is a durable SQLite commit (an fsync) inside the call: that, not
            // the API call, is most of its latency.
            label: "contact-tagger (Rust, kv read + 1 API call + kv write)",
            load: |runtime| {
                let manifest = example_manifest("contact-tagger")?;
                load(runtime, manifest, &rust_plugin("contact-tagger"))
            },
            fixture: "contact-create",
            unique: |n| json!({"id": format!("contact-{n}")}),
            calls: (50, 2_000),
        },
        Spec {
            label: "pipeline-sync (Rust, 3 API calls)",
            load: |runtime| {
                let manifest = example_manifest("pipeline-sync")?;
                load(runtime, manifest, &rust_plugin("pipeline-sync"))
            },
            fixture: "opportunity-status-update",
            unique: |n| json!({"id": format!("deal-{n}")}),
            calls: (30, 1_000),
        },
        Spec {
            label: "sms-router (Python, 3 API calls)",
            load: |runtime| {
                let manifest = example_manifest("sms-router")?;
                load(runtime, manifest, &python_plugin("sms-router"))
            },
            fixture: "inbound-message-sms",
            unique: |_| json!({"body": "Demo please!"}),
            calls: (5, 100),
        },
        Spec {
            label: "won-followup (JavaScript, kv + 1 API call)",
            load: |runtime| {
                let manifest = example_manifest("won-followup")?;
                load(runtime, manifest, &js_plugin("won-followup"))
            },
            fixture: "opportunity-status-update",
            unique: |n| json!({"id": format!("deal-{n}"), "status": "won"}),
            calls: (5, 100),
        },
    ]
}

/// Builds and loads the plugins whose label starts with `only` (all when `None`).
fn cases(runtime: &Runtime, only: Option<&str>) -> anyhow::Result<Vec<Case>> {
    specs()
        .into_iter()
        .filter(|spec| only.is_none_or(|prefix| spec.label.starts_with(prefix)))
        .map(|spec| {
            Ok(Case {
                label: spec.label,
                plugin: (spec.load)(runtime)?,
                fixture: spec.fixture,
                unique: spec.unique,
                calls: spec.calls,
            })
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    // The fake API gets its own thread, so it does not share the measured runtime's workers.
    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let fake = fake_rt.block_on(FakeApi::start());
    script(&fake);
    let bench_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    bench_rt.block_on(run(&args, &fake))
}

async fn run(args: &Args, fake: &FakeApi) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = AnyStore::open(&StoreUrl::Sqlite(dir.path().join("store.db"))).await?;
    let runtime = Runtime::with_options(
        Services {
            store,
            api: client_for(fake, dir.path())?,
        },
        EngineOptions::default(),
    )?;
    println!(
        "invocation: fresh instance + handle + drop, production engine ({:?} allocator){}",
        runtime.allocator(),
        if args.quick { " (--quick)" } else { "" }
    );
    let started = Instant::now();
    let only = std::env::var(ONLY_VAR).ok();
    let cases = {
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || cases(&runtime, only.as_deref())).await??
    };
    println!(
        "built and loaded {} plugins in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );

    let bare = Arc::new(bare::Bare::new(runtime.loader().engine())?);
    let bare_calls = args.pick(500, 50_000);
    let mut baseline = Vec::new();
    for threads in [1, 2] {
        let warm = bare.clone();
        measure(1, bare_calls / 10, move |_, _| {
            let b = warm.clone();
            async move { b.call().await }
        })
        .await?;
        let b = bare.clone();
        baseline.push(
            measure(threads, bare_calls, move |_, _| {
                let b = b.clone();
                async move { b.call().await }
            })
            .await?,
        );
    }

    let mut section = Section::new(
        "Plugin invocation",
        INVOKE_ABOUT,
        format!(
            "cargo build --release -p wasmhook-benches && target/release/invoke {}",
            args.flags()
        )
        .trim_end(),
    );
    section.header(&[
        "plugin",
        "calls",
        "p50 µs (1 thr)",
        "p99 µs (1 thr)",
        "calls/s 1 thr",
        "calls/s 2 thr",
        "p50 ratio",
        "calls/s ratio 2 thr",
    ]);
    section.row(vec![
        "baseline: bare wasmtime, empty component".into(),
        baseline[0].latencies.len().to_string(),
        us(baseline[0].latencies.p50()),
        us(baseline[0].latencies.p99()),
        format!("{:.0}", baseline[0].per_second),
        format!("{:.0}", baseline[1].per_second),
        "1.00".into(),
        "1.00".into(),
    ]);
    let mut trivial: Option<(Run, Run)> = None;
    for (index, case) in cases.iter().enumerate() {
        let calls = args.pick(case.calls.0, case.calls.1);
        // Warm-up: first-use costs (pool slots, connections, caches) stay out of the figures.
        measure_plugin(&runtime, case, 1, (calls / 10).max(2), 100 + index).await?;
        let one = measure_plugin(&runtime, case, 1, calls, 200 + index).await?;
        let two = measure_plugin(&runtime, case, 2, calls, 300 + index).await?;
        section.row(vec![
            case.label.into(),
            one.latencies.len().to_string(),
            us(one.latencies.p50()),
            us(one.latencies.p99()),
            format!("{:.0}", one.per_second),
            format!("{:.0}", two.per_second),
            round(ratio(one.latencies.p50(), baseline[0].latencies.p50())),
            round(two.per_second / baseline[1].per_second),
        ]);
        if case.label.starts_with("trivial") {
            trivial = Some((one, two));
        }
    }
    if let Some((one, two)) = &trivial {
        section.target(Target::at_most(
            "trivial Rust plugin p50 <= 12 µs on 1 thread",
            one.latencies.p50().as_secs_f64() * 1e6,
            12.0,
            "µs",
        ));
        section.target(Target::at_most(
            "trivial Rust plugin p99 <= 50 µs on 1 thread",
            one.latencies.p99().as_secs_f64() * 1e6,
            50.0,
            "µs",
        ));
        section.target(Target::at_least(
            "trivial Rust plugin >= 60,000 calls/s on 2 cores",
            two.per_second,
            60_000.0,
            "calls/s",
        ));
    }
    section.note(format!(
        "the fake API runs on its own thread in the same process; {} fake API requests served",
        fake.requests().len()
    ));
    section.note(
        "profile (callgrind, see benches/src/invoke.rs): a trivial call is ~174k instructions \
         (was ~184k before the WASI context was built lazily and the payload decoded strictly); \
         ~42% is wasmtime wiring the guest's core instances (`build_imports`), ~21% its \
         trampolines, under 2k the host's own state",
    );
    if args.quick {
        section.note("--quick: a short pass; the figures only show the benchmark works");
    }
    section.print();
    section.append_to(args.markdown.as_deref())?;
    Ok(())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

const INVOKE_ABOUT: &str = "\
A fresh store + instantiate + `handle` + drop through wasmhook's runtime (`Runtime::invoke`,
production engine settings), for the trivial Rust test plugin (`tests/plugins/hostile`, mode
`ok`) and the example plugins on their fixture events, each making its real API calls to a fake
API on loopback (won-followup also writes its claim to kv, a SQLite commit). Every plugin is built
from source and every call must succeed. `1 thr` / `2 thr`: one or two invocation loops at once
on a 2-worker tokio runtime; p50/p99 are from the 1-loop run. Baseline, same process, same
`Engine`: bare wasmtime `instantiate_async` + `call_async` + drop of an empty WAT component. `p50
ratio` = plugin p50 / baseline p50; `calls/s ratio` = plugin / baseline on 2 loops.";
