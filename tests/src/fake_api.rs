//! `FakeApi`: an upstream API on loopback that records every request and answers from a
//! script. It honours the idempotency header like a careful real API: a repeated key replays the
//! first answer and does not repeat the side effect, and it counts both.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
};

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the fake answers for a (method, path).
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with this status and JSON body.
    Json(u16, serde_json::Value),
    /// Answer with this status, headers and body.
    Full(u16, Vec<(String, String)>, String),
    /// Never answer; record when the caller gives up (the connection is dropped).
    Hang,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    script: HashMap<(Method, String), Reply>,
    /// Answers already given per idempotency key.
    by_key: HashMap<String, (u16, String)>,
    side_effects: usize,
    replays: usize,
    abandoned: usize,
}

/// A recording fake API on `127.0.0.1:<ephemeral>`; stops when dropped.
pub struct FakeApi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
    idempotency_header: &'static str,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
    idempotency_header: &'static str,
}

impl FakeApi {
    /// Starts the fake. By default every request gets `200 {}`.
    pub async fn start() -> FakeApi {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let idempotency_header = "idempotency-key";
        let shared = Shared {
            inner: inner.clone(),
            changed: changed.clone(),
            idempotency_header,
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        FakeApi {
            addr,
            inner,
            changed,
            idempotency_header,
            _stop: stop,
        }
    }

    /// The base URL to configure as the API's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts the answer for `method path` (exact path, no query).
    pub fn on(&self, method: Method, path: &str, reply: Reply) {
        self.inner
            .lock()
            .unwrap()
            .script
            .insert((method, path.to_string()), reply);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Side effects applied (requests with a new idempotency key, or none).
    pub fn side_effects(&self) -> usize {
        self.inner.lock().unwrap().side_effects
    }

    /// Requests that repeated an idempotency key already seen.
    pub fn replays(&self) -> usize {
        self.inner.lock().unwrap().replays
    }

    /// `Hang` requests whose caller gave up and dropped the connection.
    pub fn abandoned(&self) -> usize {
        self.inner.lock().unwrap().abandoned
    }

    /// Waits until `pred` holds for the fake's state, or panics after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&FakeApi) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if pred(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                assert!(
                    pred(self),
                    "timed out after {timeout:?} waiting for {what}; requests: {:#?}",
                    self.requests()
                );
                return;
            }
        }
    }

    /// The idempotency header name the fake honours.
    pub fn idempotency_header(&self) -> &'static str {
        self.idempotency_header
    }
}

/// Counts a `Hang` request as abandoned when its handler is dropped.
struct AbandonGuard(Shared);

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        self.0.inner.lock().unwrap().abandoned += 1;
        self.0.changed.notify_waiters();
    }
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers.clone(),
        body,
    };
    let key = recorded
        .header(shared.idempotency_header)
        .map(str::to_string);
    let reply = {
        let mut inner = shared.inner.lock().unwrap();
        inner.requests.push(recorded.clone());
        let reply = inner
            .script
            .get(&(recorded.method.clone(), recorded.path.clone()))
            .cloned()
            .unwrap_or(Reply::Json(200, serde_json::json!({})));
        if !matches!(reply, Reply::Hang) {
            match key.as_ref().and_then(|k| inner.by_key.get(k).cloned()) {
                Some((status, body)) => {
                    inner.replays += 1;
                    drop(inner);
                    shared.changed.notify_waiters();
                    return (StatusCode::from_u16(status).unwrap(), body).into_response();
                }
                None => inner.side_effects += 1,
            }
        }
        reply
    };
    shared.changed.notify_waiters();
    match reply {
        Reply::Hang => {
            let _guard = AbandonGuard(shared.clone());
            std::future::pending::<Response>().await
        }
        Reply::Json(status, value) => {
            let text = value.to_string();
            remember(&shared, key, status, &text);
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                text,
            )
                .into_response()
        }
        Reply::Full(status, headers, text) => {
            remember(&shared, key, status, &text);
            let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::try_from(name).unwrap(),
                    value.parse().unwrap(),
                );
            }
            response
        }
    }
}

fn remember(shared: &Shared, key: Option<String>, status: u16, body: &str) {
    if let Some(key) = key
        && (200..300).contains(&status)
    {
        shared
            .inner
            .lock()
            .unwrap()
            .by_key
            .insert(key, (status, body.to_string()));
    }
}
