//! The benchmarks' load: a lean HTTP/1.1 sender ([`Connection`]: one keep-alive connection per
//! sender, requests built before the clock starts); for the end-to-end benchmark, unique
//! GitHub-style webhooks signed before the clock starts (HMAC-SHA256 over the body,
//! `X-Hub-Signature-256: sha256=<hex>`) posted by concurrent senders (to one receiver, or split between replicas), and a recording fake API
//! on loopback that notes when each webhook's call arrived.
//!
//! Why not reqwest: the senders share the machine's two cores with the server, so every
//! microsecond they spend is one the server does not get. The durable ingest benchmark measured
//! reqwest's senders at 72 µs of CPU per webhook (64 senders, next to 149 µs for the whole
//! server); a bare hyper HTTP/1.1 connection driven in the sender's own task, posting a request
//! built in advance, needs none of reqwest's pool, URL parsing or header building per request.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{Request, StatusCode, header},
    routing::post,
};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use sha2::Sha256;

/// A request ready to post.
pub type Prepared = Request<Full<Bytes>>;

/// A `POST` of `body` to `path` on `addr` with `headers`, built now so that sending it costs
/// the sender nothing but the write.
pub fn prepare(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<Prepared> {
    let mut request = Request::post(path)
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(request.body(Full::new(Bytes::from(body)))?)
}

/// One sender's keep-alive HTTP/1.1 connection: one request at a time, each answer read whole
/// before the next request goes out.
pub struct Connection {
    requests: http1::SendRequest<Full<Bytes>>,
    /// hyper's connection state machine: polled by [`Connection::post`] itself, in the sender's
    /// task, so an answer wakes no second task.
    driver: http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>,
}

impl Connection {
    /// Connects to `addr` (no Nagle delay, as the server sets for its side).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (requests, driver) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Connection { requests, driver })
    }

    /// Sends `request` and reads the whole answer: its status and body.
    pub async fn post(&mut self, request: Prepared) -> anyhow::Result<(StatusCode, Bytes)> {
        let Connection { requests, driver } = self;
        let exchange = async {
            let response = requests.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::pin!(exchange);
        // The driver only finishes when the connection ends, which must not happen mid-request.
        tokio::select! {
            biased;
            answer = &mut exchange => answer,
            ended = std::future::poll_fn(|cx| driver.poll_without_shutdown(cx)) => {
                ended?;
                anyhow::bail!("the server closed the connection before answering")
            }
        }
    }
}

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

/// Posts every webhook to `url` (`http://host:port/path`) from `senders` concurrent loops, one
/// keep-alive connection each; each must be answered 200.
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

/// A receiver's share of the work: requests built for its address, taken by its senders.
type Queue = Arc<Mutex<Vec<(String, Prepared)>>>;

/// Posts every webhook from `senders` concurrent loops, one keep-alive connection each, sender
/// `i` to `urls[i % urls.len()]` (receivers behind a load balancer that pins connections); the
/// webhooks are dealt to the receivers in turn and built into requests before the clock starts.
/// Each must be answered 200.
pub async fn send_to(urls: &[String], senders: usize, work: Vec<Webhook>) -> anyhow::Result<Acked> {
    anyhow::ensure!(!urls.is_empty(), "no receiver to send to");
    let mut receivers = Vec::with_capacity(urls.len());
    for url in urls {
        receivers.push((split_url(url).await?, Vec::new()));
    }
    for (i, hook) in work.into_iter().enumerate() {
        let ((addr, path), queue) = &mut receivers[i % urls.len()];
        let request = prepare(
            *addr,
            path,
            &[
                ("x-github-event", "contact"),
                ("x-github-delivery", &hook.id),
                ("x-hub-signature-256", &hook.signature),
            ],
            hook.body,
        )?;
        queue.push((hook.id, request));
    }
    let queues: Vec<(SocketAddr, Queue)> = receivers
        .into_iter()
        .map(|((addr, _), queue)| (addr, Arc::new(Mutex::new(queue))))
        .collect();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..senders {
        let (addr, work) = queues[sender % queues.len()].clone();
        tasks.spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut sent = Vec::new();
            let mut latencies = Vec::new();
            loop {
                let next = work.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some((id, request)) = next else {
                    return anyhow::Ok((sent, latencies));
                };
                let at = Instant::now();
                sent.push((id, at));
                let (status, body) = connection.post(request).await?;
                latencies.push(at.elapsed());
                anyhow::ensure!(
                    status == StatusCode::OK,
                    "the receiver answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
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

/// `http://host:port/path` -> (the first address `host:port` resolves to, `/path`).
async fn split_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url}: only http:// URLs are sent to"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{authority} resolves to no address"))?;
    let path = if path.is_empty() { "/" } else { path };
    Ok((addr, path.to_string()))
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
