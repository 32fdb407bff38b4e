//! The end-to-end benchmark's load: unique GitHub-style webhooks signed before the clock starts
//! (HMAC-SHA256 over the body, `X-Hub-Signature-256: sha256=<hex>`), posted by concurrent
//! senders (to one receiver, or split between replicas); and a recording fake API on loopback
//! that notes when each webhook's call arrived.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Path, State},
    routing::post,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One pre-signed webhook.
pub struct Webhook {
    /// `X-GitHub-Delivery`: the event id, and the `<id>` of the call the fake must receive.
    pub id: String,
    pub body: Vec<u8>,
    /// `sha256=<hex>`.
    pub signature: String,
}

/// `n` unique webhooks signed with `secret`: a ~700-byte JSON body with `contact.id`.
pub fn webhooks(n: usize, secret: &str, run: &str) -> Vec<Webhook> {
    (0..n)
        .map(|i| {
            let id = format!("{run}-{i}-{}", uuid::Uuid::new_v4().simple());
            let body = serde_json::json!({
                "action": "created",
                "installation": {"id": 1000 + i % 50},
                "contact": {
                    "id": format!("contact-{i}"),
                    "email": "someone@example.com",
                    "name": "Some One",
                    "tags": ["lead", "bench"],
                    "notes": "x".repeat(450),
                },
            })
            .to_string()
            .into_bytes();
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
            mac.update(&body);
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            Webhook {
                id,
                body,
                signature,
            }
        })
        .collect()
}

/// When each webhook was sent (by id), from [`send`].
pub type Sent = HashMap<String, Instant>;

/// Posts every webhook to `url` from `senders` concurrent loops; each must be answered 200.
pub async fn send(url: &str, senders: usize, work: Vec<Webhook>) -> anyhow::Result<Sent> {
    Ok(send_to(&[url.to_owned()], senders, work).await?.sent)
}

/// What [`send_to`] measured.
pub struct Acked {
    /// When each webhook was sent.
    pub sent: Sent,
    /// Each webhook's time from send to its 200 (the body read).
    pub latencies: Vec<Duration>,
    /// First send to last 200.
    pub elapsed: Duration,
}

/// Posts every webhook from `senders` concurrent loops, sender `i` to `urls[i % urls.len()]`
/// (receivers behind a load balancer that pins connections); each must be answered 200.
pub async fn send_to(urls: &[String], senders: usize, work: Vec<Webhook>) -> anyhow::Result<Acked> {
    anyhow::ensure!(!urls.is_empty(), "no receiver to send to");
    let work = Arc::new(Mutex::new(work));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..senders {
        let (work, client) = (work.clone(), client.clone());
        let url = urls[sender % urls.len()].clone();
        tasks.spawn(async move {
            let mut sent = Vec::new();
            let mut latencies = Vec::new();
            loop {
                let next = work.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some(hook) = next else {
                    return anyhow::Ok((sent, latencies));
                };
                let at = Instant::now();
                sent.push((hook.id.clone(), at));
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "contact")
                    .header("x-github-delivery", &hook.id)
                    .header("x-hub-signature-256", &hook.signature)
                    .body(hook.body)
                    .send()
                    .await?;
                let status = response.status();
                let text = response.text().await?;
                latencies.push(at.elapsed());
                anyhow::ensure!(status == 200, "the receiver answered {status}: {text}");
            }
        });
    }
    let mut acked = Acked {
        sent: HashMap::new(),
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    while let Some(done) = tasks.join_next().await {
        let (sent, latencies) = done??;
        acked.sent.extend(sent);
        acked.latencies.extend(latencies);
    }
    acked.elapsed = started.elapsed();
    Ok(acked)
}

#[derive(Default)]
struct Seen {
    at: HashMap<String, Instant>,
}

/// A fake API on `127.0.0.1:<ephemeral>` answering `POST /notes/{id}` with 200 `{}` and
/// recording when each id first arrived. Runs on the tokio runtime it is started on.
#[derive(Clone)]
pub struct RecordingApi {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl RecordingApi {
    /// Binds and serves.
    pub async fn start() -> anyhow::Result<RecordingApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/notes/{id}", post(note))
            .with_state(seen.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RecordingApi { addr, seen })
    }

    /// Calls received so far (distinct ids).
    pub fn count(&self) -> usize {
        self.seen.lock().map(|s| s.at.len()).unwrap_or(0)
    }

    /// Waits until `n` distinct ids arrived, or fails after `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.count() < n {
            anyhow::ensure!(
                started.elapsed() < limit,
                "only {} of {n} calls reached the fake API within {limit:?}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// The arrival times, taken out (the fake is then empty for the next run).
    pub fn take(&self) -> HashMap<String, Instant> {
        self.seen
            .lock()
            .map(|mut s| std::mem::take(&mut s.at))
            .unwrap_or_default()
    }
}

async fn note(State(seen): State<Arc<Mutex<Seen>>>, Path(id): Path<String>) -> &'static str {
    let now = Instant::now();
    if let Ok(mut seen) = seen.lock() {
        seen.at.entry(id).or_insert(now);
    }
    "{}"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_unique_and_signed_over_their_body() {
        let hooks = webhooks(3, "s3cret", "t");
        assert_ne!(hooks[0].id, hooks[1].id);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&hooks[2].body);
        let hex_sig = hooks[2].signature.strip_prefix("sha256=").unwrap();
        mac.verify_slice(&hex::decode(hex_sig).unwrap()).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&hooks[2].body).unwrap();
        assert_eq!(body["contact"]["id"], "contact-2");
    }
}
