//! `POST /webhooks/{source}`: the ingress endpoint.
//!
//! The path of one request, in order: the source must exist (404); a concurrency permit must be
//! free (503 + `Retry-After`, never a queue); the body is read under a hard size cap enforced
//! while reading (413) and a deadline (408); the source verifies the signature over the raw
//! bytes (401); the envelope and the source's rules accept the event (400 / 403); the event
//! and one delivery per subscribed plugin are stored in one durable transaction; only then is
//! `200 {"event_id", "duplicate"}` sent.
//!
//! Invariants: nothing is stored and no plugin runs unless verification and the envelope rules
//! passed; a 200 means the store committed (or already had) the event; the body is never
//! logged; every error is JSON via `server::error::HttpError`.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Request, State, rejection::PathRejection},
    http::{HeaderMap, header::CONTENT_LENGTH},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};

use super::error::HttpError;
use crate::{
    api::ApiClient,
    ids::{EventId, now_ms},
    plugins::SharedPlugins,
    sources::{Source, Sources},
    store::{AnyStore, IngestOutcome, NewDelivery, NewEvent, Store, StoreError},
};

/// What the ingress router needs.
pub struct IngressState {
    pub sources: Arc<Sources>,
    /// The live plugin set: `subscribers(source, kind)` decides the deliveries.
    pub plugins: SharedPlugins,
    pub store: AnyStore,
    /// Woken (`notify_one`) after each new insert so idle dispatch workers start at once.
    pub wake: Arc<Notify>,
    /// Largest accepted body in bytes, enforced while reading.
    pub max_body: usize,
    /// Time allowed for the whole body once the handler runs.
    pub body_timeout: Duration,
    /// Ingress requests handled at once; more get 503 `overloaded`.
    pub max_concurrent: usize,
    /// The outbound API client, told about each new event so it drops the tenant's cached
    /// reference data that the event's kind invalidates (None in tests that need no client).
    pub api: Option<ApiClient>,
}

/// What a 503 asks the sender to wait: the in-flight requests finish in well under a second.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The `source` label for requests to a name that is not configured. Request paths are not
/// used as label values, so a scan of random paths cannot grow the metric's series.
const UNKNOWN_SOURCE_LABEL: &str = "_unknown";

/// Serves `POST /webhooks/{source}`; other methods on that path get 405 JSON.
pub fn router(state: IngressState) -> Router {
    build(Shared {
        api: state.api,
        sources: state.sources,
        plugins: state.plugins,
        sink: state.store,
        wake: state.wake,
        max_body: state.max_body,
        body_timeout: state.body_timeout,
        // At least one permit, or every request would be refused; Semaphore::new panics above
        // MAX_PERMITS.
        permits: Arc::new(Semaphore::new(
            state.max_concurrent.clamp(1, Semaphore::MAX_PERMITS),
        )),
    })
}

/// Where accepted events go: the store in the server, a recorder in unit tests (the handler
/// is generic over this one method so its logic is testable without a database).
trait EventSink: Send + Sync + 'static {
    fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send;
}

impl EventSink for AnyStore {
    fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send {
        Store::ingest(self, event, deliveries)
    }
}

struct Shared<S> {
    api: Option<ApiClient>,
    sources: Arc<Sources>,
    plugins: SharedPlugins,
    sink: S,
    wake: Arc<Notify>,
    max_body: usize,
    body_timeout: Duration,
    permits: Arc<Semaphore>,
}

fn build<S: EventSink>(shared: Shared<S>) -> Router {
    Router::new()
        .route(
            "/webhooks/{source}",
            post(receive::<S>).fallback(|| async { HttpError::method_not_allowed() }),
        )
        .with_state(Arc::new(shared))
}

/// The `200` answer.
#[derive(Serialize)]
struct Ack {
    event_id: EventId,
    duplicate: bool,
}

async fn receive<S: EventSink>(
    State(shared): State<Arc<Shared<S>>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    // A path that does not even decode cannot name a source either.
    let source = path
        .ok()
        .and_then(|Path(name)| shared.sources.get(&name).cloned());
    let Some(source) = source else {
        count(UNKNOWN_SOURCE_LABEL.to_string(), "unknown_source");
        tracing::debug!("webhook for an unknown source refused");
        return HttpError::unknown_source().into_response();
    };
    let label = source.name().to_string();
    match handle(&shared, &source, request).await {
        Ok(ack) => {
            count(
                label,
                if ack.duplicate {
                    "duplicate"
                } else {
                    "accepted"
                },
            );
            Json(ack).into_response()
        }
        Err(e) => {
            count(label, e.code());
            e.into_response()
        }
    }
}

fn count(source: String, outcome: &'static str) {
    metrics::counter!("wasmhook_webhooks_total", "source" => source, "outcome" => outcome)
        .increment(1);
}

async fn handle<S: EventSink>(
    shared: &Shared<S>,
    source: &Arc<Source>,
    request: Request,
) -> Result<Ack, HttpError> {
    // Held until the answer is ready, so it bounds everything below, the store included.
    let _permit = Arc::clone(&shared.permits)
        .try_acquire_owned()
        .map_err(|_| HttpError::overloaded(RETRY_AFTER))?;
    let name = source.name().as_str();
    let (parts, body) = request.into_parts();
    let body = read_body(body, &parts.headers, shared.max_body, shared.body_timeout)
        .await
        .inspect_err(|e| tracing::debug!(source = name, code = e.code(), "webhook body refused"))?;

    let started = Instant::now();
    let verified = source.verify(&parts.headers, body);
    metrics::histogram!("wasmhook_verify_seconds", "source" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    // Anyone can send these, so they are logged at debug level only (and counted).
    let verified = verified.map_err(|e| {
        tracing::debug!(source = name, code = e.code(), error = %e, "webhook signature refused");
        HttpError::from(e)
    })?;
    let proof = verified.proof();

    let received_at_ms = now_ms();
    // Past verification only the genuine sender can reach this, so refusals are worth a warning
    // (a wrong `app_id` or a clock problem shows up here).
    let envelope = verified.envelope(received_at_ms).map_err(|e| {
        tracing::warn!(source = name, code = e.code(), error = %e, "verified webhook refused");
        HttpError::from(e)
    })?;

    let deliveries = shared.plugins.current().subscribers(name, &envelope.kind);
    let (event_id, kind, tenant) = (
        envelope.id.clone(),
        envelope.kind.clone(),
        envelope.tenant.clone(),
    );
    let event = envelope.into_new_event(verified, received_at_ms);
    match shared.sink.ingest(event, deliveries).await {
        Ok(IngestOutcome::Inserted { deliveries }) => {
            shared.wake.notify_one();
            // Only a new event invalidates: a duplicate says nothing the cache has not seen.
            if let (Some(client), Some(api)) = (&shared.api, source.api()) {
                client.invalidate(api, &tenant, &kind);
            }
            tracing::info!(
                source = name,
                event_id = %event_id,
                kind = %kind,
                tenant = %tenant,
                deliveries = deliveries.len(),
                signature = proof.kind.as_str(),
                key = proof.key,
                "webhook accepted"
            );
            Ok(Ack {
                event_id,
                duplicate: false,
            })
        }
        Ok(IngestOutcome::Duplicate) => {
            tracing::info!(
                source = name,
                event_id = %event_id,
                kind = %kind,
                tenant = %tenant,
                "duplicate webhook acknowledged"
            );
            Ok(Ack {
                event_id,
                duplicate: true,
            })
        }
        Err(e) => {
            tracing::error!(source = name, event_id = %event_id, error = %e, "storing a webhook failed");
            Err(HttpError::internal())
        }
    }
}

/// Reads the whole body, refusing it as soon as it exceeds `max` bytes (never buffering more)
/// or when it is not complete within `timeout`.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, HttpError> {
    // A declared length over the cap is refused before reading a byte.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(HttpError::body_too_large(max));
    }
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Err(_elapsed) => Err(HttpError::body_timeout(timeout)),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(HttpError::body_too_large(max))
        }
        Ok(Err(_)) => Err(HttpError::bad_body()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::http::{Method, StatusCode, header::RETRY_AFTER};
    use base64::{Engine, engine::general_purpose::STANDARD};
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::{
        config::{HighLevelConfig, SchemeConfig, SourceConfig},
        ids::{DeliveryId, SourceName},
        sources::{highlevel::SIGNATURE_HEADER, timestamp::format_rfc3339_ms},
    };

    const APP: &str = "app-1";

    /// Records ingested events, deduplicating on (source, id) like a store; or fails.
    #[derive(Clone, Default)]
    struct Recorder {
        events: Arc<Mutex<Vec<NewEvent>>>,
        fail: bool,
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
    }

    struct Harness {
        key: SigningKey,
        sink: Recorder,
        wake: Arc<Notify>,
        permits: Arc<Semaphore>,
        router: Router,
    }

    fn harness(
        sink: Recorder,
        max_body: usize,
        body_timeout: Duration,
        max_concurrent: usize,
    ) -> Harness {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let sources = Sources::from_config(&[SourceConfig {
            name: SourceName::new("hl"),
            api: None,
            scheme: SchemeConfig::HighLevel(HighLevelConfig {
                app_id: APP.into(),
                ed25519_keys: vec![key.verifying_key()],
                rsa_keys: vec![],
                max_age: Duration::from_secs(3600),
                require_timestamp: false,
            }),
        }])
        .unwrap();
        let wake = Arc::new(Notify::new());
        let permits = Arc::new(Semaphore::new(max_concurrent));
        let router = build(Shared {
            api: None,
            sources: Arc::new(sources),
            plugins: SharedPlugins::default(),
            sink: sink.clone(),
            wake: wake.clone(),
            max_body,
            body_timeout,
            permits: permits.clone(),
        });
        Harness {
            key,
            sink,
            wake,
            permits,
            router,
        }
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
}
