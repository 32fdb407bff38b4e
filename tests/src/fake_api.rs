//! `FakeApi`: an upstream API on loopback that records every request and answers from a
//! script. It honours the idempotency header like a careful real API: a repeated key replays the
//! first answer and does not repeat the side effect, and it counts both. Answers can be slowed
//! down per route, and a rate limit can be enforced the way HighLevel does (429 past N requests
//! in any window), counting the refusals.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
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
    /// When the fake received it.
    pub at: Instant,
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
    /// Answer as the inner reply does, after this long (a slow upstream).
    Delayed(Duration, Box<Reply>),
}

/// A limit of `requests` in any window of `per`, as the fake enforces it.
#[derive(Clone, Copy, Debug)]
struct RateLimit {
    requests: usize,
    per: Duration,
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
    rate_limit: Option<RateLimit>,
    /// When the requests inside the rate limit's current window were accepted.
    window: VecDeque<Instant>,
    /// Requests refused with 429 by the rate limit.
    limited: usize,
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

    /// Refuses with `429` (and `Retry-After`) any request beyond `requests` in a sliding window
    /// of `per`, as HighLevel does per app and location; refused requests are recorded but
    /// apply no side effect. See [`FakeApi::limited`].
    pub fn limit_rate(&self, requests: usize, per: Duration) {
        self.inner.lock().unwrap().rate_limit = Some(RateLimit { requests, per });
    }

    /// Requests refused with 429 by the rate limit.
    pub fn limited(&self) -> usize {
        self.inner.lock().unwrap().limited
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
        at: Instant::now(),
    };
    let key = recorded
        .header(shared.idempotency_header)
        .map(str::to_string);
    let (reply, delay) = {
        let mut inner = shared.inner.lock().unwrap();
        inner.requests.push(recorded.clone());
        if let Some(retry_after) = inner.over_rate_limit(recorded.at) {
            inner.limited += 1;
            drop(inner);
            shared.changed.notify_waiters();
            let seconds = retry_after.as_secs_f64().ceil().max(1.0).to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", seconds)],
                "{}",
            )
                .into_response();
        }
        let mut reply = inner
            .script
            .get(&(recorded.method.clone(), recorded.path.clone()))
            .cloned()
            .unwrap_or(Reply::Json(200, serde_json::json!({})));
        let mut delay = Duration::ZERO;
        while let Reply::Delayed(more, inner_reply) = reply {
            delay += more;
            reply = *inner_reply;
        }
        if !matches!(reply, Reply::Hang) {
            match key.as_ref().and_then(|k| inner.by_key.get(k).cloned()) {
                Some((status, body)) => {
                    // A replay answers what the first call got, without the side effect.
                    inner.replays += 1;
                    reply = Reply::Full(status, Vec::new(), body);
                }
                None => inner.side_effects += 1,
            }
        }
        (reply, delay)
    };
    shared.changed.notify_waiters();
    // Only a delayed reply sleeps: even a zero sleep waits for the timer's next millisecond
    // tick, which made every answer about 1 ms late.
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
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
        Reply::Delayed(..) => unreachable!("a delayed reply was unwrapped above"),
    }
}

impl Inner {
    /// Counts a request arriving `at` against the rate limit: None when it is within it (and
    /// now counted), else how long until the window has room.
    fn over_rate_limit(&mut self, at: Instant) -> Option<Duration> {
        let limit = self.rate_limit?;
        while self
            .window
            .front()
            .is_some_and(|t| at.duration_since(*t) >= limit.per)
        {
            self.window.pop_front();
        }
        if self.window.len() >= limit.requests {
            let oldest = *self.window.front()?;
            return Some(limit.per.saturating_sub(at.duration_since(oldest)));
        }
        self.window.push_back(at);
        None
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
