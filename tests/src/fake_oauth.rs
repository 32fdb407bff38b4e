//! `FakeOAuth`: a HighLevel-like OAuth server and API on loopback, strict the way the real one
//! is, recording what it got:
//! - `POST /oauth/token` (form): `authorization_code` for a scripted code; `refresh_token` with
//!   single-use refresh tokens, where a repeat of a spent token within 30 s gets the same new
//!   pair and anything else is `400 invalid_grant`;
//! - `POST /oauth/locationToken` (form, company bearer): mints a location token;
//! - `GET /oauth/installedLocations`: the scripted locations of a company;
//! - any other path is the API: `200 {"tenant": ...}` for a live access token, else `401`.
//!
//! Tokens are random and unique, so a test can grep for each of them. Refresh answers can be
//! held (never sent: the caller may be killed meanwhile), slowed down, or failed with a status.

use std::{
    collections::HashMap,
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
use serde_json::json;

/// How long a spent refresh token still returns the pair it was redeemed for.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// One request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    /// Form fields (token endpoints) or empty.
    pub form: HashMap<String, String>,
    pub body: Bytes,
    /// The bearer token sent, if any.
    pub bearer: Option<String>,
}

/// What a code or a mint grants.
#[derive(Clone, Debug)]
pub struct Installee {
    /// `Location` or `Company`.
    pub user_type: String,
    pub location: Option<String>,
    pub company: Option<String>,
}

#[derive(Clone, Debug)]
struct Access {
    tenant: String,
    expires: Instant,
}

#[derive(Clone, Debug)]
struct Pair {
    access: String,
    refresh: String,
}

#[derive(Clone, Debug)]
struct RefreshState {
    installee: Installee,
    /// Set when redeemed: when, and for which pair.
    spent: Option<(Instant, Pair)>,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    codes: HashMap<String, Installee>,
    locations: HashMap<String, Vec<String>>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, RefreshState>,
    /// Every token value ever issued (for plaintext greps).
    issued: Vec<String>,
    lifetime: Option<Duration>,
    /// Refresh requests to hold unanswered (counted down).
    hold_refreshes: usize,
    /// Answer refreshes with this status and `{"error": ...}` (None: normally).
    fail_refresh: Option<(u16, String)>,
    /// How long each refresh answer takes (a slow token endpoint).
    refresh_delay: Duration,
}

/// The fake; stops when dropped.
pub struct FakeOAuth {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
}

impl FakeOAuth {
    /// Starts the fake; access tokens live `lifetime` (default 24 h).
    pub async fn start(lifetime: Duration) -> FakeOAuth {
        let inner = Arc::new(Mutex::new(Inner {
            lifetime: Some(lifetime),
            ..Inner::default()
        }));
        let changed = Arc::new(tokio::sync::Notify::new());
        let shared = Shared {
            inner: inner.clone(),
            changed: changed.clone(),
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
        FakeOAuth {
            addr,
            inner,
            changed,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:<port>`: the API's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `[apis.<name>.oauth]` table for an API named `api` on this fake, with the client
    /// id and secret read from files the caller writes (`client.id`, `client.secret`).
    pub fn oauth_toml(&self, api: &str, request_timeout: &str) -> String {
        format!(
            "[apis.{api}.oauth]\ntoken_url = \"{}/oauth/token\"\n\
             client_id = {{ file = \"client.id\" }}\nclient_secret = {{ file = \"client.secret\" }}\n\
             redirect_url = \"https://hooks.test/oauth/callback/{api}\"\n\
             location_token_path = \"/oauth/locationToken\"\n\
             installed_locations_path = \"/oauth/installedLocations\"\napp_id = \"{}\"\n\
             request_timeout = \"{request_timeout}\"\n",
            self.url(),
            crate::APP_ID
        )
    }

    /// Access tokens issued from now on live `lifetime` (those issued before keep theirs).
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.inner.lock().unwrap().lifetime = Some(lifetime);
    }

    /// Makes `code` grant tokens to `installee`.
    pub fn code(&self, code: &str, installee: Installee) {
        self.inner
            .lock()
            .unwrap()
            .codes
            .insert(code.into(), installee);
    }

    /// The installed locations of `company`.
    pub fn locations(&self, company: &str, locations: &[&str]) {
        self.inner.lock().unwrap().locations.insert(
            company.into(),
            locations.iter().map(|l| l.to_string()).collect(),
        );
    }

    /// Makes the API refuse `token` from now on (as after a revocation).
    pub fn revoke(&self, token: &str) {
        self.inner.lock().unwrap().access.remove(token);
    }

    /// Makes the API accept the static `token` for `tenant`.
    pub fn accept_static(&self, token: &str, tenant: &str) {
        self.inner.lock().unwrap().access.insert(
            token.into(),
            Access {
                tenant: tenant.into(),
                expires: Instant::now() + Duration::from_secs(86_400),
            },
        );
    }

    /// Holds the next `n` refresh answers forever (the token is spent all the same).
    pub fn hold_refreshes(&self, n: usize) {
        self.inner.lock().unwrap().hold_refreshes = n;
    }

    /// Makes every refresh answer take `delay` from now on: a refresh stays in flight that long,
    /// so callers that need the token meanwhile must wait for it rather than refresh again.
    pub fn slow_refreshes(&self, delay: Duration) {
        self.inner.lock().unwrap().refresh_delay = delay;
    }

    /// Answers refreshes with `status` and `{"error": code}` until cleared with None.
    pub fn fail_refreshes(&self, failure: Option<(u16, &str)>) {
        self.inner.lock().unwrap().fail_refresh = failure.map(|(s, c)| (s, c.to_string()));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Token endpoint requests with `grant_type`.
    pub fn grants(&self, grant_type: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.path == "/oauth/token"
                    && s.form.get("grant_type").map(String::as_str) == Some(grant_type)
            })
            .collect()
    }

    /// API requests (not `/oauth/...`).
    pub fn api_calls(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !s.path.starts_with("/oauth/"))
            .collect()
    }

    /// Every token value issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }

    /// Whether `token` is a live access token.
    pub fn is_live(&self, token: &str) -> bool {
        self.inner
            .lock()
            .unwrap()
            .access
            .get(token)
            .is_some_and(|a| a.expires > Instant::now())
    }

    /// Waits until `pred` holds, or panics after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&FakeOAuth) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if pred(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                assert!(pred(self), "timed out after {timeout:?} waiting for {what}");
                return;
            }
        }
    }
}

impl Inner {
    fn issue(&mut self, installee: &Installee) -> Pair {
        let tenant = match installee.user_type.as_str() {
            "Company" => installee.company.clone(),
            _ => installee.location.clone(),
        }
        .unwrap_or_default();
        let pair = Pair {
            access: format!("at-{}", uuid::Uuid::new_v4().simple()),
            refresh: format!("rt-{}", uuid::Uuid::new_v4().simple()),
        };
        let lifetime = self.lifetime.unwrap_or(Duration::from_secs(86_400));
        self.access.insert(
            pair.access.clone(),
            Access {
                tenant,
                expires: Instant::now() + lifetime,
            },
        );
        self.refresh.insert(
            pair.refresh.clone(),
            RefreshState {
                installee: installee.clone(),
                spent: None,
            },
        );
        self.issued.push(pair.access.clone());
        self.issued.push(pair.refresh.clone());
        pair
    }

    fn grant_json(&self, pair: &Pair, installee: &Installee) -> serde_json::Value {
        json!({
            "access_token": pair.access,
            "refresh_token": pair.refresh,
            "token_type": "Bearer",
            "expires_in": self.lifetime.unwrap_or(Duration::from_secs(86_400)).as_secs(),
            "scope": "contacts.readonly contacts.write",
            "userType": installee.user_type,
            "locationId": installee.location,
            "companyId": installee.company,
        })
    }
}

fn error(status: u16, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({ "error": code, "error_description": "refused by the fake" }).to_string(),
    )
        .into_response()
}

fn ok(value: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let form: HashMap<String, String> = if parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        HashMap::new()
    };
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let seen = Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers.clone(),
        form: form.clone(),
        body,
        bearer: bearer.clone(),
    };
    let (response, hold, delay) = {
        let mut inner = shared.inner.lock().unwrap();
        inner.seen.push(seen.clone());
        let refresh = seen.form.get("grant_type").map(String::as_str) == Some("refresh_token");
        let delay = if refresh {
            inner.refresh_delay
        } else {
            Duration::ZERO
        };
        let (response, hold) = answer(&mut inner, &seen);
        (response, hold, delay)
    };
    shared.changed.notify_waiters();
    tokio::time::sleep(delay).await;
    if hold {
        std::future::pending::<()>().await;
    }
    response
}

/// The answer, and whether to hold it.
fn answer(inner: &mut Inner, seen: &Seen) -> (Response, bool) {
    let live = |inner: &Inner| {
        seen.bearer
            .as_ref()
            .and_then(|t| inner.access.get(t))
            .filter(|a| a.expires > Instant::now())
            .cloned()
    };
    match seen.path.as_str() {
        "/oauth/token" => {
            let has_client = seen
                .form
                .get("client_id")
                .is_some_and(|v| v == "client-id-1")
                && seen
                    .form
                    .get("client_secret")
                    .is_some_and(|v| v == "client-secret-1");
            if !has_client {
                return (error(401, "invalid_client"), false);
            }
            match seen.form.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    let code = seen.form.get("code").cloned().unwrap_or_default();
                    match inner.codes.remove(&code) {
                        Some(installee) => {
                            let pair = inner.issue(&installee);
                            (ok(inner.grant_json(&pair, &installee)), false)
                        }
                        None => (error(400, "invalid_grant"), false),
                    }
                }
                Some("refresh_token") => {
                    if let Some((status, code)) = inner.fail_refresh.clone() {
                        return (error(status, &code), false);
                    }
                    let token = seen.form.get("refresh_token").cloned().unwrap_or_default();
                    let Some(state) = inner.refresh.get(&token).cloned() else {
                        return (error(400, "invalid_grant"), false);
                    };
                    let pair = match state.spent {
                        Some((at, pair)) if at.elapsed() <= REPEAT_WINDOW => pair,
                        Some(_) => return (error(400, "invalid_grant"), false),
                        None => {
                            let pair = inner.issue(&state.installee);
                            inner.refresh.get_mut(&token).unwrap().spent =
                                Some((Instant::now(), pair.clone()));
                            pair
                        }
                    };
                    let hold = inner.hold_refreshes > 0;
                    if hold {
                        inner.hold_refreshes -= 1;
                    }
                    (ok(inner.grant_json(&pair, &state.installee)), hold)
                }
                _ => (error(400, "unsupported_grant_type"), false),
            }
        }
        "/oauth/locationToken" => {
            let Some(company) = live(inner) else {
                return (error(401, "invalid_token"), false);
            };
            let location = seen.form.get("locationId").cloned().unwrap_or_default();
            if seen.form.get("companyId") != Some(&company.tenant) || location.is_empty() {
                return (error(400, "invalid_request"), false);
            }
            let installee = Installee {
                user_type: "Location".into(),
                location: Some(location),
                company: Some(company.tenant),
            };
            let pair = inner.issue(&installee);
            (ok(inner.grant_json(&pair, &installee)), false)
        }
        "/oauth/installedLocations" => {
            let Some(company) = live(inner) else {
                return (error(401, "invalid_token"), false);
            };
            let locations = inner
                .locations
                .get(&company.tenant)
                .cloned()
                .unwrap_or_default();
            let list: Vec<_> = locations
                .iter()
                .map(|l| json!({ "_id": l, "name": l, "isInstalled": true }))
                .collect();
            (ok(json!({ "locations": list, "count": list.len() })), false)
        }
        _ => match live(inner) {
            Some(access) => (ok(json!({ "tenant": access.tenant })), false),
            None => (error(401, "invalid_token"), false),
        },
    }
}
