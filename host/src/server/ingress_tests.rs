//! Unit tests of the ingress handler: the order of its checks, its answers, and that nothing
//! is stored unless every check passed. The store is replaced by a recorder that deduplicates
//! and applies `installations::decide` like a real one.

use std::{
    collections::HashMap,
    sync::{Mutex, atomic::Ordering},
};

use axum::{
    body::Body,
    http::{HeaderMap, Method, StatusCode, header::RETRY_AFTER},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::{
    config::{HighLevelConfig, SchemeConfig, SlackConfig, SourceConfig},
    ids::{DeliveryId, SourceName, TenantId},
    installations::{Current, Decision, InstallationState, decide},
    secret::SecretRef,
    sources::{Sources, highlevel::SIGNATURE_HEADER, timestamp::format_rfc3339_ms},
};

const APP: &str = "app-1";

/// Records ingested events, deduplicating on (source, id) like a store, and keeps
/// installations like one; or fails.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<NewEvent>>>,
    installations: Arc<Mutex<HashMap<TenantId, (InstallationState, i64)>>>,
    fail: bool,
}

impl Recorder {
    fn duplicate(&self, event: &NewEvent) -> bool {
        self.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.source == event.source && e.id == event.id)
    }
}

impl EventSink for Recorder {
    async fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> Result<IngestOutcome, StoreError> {
        if self.fail {
            return Err(StoreError::Corrupt(
                "disk on fire at /var/lib/secret".into(),
            ));
        }
        let mut events = self.events.lock().unwrap();
        if events
            .iter()
            .any(|e| e.source == event.source && e.id == event.id)
        {
            return Ok(IngestOutcome::Duplicate);
        }
        events.push(event);
        Ok(IngestOutcome::Inserted {
            deliveries: deliveries.iter().map(|_| DeliveryId::generate()).collect(),
        })
    }

    async fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> Result<GatedOutcome, StoreError> {
        if self.duplicate(&event) {
            return Ok(GatedOutcome::Duplicate);
        }
        let current = Current {
            tenant: self
                .installations
                .lock()
                .unwrap()
                .get(&gate.facts.tenant)
                .copied(),
            company: None,
        };
        match decide(gate.require, &gate.facts, &current) {
            Decision::Refuse(refusal) => Ok(GatedOutcome::Refused(refusal)),
            Decision::Accept { change, .. } => {
                if let Some(change) = change {
                    self.installations
                        .lock()
                        .unwrap()
                        .insert(change.tenant, (change.state, change.at_ms));
                }
                self.ingest(event, deliveries).await.map(GatedOutcome::from)
            }
        }
    }
}

struct Harness {
    key: SigningKey,
    sink: Recorder,
    wake: Arc<Notify>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared<Recorder>>,
    router: Router,
    /// Holds the Slack source's secret file.
    _dir: tempfile::TempDir,
}

/// The Slack source's signing secret.
const SLACK_SECRET: &str = "slack-signing-secret";

fn harness_with(
    sink: Recorder,
    max_body: usize,
    body_timeout: Duration,
    max_concurrent: usize,
    require_installation: bool,
) -> Harness {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("slack");
    std::fs::write(&secret, SLACK_SECRET).unwrap();
    let sources = Sources::from_config(&[
        SourceConfig::new(
            SourceName::new("hl"),
            None,
            SchemeConfig::HighLevel(HighLevelConfig {
                app_id: APP.into(),
                ed25519_keys: vec![key.verifying_key()],
                rsa_keys: vec![],
                max_age: Duration::from_secs(3600),
                require_timestamp: false,
                require_installation,
                signing_key: None,
            }),
        ),
        SourceConfig::new(
            SourceName::new("slack"),
            None,
            SchemeConfig::Slack(SlackConfig {
                secrets: vec![SecretRef::File(secret)],
                tolerance: Duration::from_secs(300),
            }),
        ),
    ])
    .unwrap();
    let wake = Arc::new(Notify::new());
    let permits = Arc::new(Semaphore::new(max_concurrent));
    let shared = Arc::new(Shared {
        api: None,
        sources: Arc::new(LiveSources::new(sources)),
        plugins: SharedPlugins::default(),
        sink: sink.clone(),
        wake: wake.clone(),
        max_body,
        body_timeout,
        permits: permits.clone(),
        bytes_read: AtomicU64::new(0),
    });
    let router = build_shared(shared.clone());
    Harness {
        key,
        sink,
        wake,
        permits,
        shared,
        router,
        _dir: dir,
    }
}

fn harness(
    sink: Recorder,
    max_body: usize,
    body_timeout: Duration,
    max_concurrent: usize,
) -> Harness {
    harness_with(sink, max_body, body_timeout, max_concurrent, false)
}

fn default_harness() -> Harness {
    harness(Recorder::default(), 64 * 1024, Duration::from_secs(5), 8)
}

fn event_body(fields: Value) -> Vec<u8> {
    let mut body = json!({
        "type": "ContactCreate",
        "locationId": "loc-1",
        "appId": APP,
        "webhookId": "wh-1",
        "timestamp": format_rfc3339_ms(now_ms()),
        "email": "private@example.com",
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    serde_json::to_vec(&body).unwrap()
}

impl Harness {
    fn signed(&self, body: &[u8]) -> Request {
        let signature = STANDARD.encode(self.key.sign(body).to_bytes());
        Request::post("/webhooks/hl")
            .header(SIGNATURE_HEADER, signature)
            .body(Body::from(body.to_vec()))
            .unwrap()
    }

    async fn send(&self, request: Request) -> (StatusCode, HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (parts.status, parts.headers, json)
    }

    fn stored(&self) -> usize {
        self.sink.events.lock().unwrap().len()
    }
}

#[tokio::test]
async fn a_signed_event_is_stored_once_and_a_repeat_is_a_duplicate() {
    let h = default_harness();
    let body = event_body(json!({}));
    let (status, _, json) = h.send(h.signed(&body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json, json!({ "event_id": "wh-1", "duplicate": false }));
    // The wake-up was signalled (a stored permit completes this at once).
    tokio::time::timeout(Duration::from_secs(1), h.wake.notified())
        .await
        .unwrap();
    {
        let events = h.sink.events.lock().unwrap();
        let event = &events[0];
        assert_eq!(event.payload, body, "the raw bytes are stored as signed");
        assert_eq!(event.source.as_str(), "hl");
        assert_eq!(event.kind, "ContactCreate");
        assert_eq!(event.tenant.as_str(), "loc-1");
        assert!(event.received_at_ms > 0);
    }

    let (status, _, json) = h.send(h.signed(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, json!({ "event_id": "wh-1", "duplicate": true }));
    assert_eq!(h.stored(), 1);
}

#[tokio::test]
async fn unknown_sources_and_other_methods_get_json_errors() {
    let h = default_harness();
    let request = Request::post("/webhooks/nope")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, json) = h.send(request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "unknown_source");

    let request = Request::builder()
        .method(Method::GET)
        .uri("/webhooks/hl")
        .body(Body::empty())
        .unwrap();
    let (status, _, json) = h.send(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn unsigned_and_forged_requests_are_401_and_store_nothing() {
    let h = default_harness();
    let body = event_body(json!({}));
    let request = Request::post("/webhooks/hl")
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, _, json) = h.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "missing_signature");

    let mut request = h.signed(&body);
    *request.body_mut() = Body::from(event_body(json!({ "appId": "forged" })));
    let (status, _, json) = h.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "bad_signature");
    assert_eq!(h.stored(), 0);
}

#[tokio::test]
async fn verified_but_refused_events_are_400_or_403_and_store_nothing() {
    let h = default_harness();
    let cases = [
        (b"[1]".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            event_body(json!({ "locationId": null })),
            StatusCode::BAD_REQUEST,
            "missing_tenant",
        ),
        (
            event_body(json!({ "appId": "other" })),
            StatusCode::FORBIDDEN,
            "wrong_app",
        ),
        (
            event_body(json!({ "appId": null })),
            StatusCode::FORBIDDEN,
            "missing_app_id",
        ),
        (
            event_body(json!({ "timestamp": 1000 })),
            StatusCode::FORBIDDEN,
            "too_old",
        ),
        (
            event_body(json!({ "timestamp": "soon" })),
            StatusCode::BAD_REQUEST,
            "bad_timestamp",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, _, json) = h.send(h.signed(&body)).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{json}"
        );
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("private@example.com"),
            "body leaked: {message}"
        );
    }
    assert_eq!(h.stored(), 0);
}

/// Serves `router` on a loopback port (for tests that need a real, slow client).
async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Opens a connection and writes `head` (request line + headers, without the blank line)
/// and then `body` bytes, leaving the connection open: the client then stalls.
async fn stalling_client(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nhost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    stream
}

/// Reads one response (status and JSON body) from `stream`, within five seconds.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, Value) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap();
                if body.len() >= length || n == 0 {
                    let status = head[9..12].parse().unwrap();
                    return (status, serde_json::from_str(&body[..length]).unwrap());
                }
            }
            assert!(n > 0, "connection closed before a response");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no response in time")
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_by_declared_length_and_while_streaming() {
    let h = harness(Recorder::default(), 100, Duration::from_secs(30), 8);
    let big = vec![b' '; 101];
    let (status, _, json) = h.send(h.signed(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"]["code"], "body_too_large");

    // Chunked, no declared length: 120 bytes arrive and then the client stalls. The refusal
    // must come from counting while reading, not from waiting for the end.
    let addr = serve(h.router.clone()).await;
    let chunk = format!("3c\r\n{}\r\n", " ".repeat(60));
    let mut stream = stalling_client(
        addr,
        "POST /webhooks/hl HTTP/1.1\r\ntransfer-encoding: chunked\r\nx-ghl-signature: x",
        format!("{chunk}{chunk}").as_bytes(),
    )
    .await;
    let (status, json) = read_response(&mut stream).await;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["code"], "body_too_large");
    assert_eq!(h.stored(), 0);
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    let h = harness(Recorder::default(), 1024, Duration::from_millis(200), 8);
    let addr = serve(h.router.clone()).await;
    let started = Instant::now();
    let mut stream = stalling_client(
        addr,
        "POST /webhooks/hl HTTP/1.1\r\ncontent-length: 10\r\nx-ghl-signature: x",
        b"{",
    )
    .await;
    let (status, json) = read_response(&mut stream).await;
    assert_eq!(status, 408, "{json}");
    assert_eq!(json["error"]["code"], "body_timeout");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn over_the_concurrency_cap_is_503_with_retry_after_not_a_queue() {
    let h = harness(Recorder::default(), 1024, Duration::from_secs(30), 1);
    let addr = serve(h.router.clone()).await;
    // One request holds the only permit: its body never finishes.
    let holder = stalling_client(
        addr,
        "POST /webhooks/hl HTTP/1.1\r\ncontent-length: 10\r\nx-ghl-signature: x",
        b"{",
    )
    .await;
    let wait_for = |free: bool| {
        let permits = h.permits.clone();
        tokio::time::timeout(Duration::from_secs(5), async move {
            while (permits.available_permits() > 0) != free {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    wait_for(false).await.unwrap();

    let (status, headers, json) = h.send(h.signed(&event_body(json!({})))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "overloaded");
    assert_eq!(headers.get(RETRY_AFTER).unwrap(), "1");

    // The stalled client goes away: its permit comes back and requests are served again.
    drop(holder);
    wait_for(true).await.unwrap();
    let (status, _, _) = h.send(h.signed(&event_body(json!({})))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_store_failure_is_a_generic_500() {
    let sink = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let h = harness(sink, 1024, Duration::from_secs(5), 8);
    let (status, _, json) = h.send(h.signed(&event_body(json!({})))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json["error"]["code"], "internal_error");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("fire") && !message.contains("/var"),
        "{message}"
    );
}

#[tokio::test]
async fn an_uninstalled_tenant_is_refused_until_install_and_again_after_uninstall() {
    let h = harness_with(
        Recorder::default(),
        64 * 1024,
        Duration::from_secs(5),
        8,
        true,
    );
    let event = |id: &str, kind: &str| event_body(json!({ "webhookId": id, "type": kind }));

    let (status, _, json) = h.send(h.signed(&event("wh-1", "ContactCreate"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(json["error"]["code"], "not_installed");
    assert_eq!(h.stored(), 0);

    let (status, _, json) = h.send(h.signed(&event("wh-install", "INSTALL"))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, _, _) = h.send(h.signed(&event("wh-2", "ContactCreate"))).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, _) = h.send(h.signed(&event("wh-uninstall", "UNINSTALL"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, json) = h.send(h.signed(&event("wh-3", "ContactCreate"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["code"], "uninstalled");
    assert_eq!(h.stored(), 3, "INSTALL, one event, UNINSTALL");
}

#[tokio::test]
async fn a_signed_slack_url_verification_is_answered_and_not_stored() {
    let h = default_harness();
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = (now_ms() / 1000).to_string();
    let signature = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    };
    let request = |signature: &str| {
        Request::post("/webhooks/slack")
            .header("x-slack-request-timestamp", ts.as_str())
            .header("x-slack-signature", signature)
            .body(Body::from(body.to_vec()))
            .unwrap()
    };
    let (status, _, json) = h.send(request(&signature)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
    );
    // An unsigned check is no check.
    let (status, _, _) = h.send(request("v0=00")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.stored(), 0);
}

#[tokio::test]
async fn only_up_to_the_cap_is_read_from_an_endless_body() {
    let h = harness(Recorder::default(), 1000, Duration::from_secs(30), 8);
    let addr = serve(h.router.clone()).await;
    // A chunked body of 100-byte chunks that the client keeps sending.
    let chunk = format!("64\r\n{}\r\n", "x".repeat(100));
    let mut stream = stalling_client(
        addr,
        "POST /webhooks/hl HTTP/1.1\r\ntransfer-encoding: chunked\r\nx-ghl-signature: x",
        chunk.repeat(50).as_bytes(),
    )
    .await;
    let (status, json) = read_response(&mut stream).await;
    assert_eq!(status, 413, "{json}");
    let read = h.shared.bytes_read.load(Ordering::Relaxed);
    assert!(
        (1000..=1100).contains(&read),
        "read {read} bytes of a 5000-byte body"
    );
}
