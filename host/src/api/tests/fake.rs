//! The loopback fake API and the helpers every client test shares: a recording axum server on
//! `127.0.0.1:0` answering from a script or a handler, a config pointing at it, a caller's
//! context, a log capture and a metrics recorder.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, response::IntoResponse};
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::{
    api::{AllowList, ApiClient, ApiRequest, CallContext, Capabilities, RetryMode, RetrySchedule},
    config::ApiConfig,
    ids::{ApiName, PluginName, TenantId},
    secret::SecretRef,
};

/// The static token the tests configure.
pub const TOKEN: &str = "pit-0123456789-secret";

/// What the fake saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: http::Method,
    /// Path and query as sent.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived (tokio time, so paused in paused tests).
    pub at: Instant,
}

impl Seen {
    /// The decoded query parameter `name`, if sent.
    pub fn query(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://x{}", self.uri)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A scripted answer; when the script runs out the fake answers 200 `{"ok":true}`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: format!("{{\"status\":{status}}}").into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(value: serde_json::Value) -> Reply {
        Reply {
            body: value.to_string().into_bytes(),
            ..Reply::status(200)
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Answers a request (the one just recorded) when no script entry is left.
pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Clone, Default)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    handler: Option<Handler>,
    /// Requests being answered now, and the most at once.
    in_flight: Arc<Mutex<(usize, usize)>>,
}

/// An axum server on `127.0.0.1:0` that records every request.
pub struct Fake {
    pub addr: std::net::SocketAddr,
    state: FakeState,
}

impl Fake {
    /// Answers from `script`, then 200 `{"ok":true}`.
    pub async fn start(script: Vec<Reply>) -> Fake {
        Self::serve(FakeState::default(), script).await
    }

    /// Answers every request with `handler`.
    pub async fn with_handler(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Fake {
        let state = FakeState {
            handler: Some(Arc::new(handler)),
            ..FakeState::default()
        };
        Self::serve(state, vec![]).await
    }

    async fn serve(state: FakeState, script: Vec<Reply>) -> Fake {
        state.script.lock().unwrap().extend(script);
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { addr, state }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The most requests the fake was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.in_flight.lock().unwrap().1
    }

    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    pub fn base(&self, path: &str) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }
}

async fn record(State(state): State<FakeState>, req: axum::extract::Request) -> impl IntoResponse {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let seen = Seen {
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    state.seen.lock().unwrap().push(seen.clone());
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = match (scripted, &state.handler) {
        (Some(reply), _) => reply,
        (None, Some(handler)) => handler(&seen),
        (None, None) => Reply {
            body: b"{\"ok\":true}".to_vec(),
            ..Reply::status(200)
        },
    };
    {
        let mut in_flight = state.in_flight.lock().unwrap();
        in_flight.0 += 1;
        in_flight.1 = in_flight.1.max(in_flight.0);
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state.in_flight.lock().unwrap().0 -= 1;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().append(name, value.parse().unwrap());
    }
    response
}

/// A token file that lives as long as the returned guard.
pub fn token_file() -> (tempfile::TempDir, SecretRef) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    (dir, SecretRef::File(path))
}

/// The API `hl` at `base_url`, unpaced, with the `Version` map and idempotency header set.
pub fn config(base_url: reqwest::Url, token: Option<SecretRef>) -> ApiConfig {
    let mut config = ApiConfig::new(ApiName::new("hl"), base_url);
    config.token = token;
    config.idempotency_header = Some(http::HeaderName::from_static("idempotency-key"));
    // Longest prefix first, as config validation sorts them.
    config.versions = vec![
        ("/calendars".into(), "2021-04-15".into()),
        ("/".into(), "2021-07-28".into()),
    ];
    config.max_response = 1024;
    config
}

pub fn apis(config: ApiConfig) -> BTreeMap<ApiName, ApiConfig> {
    [(config.name.clone(), config)].into_iter().collect()
}

/// A client of `config` retrying on `schedule` instead of the configured one.
pub fn client(mut config: ApiConfig, schedule: RetrySchedule) -> ApiClient {
    config.retry = schedule;
    ApiClient::new(&apis(config)).unwrap()
}

/// The grants most tests use.
pub const RULES: &[&str] = &[
    "GET /contacts/*",
    "POST /contacts/*/tags",
    "GET /calendars/**",
    "GET /big",
];

/// Plugin `tagger` of tenant `loc1` holding `rules` on `hl`.
pub fn ctx_with(rules: &[&str], deadline_in: Duration) -> CallContext {
    let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    let mut caps = Capabilities::default();
    caps.apis
        .insert(ApiName::new("hl"), AllowList::parse(&rules).unwrap());
    CallContext {
        plugin: PluginName::new("tagger"),
        tenant: TenantId::new("loc1"),
        capabilities: Arc::new(caps),
        idempotency_key: "evt1-tagger".into(),
        call_number: 3,
        deadline: Instant::now() + deadline_in,
    }
}

pub fn ctx(deadline_in: Duration) -> CallContext {
    ctx_with(RULES, deadline_in)
}

/// The same caller for another tenant and plugin.
pub fn as_caller(mut ctx: CallContext, tenant: &str, plugin: &str) -> CallContext {
    ctx.tenant = TenantId::new(tenant);
    ctx.plugin = PluginName::new(plugin);
    ctx
}

pub fn get(path: &str) -> ApiRequest {
    ApiRequest {
        api: ApiName::new("hl"),
        method: http::Method::GET,
        path: path.into(),
        query: vec![],
        body: None,
        retry: RetryMode::Auto,
        headers: vec![],
    }
}

pub fn post(path: &str, body: serde_json::Value) -> ApiRequest {
    ApiRequest {
        method: http::Method::POST,
        body: Some(body.to_string()),
        ..get(path)
    }
}

/// Delays short enough for real-time tests.
pub fn quick_schedule() -> RetrySchedule {
    RetrySchedule {
        delays: vec![Duration::from_millis(10); 4],
        ..RetrySchedule::default()
    }
}

/// A log sink for one test.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures this thread's log lines (every level) until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A fake answering from `script` and a client of API `hl` on it (no token) with `schedule`.
pub async fn fake_client(script: Vec<Reply>, schedule: RetrySchedule) -> (Fake, ApiClient) {
    let fake = Fake::start(script).await;
    let client = client(config(fake.base(""), None), schedule);
    (fake, client)
}
