//! Ingest on PostgreSQL with 1 and 2 replicas: the real `wasmhook serve` binary (one process,
//! then two on one database, as behind a load balancer) receiving unique signed GitHub-style
//! webhooks from 64 concurrent senders (split evenly between the replicas); throughput and
//! p50/p99 acknowledgement latency. Baselines from the same run on the same server: raw
//! PostgreSQL batched inserts of the same payloads (one connection, 64 rows per commit) for the
//! one-replica row, and the one-replica figure for the two-replica row.
//!
//! Each run (the baseline, 1 replica, 2 replicas) gets a fresh schema, dropped after it, so no
//! run sees another's rows. The server is named by `WASMHOOK_TEST_POSTGRES_URL` (scripts/bench
//! sets the same default as scripts/test).
//!
//! Run: `scripts/bench` (or `cargo build --release -p wasmhook -p wasmhook-benches &&
//! target/release/replicas`; `--quick`: a short pass).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use wasmhook::store::postgres::testing::{TEST_URL_ENV, TestSchema};
use wasmhook_benches::{
    args::Args,
    child::Server,
    load::{send_to, webhooks},
    report::{Section, round},
    stats::{Latencies, ms},
};

const SECRET: &str = "bench-webhook-secret";
/// Concurrent senders, split evenly between the replicas.
const SENDERS: usize = 64;
/// Rows per transaction of the raw-insert baseline: as many as there are senders, as the
/// SQLite ingest benchmark's baseline does.
const BATCH: usize = SENDERS;

/// What one case measured.
struct Case {
    webhooks: usize,
    per_second: f64,
    latencies: Option<Latencies>,
}

fn config(dir: &Path, url: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(dir.join("github.secret"), format!("{SECRET}\n"))?;
    std::fs::create_dir_all(dir.join("plugins"))?;
    // No plugins: this measures ingest alone (verify + durable commit + answer); payloads are
    // kept, as they are when a plugin subscribes, so each webhook writes its body.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_requests = 4096\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [storage]\nurl = \"{url}\"\nkeep_payloads = true\n\
         [telemetry]\nlog_filter = \"warn,wasmhook::server=info\"\n\
         [[sources]]\nname = \"github\"\nscheme = \"github\"\n\
         secrets = [{{ file = \"github.secret\" }}]\n"
    );
    let path = dir.join("wasmhook.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `replicas` servers on a fresh schema; `n` webhooks from [`SENDERS`] senders after a warm-up.
async fn run_replicas(replicas: usize, n: usize) -> anyhow::Result<Case> {
    let schema = TestSchema::create().await;
    let url = schema.url().expose().replace('"', "\\\"");
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let dir = tempfile::tempdir()?;
        servers.push(Server::start(&config(dir.path(), &url)?).await?);
        dirs.push(dir);
    }
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}/webhooks/github", s.public))
        .collect();
    // Warm-up outside the figures: connections, pools, prepared statements.
    send_to(&urls, SENDERS, webhooks(SENDERS * 4, SECRET, "warm")).await?;
    let acked = send_to(
        &urls,
        SENDERS,
        webhooks(n, SECRET, &format!("replicas-{replicas}")),
    )
    .await;
    for server in servers {
        server.stop().await?;
    }
    schema.drop().await;
    let acked = acked?;
    Ok(Case {
        webhooks: n,
        per_second: n as f64 / acked.elapsed.as_secs_f64(),
        latencies: Some(Latencies::new(acked.latencies)),
    })
}

/// Raw PostgreSQL: `n` inserts of the same payloads into a table keyed like the events table,
/// [`BATCH`] rows per commit on one connection, on a fresh schema of the same server.
async fn raw_inserts(n: usize) -> anyhow::Result<Case> {
    let schema = TestSchema::create().await;
    let result = async {
        let (client, connection) =
            tokio_postgres::connect(schema.url().expose(), tokio_postgres::NoTls)
                .await
                .context("connecting to the benchmark schema")?;
        let task = tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE events (source TEXT NOT NULL, id TEXT NOT NULL, payload BYTEA NOT NULL,
                                      PRIMARY KEY (source, id))",
            )
            .await?;
        let hooks = webhooks(n, SECRET, "raw");
        let insert = client
            .prepare(
                "INSERT INTO events (source, id, payload)
                 SELECT 'github', id, payload FROM unnest($1::text[], $2::bytea[]) AS t(id, payload)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let started = Instant::now();
        for chunk in hooks.chunks(BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|h| h.id.as_str()).collect();
            let payloads: Vec<&[u8]> = chunk.iter().map(|h| h.body.as_slice()).collect();
            // One statement outside a transaction block commits on its own: one commit per batch.
            client.execute(&insert, &[&ids, &payloads]).await?;
        }
        let elapsed = started.elapsed();
        drop(client);
        let _ = task.await;
        anyhow::Ok(elapsed)
    }
    .await;
    schema.drop().await;
    Ok(Case {
        webhooks: n,
        per_second: n as f64 / result?.as_secs_f64(),
        latencies: None,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    anyhow::ensure!(
        std::env::var(TEST_URL_ENV).is_ok(),
        "{TEST_URL_ENV} is not set: this benchmark needs a PostgreSQL server (scripts/bench sets \
         the same default as scripts/test)"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let n = args.pick(400, 20_000);
    println!(
        "ingest on PostgreSQL: {n} signed webhooks from {SENDERS} senders to 1, then 2 replicas{}",
        if args.quick { " (--quick)" } else { "" }
    );
    let raw = raw_inserts(n).await?;
    let one = run_replicas(1, n).await?;
    let two = run_replicas(2, n).await?;

    let mut section = Section::new(
        "Ingest on PostgreSQL, 1 and 2 replicas",
        ABOUT,
        &command(args),
    );
    section.header(&[
        "case",
        "webhooks",
        "webhooks/s",
        "p50 ms",
        "p99 ms",
        "baseline",
        "ratio",
    ]);
    let latency = |case: &Case, f: fn(&Latencies) -> Duration| {
        case.latencies.as_ref().map_or("-".into(), |l| ms(f(l)))
    };
    let row = |label: &str, case: &Case, baseline: &str, ratio: String| {
        vec![
            label.to_string(),
            case.webhooks.to_string(),
            format!("{:.0}", case.per_second),
            latency(case, Latencies::p50),
            latency(case, Latencies::p99),
            baseline.to_string(),
            ratio,
        ]
    };
    section.row(row(
        &format!("raw PostgreSQL inserts, {BATCH} rows per commit"),
        &raw,
        "-",
        "-".into(),
    ));
    section.row(row(
        &format!("1 replica, {SENDERS} senders"),
        &one,
        "raw inserts",
        round(one.per_second / raw.per_second),
    ));
    section.row(row(
        &format!("2 replicas, {} senders each", SENDERS / 2),
        &two,
        "1 replica",
        round(two.per_second / one.per_second),
    ));
    section.note(format!(
        "{n} webhooks per case after a warm-up of {}; the replicas, the senders and PostgreSQL \
         share this machine's {} cores, so a second replica adds no CPU here: its row shows two \
         processes sharing one database and one machine, not the scaling across machines",
        SENDERS * 4,
        std::thread::available_parallelism().map_or(0, |p| p.get())
    ));
    section.print();
    section.append_to(args.markdown.as_deref())?;
    Ok(())
}

fn command(args: &Args) -> String {
    format!(
        "cargo build --release -p wasmhook -p wasmhook-benches && target/release/replicas {}",
        args.flags()
    )
    .trim_end()
    .to_string()
}

const ABOUT: &str = "\
Unique GitHub-style webhooks (~700 bytes, HMAC-SHA256 signed before the clock starts) posted by
64 concurrent senders to the real `wasmhook serve` binary on PostgreSQL (`storage.url`, default
pool of 16, payloads kept, no plugins: ingest alone), first one replica, then two on one
database with 32 senders each; each must be answered 200. webhooks/s = webhooks / (first send ->
last 200); latency = send -> 200. Baselines from the same run, same server: raw batched inserts
of the same payloads for one replica, the one-replica figure for two. Each case runs in a fresh
schema (see `benches/src/replicas.rs`).";
