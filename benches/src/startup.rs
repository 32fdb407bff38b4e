//! Startup and idle memory benchmark: the real `wasmhook serve` binary, from process spawn to
//! `/readyz` answering 200, with 1, 10 and 50 plugins, cold (empty compile cache: every plugin
//! compiled) and cached (the compile cache from the previous run); then the resident memory
//! (`VmRSS`) of the ready server with 10 plugins after a short settle.
//!
//! The plugins are distinct builds of the trivial Rust test plugin (`tests/plugins/hostile`,
//! mode `ok`, each with its own custom section, so each has its own hash and compiles on its
//! own). Baseline, same run: the same server with 0 plugins, timed to `/healthz` 200 (its
//! `/readyz` stays 503 by design without plugins) and its idle `VmRSS`.
//!
//! Run: `cargo build --release -p wasmhook -p wasmhook-benches && target/release/startup`
//! (`--quick`: 1 and 10 plugins, one run each, what CI runs).

use std::{path::Path, time::Duration};

use wasmhook_benches::{
    args::Args,
    child::Server,
    report::{Section, Target, round},
    stats::{Latencies, ms},
};
use wasmhook_tests::plugins::{install, rust_plugin, variant};

/// How long the ready server idles before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// The server's config in `dir`, its store (and so its compile cache) in `data`.
fn config(dir: &Path, data: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::write(dir.join("github.secret"), "bench-secret\n")?;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [storage]\nurl = \"sqlite://{}\"\n\
         [plugins]\ndir = \"plugins\"\nwatch = false\n\
         [telemetry]\nlog_filter = \"info\"\n\
         [[sources]]\nname = \"github\"\nscheme = \"github\"\n\
         secrets = [{{ file = \"github.secret\" }}]\n",
        data.join("wasmhook.db").display()
    );
    let path = dir.join("wasmhook.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A folder whose plugin folder holds `n` distinct builds of the trivial plugin; every setup
/// shares the store in `data`, created once before any timed start.
fn setup(n: usize, data: &Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let built = rust_plugin("hostile");
    for i in 0..n {
        let name = format!("p{i:02}");
        let wasm = variant(
            &built,
            &format!("startup-{i}"),
            &dir.path().join(format!("{name}.built.wasm")),
        );
        let manifest =
            format!("name = \"{name}\"\nevents = [\"github:push\"]\n[config]\nmode = \"ok\"\n");
        install(&plugins, &wasm, &name, &manifest);
    }
    config(dir.path(), data)?;
    Ok(dir)
}

/// One start: spawn -> ready (`/readyz` with plugins, `/healthz` without); optionally the idle
/// `VmRSS` after [`SETTLE`]. Stops the server before returning.
async fn start(dir: &Path, plugins: usize, rss: bool) -> anyhow::Result<(Duration, Option<u64>)> {
    let server = Server::start(&dir.join("wasmhook.toml")).await?;
    let ready = if plugins == 0 {
        server
            .wait_ok(&format!("http://{}/healthz", server.public))
            .await?
    } else {
        server
            .wait_ok(&format!("http://{}/readyz", server.admin))
            .await?
    };
    let memory = if rss {
        tokio::time::sleep(SETTLE).await;
        Some(server.memory("VmRSS")?)
    } else {
        None
    };
    server.stop().await?;
    Ok((ready, memory))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let counts: &[usize] = args.pick(&[1, 10], &[1, 10, 50]);
    let runs = args.pick(1, 3);
    println!(
        "startup: spawn -> /readyz 200, cold and cached compile cache{}",
        if args.quick { " (--quick)" } else { "" }
    );

    // One store for every start, created (migrated) by an untimed start, so no timed start
    // pays for creating it.
    let data = tempfile::tempdir()?;
    let empty = setup(0, data.path())?;
    start(empty.path(), 0, false).await?;

    // Baseline: 0 plugins.
    let mut base_times = Vec::new();
    let mut base_rss = Vec::new();
    for _ in 0..runs {
        let (t, rss) = start(empty.path(), 0, true).await?;
        base_times.push(t);
        base_rss.extend(rss);
    }
    let base = Latencies::new(base_times);
    let base_rss = base_rss.iter().copied().max().unwrap_or(0);

    let mut section = Section::new("Startup and idle memory", STARTUP_ABOUT, &command(&args));
    section.header(&[
        "plugins",
        "cache",
        "runs",
        "ready ms (median)",
        "max ms",
        "baseline ms (0 plugins)",
        "ratio",
    ]);
    section.row(vec![
        "0 (baseline, /healthz)".into(),
        "-".into(),
        runs.to_string(),
        ms(base.p50()),
        ms(base.max()),
        ms(base.p50()),
        "1.00".into(),
    ]);
    let mut cached_50 = None;
    let mut rss_10 = None;
    for &n in counts {
        let dir = setup(n, data.path())?;
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..runs {
            // Cold: the compile cache (next to the SQLite file) removed first.
            let _ = std::fs::remove_dir_all(data.path().join("compile-cache"));
            cold.push(start(dir.path(), n, false).await?.0);
            let (t, rss) = start(dir.path(), n, n == 10).await?;
            warm.push(t);
            if let Some(rss) = rss {
                rss_10 = Some(rss_10.map_or(rss, |r: u64| r.max(rss)));
            }
        }
        for (label, times) in [("cold", cold), ("cached", warm)] {
            let times = Latencies::new(times);
            if n == 50 && label == "cached" {
                cached_50 = Some(times.p50());
            }
            section.row(vec![
                n.to_string(),
                label.into(),
                runs.to_string(),
                ms(times.p50()),
                ms(times.max()),
                ms(base.p50()),
                round(times.p50().as_secs_f64() / base.p50().as_secs_f64()),
            ]);
        }
    }
    if let Some(rss) = rss_10 {
        section.note(format!(
            "idle VmRSS after {SETTLE:?}: {:.1} MiB with 10 plugins, {:.1} MiB with 0 (ratio {})",
            mib(rss),
            mib(base_rss),
            round(rss as f64 / base_rss.max(1) as f64)
        ));
        section.target(Target::at_most(
            "idle memory <= 60 MB with 10 plugins",
            rss as f64 / 1e6,
            60.0,
            "MB",
        ));
    }
    if let Some(t) = cached_50 {
        section.target(Target::at_most(
            "startup with 50 plugins from the compile cache <= 1 s",
            t.as_secs_f64(),
            1.0,
            "s",
        ));
    }
    if args.quick {
        section.note("--quick: 1 and 10 plugins, one run each");
    }
    section.print();
    section.append_to(args.markdown.as_deref())?;
    Ok(())
}

fn command(args: &Args) -> String {
    format!(
        "cargo build --release -p wasmhook -p wasmhook-benches && target/release/startup {}",
        args.flags()
    )
    .trim_end()
    .to_string()
}

const STARTUP_ABOUT: &str = "\
The real `wasmhook serve` binary (release), from process spawn to `/readyz` answering 200, with
N distinct builds of the trivial Rust plugin in its plugin folder (each with its own hash, so each
compiles on its own), one GitHub source, and a SQLite store created by an untimed start first. `cold`: the compile cache removed before
the start (every plugin compiled); `cached`: the next start, from the compile cache. Baseline,
same run: the same server with 0 plugins, timed to `/healthz` 200 (`/readyz` stays 503 without
plugins by design). Idle memory: `VmRSS` from `/proc/<pid>/status` 2 s after ready.";
