//! The outbound API client plugins call through the `api` import. The host owns the network:
//! it checks the plugin's capabilities (deny by default), fixes the origin to the API's base URL,
//! adds the bearer token, the `Version` header and the idempotency header, retries transient
//! failures, and bounds every wait by the delivery's remaining time. Plugins never see a token.
//!
//! Files: `capability` (allow-lists), `path` (path rules, join under the base URL), `tenant`
//! (tenant fields in query and body), `prepare` (every check before sending), `send` (one
//! attempt on the wire), `classify` (status -> error class), `ratelimit` (429 wait headers),
//! `retry` (the retry decision), `client` (the sending loop), `observe` (logs and metrics).
//!
//! Invariants: nothing is sent unless the request passed `prepare`; the origin is always the
//! API's configured `base_url`; redirects are never followed; tokens are loaded once in
//! [`ApiClient::new`] and appear in no log line, error or metric.

pub mod capability;
mod classify;
mod client;
mod observe;
pub mod path;
mod prepare;
mod ratelimit;
pub mod retry;
mod send;
mod tenant;

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    config::ApiConfig,
    ids::{ApiName, PluginName, TenantId},
};

pub use capability::{AllowList, Capabilities, Rule};
pub use classify::{classify, is_transient_status};
pub use retry::{Decision, RetrySchedule};

/// One request from a plugin, in host types (converted from the WIT record by the runtime).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    /// The API's name in the host config (`[apis.<name>]`).
    pub api: ApiName,
    /// GET, POST, PUT, PATCH or DELETE (the allow-list names no other method).
    pub method: http::Method,
    /// The path below the API's base URL: one leading `/`, no query, no `.`/`..` segments.
    pub path: String,
    /// Query parameters, percent-encoded by the host.
    pub query: Vec<(String, String)>,
    /// JSON text.
    pub body: Option<String>,
    /// Whether transient failures may be retried.
    pub retry: RetryMode,
    /// Extra headers; only names in the API's `allowed_headers`.
    pub headers: Vec<(String, String)>,
}

/// Whether transient failures may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetryMode {
    /// Retry 429, 500, 502, 503, 504, timeouts and connection errors on the schedule.
    #[default]
    Auto,
    /// Send once, whatever happens.
    Never,
}

/// A 2xx answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResponse {
    /// The HTTP status, 200..=299.
    pub status: u16,
    /// Names in lower case; a header sent several times appears several times.
    pub headers: Vec<(String, String)>,
    /// The body, at most the API's `max_response` bytes.
    pub body: Vec<u8>,
}

/// Why a request produced no 2xx answer; mirrors the WIT `api-error`. Messages never carry a
/// token, a request body or a URL query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Outside the plugin's capabilities, or malformed; nothing was sent. Says which rule.
    #[error("denied: {0}")]
    Denied(String),
    /// 3xx, 400, 404, 422 and other 4xx: fix the request, retrying cannot help.
    #[error("client error {status}")]
    ClientError {
        /// The HTTP status.
        status: u16,
        /// The response body (capped).
        body: Vec<u8>,
    },
    /// 401 or 403: the installation may need re-authorisation.
    #[error("authentication failed ({status})")]
    Auth {
        /// The HTTP status.
        status: u16,
        /// The response body (capped).
        body: Vec<u8>,
    },
    /// 429 after the host's waits.
    #[error("rate limited ({status})")]
    RateLimited {
        /// The HTTP status.
        status: u16,
        /// The response body (capped).
        body: Vec<u8>,
    },
    /// 5xx after the host's retries.
    #[error("server error {status}")]
    ServerError {
        /// The HTTP status.
        status: u16,
        /// The response body (capped).
        body: Vec<u8>,
    },
    /// No complete answer within the attempt's timeout.
    #[error("timed out")]
    Timeout,
    /// The connection failed (refused, reset, TLS), or the response was larger than allowed.
    #[error("transport: {0}")]
    Transport(String),
    /// The delivery's time ran out before the retry schedule finished (or the server asked for
    /// a wait longer than a delivery may sleep): retry the delivery after this many ms.
    #[error("delivery budget exhausted; retry after {retry_after_ms} ms")]
    BudgetExhausted {
        /// Wait at least this long before the delivery's next attempt.
        retry_after_ms: u64,
    },
}

/// Who is calling and within what limits: built by the runtime for each delivery.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The calling plugin.
    pub plugin: PluginName,
    /// The delivery's tenant; tenant fields in a request must equal it.
    pub tenant: TenantId,
    /// The plugin's grants from its manifest.
    pub capabilities: Arc<Capabilities>,
    /// The delivery's idempotency key; the host sends `<key>:<call_number>`.
    pub idempotency_key: String,
    /// 1 for the delivery's first API call, 2 for the second, ... (the same across retries of
    /// one call, so the API can recognise a repeat).
    pub call_number: u32,
    /// The delivery's wall-clock deadline; no attempt or wait extends past it.
    pub deadline: tokio::time::Instant,
}

/// Why the client could not be built from config. Names the API and the secret's reference,
/// never its value.
#[derive(Debug, thiserror::Error)]
pub enum ApiInitError {
    /// The token's env var or file could not be read.
    #[error("api {api}: token: {source}")]
    Token {
        /// The API whose token failed.
        api: ApiName,
        /// Which variable or file, and why.
        #[source]
        source: crate::secret::SecretError,
    },
    /// The token holds characters that cannot go into an HTTP header (e.g. a newline).
    #[error("api {api}: the token from {reference} contains characters not allowed in a header")]
    InvalidToken {
        /// The API whose token is malformed.
        api: ApiName,
        /// `env:NAME` or `file:PATH`.
        reference: String,
    },
    /// A `versions` value cannot be sent as a header.
    #[error("api {api}: versions: the value for `{prefix}` is not a valid header value")]
    InvalidVersion {
        /// The API whose config is wrong.
        api: ApiName,
        /// The path prefix whose value is wrong.
        prefix: String,
    },
    /// The HTTP client could not be built (e.g. no TLS roots).
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The client, shared by all deliveries. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<client::Inner>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("apis", &self.inner.api_names())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Builds the client and loads each API's token (once: a missing env var or file is an
    /// error here, naming it). Uses [`RetrySchedule::default`].
    pub fn new(apis: &BTreeMap<ApiName, ApiConfig>) -> Result<ApiClient, ApiInitError> {
        Self::with_schedule(apis, RetrySchedule::default())
    }

    /// Like [`ApiClient::new`] with another retry schedule (from config, or short for tests).
    pub fn with_schedule(
        apis: &BTreeMap<ApiName, ApiConfig>,
        schedule: RetrySchedule,
    ) -> Result<ApiClient, ApiInitError> {
        Ok(ApiClient {
            inner: Arc::new(client::Inner::new(apis, schedule)?),
        })
    }

    /// Checks `req` against the caller's capabilities and sends it, retrying transient failures
    /// within `ctx.deadline` unless `req.retry` is [`RetryMode::Never`].
    pub async fn send(&self, ctx: &CallContext, req: ApiRequest) -> Result<ApiResponse, ApiError> {
        self.inner.send(ctx, &req).await
    }
}
