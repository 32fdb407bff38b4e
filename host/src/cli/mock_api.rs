//! The recording mock API behind `wasmhook dev` and `wasmhook test`: one loopback listener per
//! configured API, answering every call with canned JSON ([`Responses`]) and recording it, so
//! plugins can be tried offline and their calls seen.
//!
//! Invariants: it listens on `127.0.0.1` only, on a port the OS picks; it keeps at most
//! [`MAX_RECORDED`] calls (the oldest are dropped) and logs each one, with its body cut to
//! [`MAX_LOGGED_BODY`] characters.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Bytes, extract::State, http::Method, response::IntoResponse};

use super::responses::Responses;
use crate::{config::ApiConfig, ids::ApiName};

/// Calls kept in memory.
pub const MAX_RECORDED: usize = 1000;

/// Characters of a request body written to the log.
pub const MAX_LOGGED_BODY: usize = 2000;

/// One call the mock answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockCall {
    /// The API's name in the config.
    pub api: String,
    /// The HTTP method.
    pub method: String,
    /// The path, with the query string if any.
    pub path: String,
    /// The request body as text (lossy UTF-8).
    pub body: String,
    /// The status the mock answered with.
    pub status: u16,
}

impl fmt::Display for MockCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.api, self.method, self.path)?;
        if !self.body.is_empty() {
            write!(f, " {}", excerpt(&self.body))?;
        }
        write!(f, " -> {}", self.status)
    }
}

/// The running mock: its listeners' tasks stop when it is dropped.
pub struct MockApi {
    calls: Arc<Mutex<VecDeque<MockCall>>>,
    urls: BTreeMap<ApiName, reqwest::Url>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MockApi {
    /// Starts one listener per name in `apis`, all answering from `responses`.
    pub async fn start(
        apis: impl IntoIterator<Item = ApiName>,
        responses: Responses,
    ) -> anyhow::Result<MockApi> {
        let calls = Arc::new(Mutex::new(VecDeque::new()));
        let responses = Arc::new(responses);
        let mut urls = BTreeMap::new();
        let mut tasks = Vec::new();
        for api in apis {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr = listener.local_addr()?;
            let state = Mock {
                api: api.to_string(),
                responses: responses.clone(),
                calls: calls.clone(),
            };
            let router = Router::new().fallback(answer).with_state(state);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the mock API stopped");
                }
            }));
            urls.insert(api, reqwest::Url::parse(&format!("http://{addr}/"))?);
        }
        Ok(MockApi { calls, urls, tasks })
    }

    /// `apis` with every base URL pointed at this mock and no token (nothing secret is needed
    /// or sent). APIs the mock was not started for are left out.
    pub fn redirect(&self, apis: &BTreeMap<ApiName, ApiConfig>) -> BTreeMap<ApiName, ApiConfig> {
        apis.iter()
            .filter_map(|(name, config)| {
                let url = self.urls.get(name)?;
                let mut config = config.clone();
                config.base_url = url.clone();
                config.token = None;
                Some((name.clone(), config))
            })
            .collect()
    }

    /// The base URL serving `api`.
    #[cfg(test)]
    pub fn url(&self, api: &ApiName) -> Option<&reqwest::Url> {
        self.urls.get(api)
    }

    /// The calls answered so far, oldest first.
    pub fn calls(&self) -> Vec<MockCall> {
        lock(&self.calls).iter().cloned().collect()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Clone)]
struct Mock {
    api: String,
    responses: Arc<Responses>,
    calls: Arc<Mutex<VecDeque<MockCall>>>,
}

async fn answer(
    State(mock): State<Mock>,
    method: Method,
    uri: http::Uri,
    body: Bytes,
) -> impl IntoResponse {
    let canned = mock.responses.answer(&method, uri.path());
    let call = MockCall {
        api: mock.api.clone(),
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: canned.status,
    };
    tracing::info!(
        api = %call.api,
        method = %call.method,
        path = %call.path,
        body = %excerpt(&call.body),
        status = call.status,
        "mock API call"
    );
    {
        let mut calls = lock(&mock.calls);
        if calls.len() == MAX_RECORDED {
            calls.pop_front();
        }
        calls.push_back(call);
    }
    let status = http::StatusCode::from_u16(canned.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(canned.body))
}

/// The first [`MAX_LOGGED_BODY`] characters of `body`, marked when cut.
fn excerpt(body: &str) -> String {
    match body.char_indices().nth(MAX_LOGGED_BODY) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// The call list survives a panic in another holder: it is only ever appended to.
fn lock(calls: &Mutex<VecDeque<MockCall>>) -> std::sync::MutexGuard<'_, VecDeque<MockCall>> {
    calls.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_from_the_responses_and_records_each_call() {
        let responses = Responses::parse(
            r#"{ "POST /contacts/*/tags": { "status": 201, "body": { "ok": true } } }"#,
        )
        .unwrap();
        let api = ApiName::new("highlevel");
        let mock = MockApi::start([api.clone()], responses).await.unwrap();
        let base = mock.url(&api).unwrap().clone();
        let client = reqwest::Client::new();
        let tagged = client
            .post(base.join("contacts/c-1/tags").unwrap())
            .body(r#"{"tags":["vip"]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(tagged.status(), 201);
        assert_eq!(tagged.text().await.unwrap(), r#"{"ok":true}"#);
        let other = client
            .get(base.join("contacts/c-1?x=1").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200);
        assert_eq!(other.text().await.unwrap(), "{}");

        let calls = mock.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[0].to_string(),
            r#"highlevel POST /contacts/c-1/tags {"tags":["vip"]} -> 201"#
        );
        assert_eq!(
            calls[1].to_string(),
            "highlevel GET /contacts/c-1?x=1 -> 200"
        );
    }

    #[test]
    fn long_bodies_are_cut_in_the_log() {
        let long = "x".repeat(MAX_LOGGED_BODY + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), MAX_LOGGED_BODY + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("short"), "short");
    }
}
