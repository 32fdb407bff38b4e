//! Durable ingest benchmark: signed HighLevel webhooks posted to a real server (`wasmhook::run`
//! on loopback, its SQLite store in a temp dir) by 1, 16 and 64 concurrent senders; throughput
//! and p50/p99/p99.9 acknowledgement latency, next to raw SQLite batched inserts of the same
//! payloads on the same disk in the same run (WAL, `synchronous=FULL`, one transaction per batch
//! of as many rows as there are senders), and the ratio between the two.
//!
//! Every webhook is unique and signed before the clock starts, so the figures measure the
//! server (verify + durable commit + answer), not the sender. The server runs on its own tokio
//! runtime (threads `server`), the senders on another (threads `sender`), as they would on two
//! machines; a second table splits each level's CPU time per webhook by thread (server workers,
//! the SQLite writer, senders) and shows the writer's mean batch and commit time, so a run on a
//! busy machine still says where the time goes.
//!
//! Run: `cargo run --release -p wasmhook-benches --bin ingest` (`--quick`: one short pass per
//! level, what CI runs so the benchmark keeps compiling and working; `--senders N --requests N`:
//! one level alone, for profiling).
//!
//! The raw SQLite baseline inserts `min(requests, 20,000)` rows per level, in transactions of
//! as many rows as the level has senders (1, 16, 64), into a `WITHOUT ROWID` table keyed by a
//! random id, WAL + `synchronous=FULL`, in the same temp dir as the server's store.
//!
//! What the profile showed and what changed (callgrind, `--senders 16`, the difference between
//! `--requests 300` and `--requests 1300` per thread, divided by 1,000): the server's threads
//! run ~540k instructions per webhook, ~430k of them Ed25519 `verify_strict` (AVX2 backend),
//! ~43k the payload's SHA-256 (software: this CPU has no SHA extensions) and ~26k the JSON
//! envelope, so HTTP, routing, metrics and channels are under 10% and the rest of the server's
//! CPU time is the kernel (loopback TCP, wake-ups). The SQLite writer ran ~104k instructions
//! per webhook; a quarter of them were `company_of`'s `ORDER BY ... LIMIT 1` and another large
//! share the event INSERT's `RETURNING`, both of which make SQLite create and drop a temporary
//! B-tree per statement. The writer now skips the company lookups when the tenant has its own
//! installation row, picks the newest link without a sort, and reads the INSERT's change
//! count: ~56k instructions per webhook. The senders moved from reqwest to pre-built requests
//! on bare hyper HTTP/1.1 connections (~21k instructions per webhook): at 64 senders their CPU
//! per webhook went from 36 to 19 µs in a same-run comparison on a loaded machine.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, pkcs8::EncodePublicKey};
use wasmhook_benches::load::{self, Connection, Prepared};

const APP_ID: &str = "bench-app";
/// Where the webhooks are posted.
const PATH: &str = "/webhooks/highlevel";
const LEVELS: [usize; 3] = [1, 16, 64];
/// Distinct locations the webhooks come from, each installed first.
const TENANTS: usize = 50;

/// Webhooks posted per level: (full run, --quick).
fn requests_at(senders: usize, quick: bool) -> usize {
    match (quick, senders) {
        (true, _) => 200,
        (false, 1) => 3_000,
        (false, 16) => 30_000,
        (false, _) => 60_000,
    }
}

/// The command line: `--quick`, and for profiling one level alone (e.g. under callgrind, where
/// the instructions of two runs with different `--requests` differ by exactly those requests'
/// cost) `--senders N` and `--requests N`.
struct Options {
    quick: bool,
    levels: Vec<usize>,
    requests: Option<usize>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            quick: false,
            levels: LEVELS.to_vec(),
            requests: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> anyhow::Result<usize> {
                let value = args
                    .next()
                    .with_context(|| format!("{name} needs a number"))?;
                value.parse().with_context(|| format!("{name} {value}"))
            };
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--senders" => options.levels = vec![number("--senders")?],
                "--requests" => options.requests = Some(number("--requests")?),
                other => anyhow::bail!(
                    "unknown argument {other:?}; the arguments are --quick, --senders N and \
                     --requests N"
                ),
            }
        }
        Ok(options)
    }

    fn requests_at(&self, senders: usize) -> usize {
        self.requests
            .unwrap_or_else(|| requests_at(senders, self.quick))
    }
}

struct Level {
    senders: usize,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Level {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

fn body(i: usize, level: usize) -> Vec<u8> {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    serde_json::json!({
        "type": "ContactCreate",
        "appId": APP_ID,
        "locationId": format!("loc-{}", i % TENANTS),
        "webhookId": format!("bench-{level}-{i}-{}", uuid::Uuid::new_v4()),
        "timestamp": now.to_string(),
        "id": format!("contact-{i}"),
        "email": "someone@example.com",
        "name": "Some One",
        "tags": ["lead", "bench"],
        "customFields": [{"id": "cf-1", "value": "x".repeat(400)}]
    })
    .to_string()
    .into_bytes()
}

/// The INSTALL of each benchmark tenant: the server refuses events of tenants without an
/// installation, so they are installed before the clock starts.
fn install(i: usize) -> Vec<u8> {
    serde_json::json!({
        "type": "INSTALL",
        "appId": APP_ID,
        "locationId": format!("loc-{i}"),
        "companyId": "bench-company",
        "webhookId": format!("bench-install-{i}"),
        "timestamp": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    })
    .to_string()
    .into_bytes()
}

/// A request ready to post: (body, signature).
fn sign(key: &SigningKey, body: Vec<u8>) -> (Vec<u8>, String) {
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&body).to_bytes());
    (body, signature)
}

/// Pre-signed requests.
fn signed(key: &SigningKey, n: usize, level: usize) -> Vec<(Vec<u8>, String)> {
    (0..n).map(|i| sign(key, body(i, level))).collect()
}

/// The pre-signed requests, ready to post to `addr`.
fn prepared(addr: SocketAddr, work: Vec<(Vec<u8>, String)>) -> anyhow::Result<Vec<Prepared>> {
    work.into_iter()
        .map(|(body, signature)| {
            load::prepare(addr, PATH, &[("x-ghl-signature", &signature)], body)
        })
        .collect()
}

/// Posts `work` from `senders` concurrent loops (one keep-alive connection each), timing each
/// request from its write to the end of its answer; every answer must be 200.
async fn post_level(
    addr: SocketAddr,
    senders: usize,
    work: Vec<Prepared>,
) -> anyhow::Result<Level> {
    let requests = work.len();
    let work = Arc::new(std::sync::Mutex::new(work));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let work = work.clone();
        tasks.spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut latencies = Vec::new();
            loop {
                let next = work.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some(request) = next else {
                    return anyhow::Ok(latencies);
                };
                let sent = Instant::now();
                let (status, _) = connection.post(request).await?;
                latencies.push(sent.elapsed());
                anyhow::ensure!(status == 200, "the server answered {status}");
            }
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Level {
        senders,
        requests,
        elapsed,
        latencies,
    })
}

/// Raw SQLite: `rows` inserts of the same payload size in transactions of `batch` rows, WAL +
/// synchronous=FULL, on the same disk. Returns rows per second.
fn sqlite_baseline(dir: &std::path::Path, rows: usize, batch: usize) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(dir.join(format!("baseline-{batch}.db")))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE events (source TEXT NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL,
                              PRIMARY KEY (source, id)) WITHOUT ROWID",
    )?;
    let payloads: Vec<Vec<u8>> = (0..rows).map(|i| body(i, 0)).collect();
    let started = Instant::now();
    for chunk in payloads.chunks(batch) {
        let tx = conn.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (source, id, payload) VALUES ('highlevel', ?1, ?2)
                 ON CONFLICT DO NOTHING",
            )?;
            for payload in chunk {
                insert.execute(rusqlite::params![uuid::Uuid::new_v4().to_string(), payload])?;
            }
        }
        tx.commit()?;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

fn config(dir: &std::path::Path, key: &SigningKey) -> anyhow::Result<std::path::PathBuf> {
    let pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .context("encoding the public key")?;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_requests = 4096\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [storage]\nurl = \"sqlite://data/wasmhook.db\"\n\
         [telemetry]\nlog_filter = \"warn\"\n\
         [[sources]]\nname = \"highlevel\"\nscheme = \"highlevel\"\napp_id = \"{APP_ID}\"\n\
         ed25519_keys = [{{ pem = \"\"\"\n{pem}\"\"\" }}]\n"
    );
    // No plugins: this measures ingest alone (verify + durable commit + answer).
    std::fs::create_dir_all(dir.join("plugins"))?;
    let path = dir.join("wasmhook.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// CPU time (user + system) of this process's live threads, summed by role: the server's
/// runtime threads, the SQLite writer, the senders, and the rest.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: Duration,
    writer: Duration,
    senders: Duration,
    other: Duration,
}

impl Cpu {
    /// Reads `/proc/self/task/*/stat` (Linux); zeros elsewhere.
    fn now() -> Cpu {
        let mut cpu = Cpu::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ...`: the name may hold spaces, so split at the last `)`.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = &stat[open + 1..close];
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name, in
            // clock ticks of 1/100 s (USER_HZ).
            let ticks: u64 = fields
                .get(11..13)
                .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
                .unwrap_or(0);
            let time = Duration::from_millis(ticks * 10);
            let slot = match name {
                n if n.starts_with(SERVER_THREADS) => &mut cpu.server,
                n if n.starts_with("sqlite-writer") => &mut cpu.writer,
                n if n.starts_with(SENDER_THREADS) => &mut cpu.senders,
                _ => &mut cpu.other,
            };
            *slot += time;
        }
        cpu
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: self.server.saturating_sub(before.server),
            writer: self.writer.saturating_sub(before.writer),
            senders: self.senders.saturating_sub(before.senders),
            other: self.other.saturating_sub(before.other),
        }
    }
}

/// Sums and counts of the server's own histograms, read from its in-process Prometheus
/// recorder (the same text `/metrics` serves).
#[derive(Clone, Copy, Default)]
struct Store {
    batches: f64,
    batched: f64,
    commits: f64,
    commit_seconds: f64,
}

impl Store {
    fn now() -> Store {
        let text = wasmhook::telemetry::metrics().render();
        let value = |name: &str| -> f64 {
            text.lines()
                .filter(|line| {
                    line.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Store {
            batches: value("wasmhook_store_write_batch_size_count"),
            batched: value("wasmhook_store_write_batch_size_sum"),
            commits: value("wasmhook_store_commit_seconds_count"),
            commit_seconds: value("wasmhook_store_commit_seconds_sum"),
        }
    }

    fn since(self, before: Store) -> Store {
        Store {
            batches: self.batches - before.batches,
            batched: self.batched - before.batched,
            commits: self.commits - before.commits,
            commit_seconds: self.commit_seconds - before.commit_seconds,
        }
    }
}

/// Thread name prefixes of the two runtimes.
const SERVER_THREADS: &str = "server";
const SENDER_THREADS: &str = "sender";

fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?)
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let quick = options.quick;
    let dir = tempfile::tempdir()?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let config = wasmhook::config::Config::load(config(dir.path(), &key)?)?;
    let server_runtime = runtime(SERVER_THREADS)?;
    let senders = runtime(SENDER_THREADS)?;
    let (public, admin) = server_runtime.block_on(async {
        anyhow::Ok((
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        ))
    })?;
    let addr = public.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_runtime.spawn(wasmhook::run(
        config,
        wasmhook::Listeners { public, admin },
        async move {
            let _ = stopped.await;
        },
    ));

    println!(
        "durable ingest: signed HighLevel webhooks (~{} bytes) -> 200, SQLite synchronous=FULL{}",
        body(0, 0).len(),
        if quick { " (--quick)" } else { "" }
    );
    println!(
        "{:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>14} {:>7}",
        "senders",
        "requests",
        "webhooks/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "sqlite rows/s",
        "ratio"
    );
    let installs = (0..TENANTS).map(|i| sign(&key, install(i))).collect();
    senders.block_on(post_level(addr, 1, prepared(addr, installs)?))?;
    let mut breakdown = Vec::new();
    for (round, level_senders) in options.levels.iter().copied().enumerate() {
        let n = options.requests_at(level_senders);
        let work = prepared(addr, signed(&key, n, round))?;
        let (cpu, store) = (Cpu::now(), Store::now());
        let level = senders.block_on(post_level(addr, level_senders, work))?;
        breakdown.push((
            level_senders,
            n,
            Cpu::now().since(cpu),
            Store::now().since(store),
        ));
        let baseline = sqlite_baseline(dir.path(), n.min(20_000), level_senders)?;
        println!(
            "{:>7} {:>8} {:>10.0} {:>9} {:>9} {:>9} {:>14.0} {:>7.2}",
            level.senders,
            level.requests,
            level.throughput(),
            ms(level.percentile(0.5)),
            ms(level.percentile(0.99)),
            ms(level.percentile(0.999)),
            baseline,
            level.throughput() / baseline,
        );
    }
    println!(
        "(sqlite rows/s: raw inserts of the same payloads on the same disk, WAL + \
         synchronous=FULL, one transaction per as many rows as the level has senders)"
    );
    println!();
    println!("CPU time per webhook by thread (µs), and the SQLite writer's batches:");
    println!(
        "{:>7} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>15}",
        "senders", "server", "writer", "senders", "other", "total", "mean batch", "mean commit ms"
    );
    for (level_senders, n, cpu, store) in breakdown {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        let total = cpu.server + cpu.writer + cpu.senders + cpu.other;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        println!(
            "{:>7} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>10.0} {:>10.1} {:>15.2}",
            level_senders,
            per(cpu.server),
            per(cpu.writer),
            per(cpu.senders),
            per(cpu.other),
            per(total),
            ratio(store.batched, store.batches),
            ratio(store.commit_seconds, store.commits) * 1e3,
        );
    }
    let _ = stop.send(());
    server_runtime.block_on(server)??;
    Ok(())
}
