//! Durable ingest benchmark: signed HighLevel webhooks posted to a real server (`wasmhook::run`
//! on loopback, its SQLite store in a temp dir) by 1, 16 and 64 concurrent senders; throughput
//! and p50/p99/p99.9 acknowledgement latency, next to raw SQLite batched inserts of the same
//! payloads on the same disk in the same run (WAL, `synchronous=FULL`, one transaction per batch
//! of as many rows as there are senders), and the ratio between the two.
//!
//! Every webhook is unique and signed before the clock starts, so the figures measure the
//! server (verify + durable commit + answer), not the sender.
//!
//! Run: `cargo run --release -p wasmhook-benches --bin ingest` (`--quick`: one short pass per
//! level, what CI runs so the benchmark keeps compiling and working).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, pkcs8::EncodePublicKey};

const APP_ID: &str = "bench-app";
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

async fn post_level(
    url: &str,
    senders: usize,
    work: Vec<(Vec<u8>, String)>,
) -> anyhow::Result<Level> {
    let requests = work.len();
    let work = Arc::new(std::sync::Mutex::new(work));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let (work, client, url) = (work.clone(), client.clone(), url.to_owned());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let next = work.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some((body, signature)) = next else {
                    return anyhow::Ok(latencies);
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-ghl-signature", signature)
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir()?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let config = wasmhook::config::Config::load(config(dir.path(), &key)?)?;
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/highlevel", public.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wasmhook::run(
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
    post_level(&url, 1, installs).await?;
    for (round, senders) in LEVELS.into_iter().enumerate() {
        let n = requests_at(senders, quick);
        let work = signed(&key, n, round);
        let level = post_level(&url, senders, work).await?;
        let baseline_dir = dir.path().to_owned();
        let baseline = tokio::task::spawn_blocking(move || {
            sqlite_baseline(&baseline_dir, n.min(20_000), senders)
        })
        .await??;
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
    let _ = stop.send(());
    server.await??;
    Ok(())
}
