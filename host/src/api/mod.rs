//! The outbound API client plugins call through the `api` import. The host owns the network:
//! it checks the plugin's capabilities (deny by default), fixes the origin to the API's base URL,
//! adds the credential, the `Version` header and the idempotency header, paces calls per tenant,
//! retries transient failures, trips a circuit breaker when the API is down, walks paginated
//! endpoints, caches reference data, and bounds every wait by the delivery's remaining time.
//! Plugins never see a token.
//!
//! Files: `capability` (allow-lists, path patterns), `path` (path rules, join under the base
//! URL), `tenant` (tenant fields in query and body), `prepare` (every check before sending),
//! `send` (one attempt on the wire), `classify` (status -> error class), `ratelimit` (429 wait
//! headers), `retry` (the retry decision), `auth` (the token hook), `pacing` (per-tenant rate
//! budgets, fair between plugins), `breaker` (per-API circuit breaker), `cache` (reference-data
//! store), `pages` (pagination), `batch` (several requests at once), `client` (state and entry
//! points), `call` (the sending loop), `observe` (logs and metrics).
//!
//! Invariants: nothing is sent unless the request passed `prepare`; the origin is always the
//! API's configured `base_url`; redirects are never followed; tokens come only from the
//! [`TokenSource`] and appear in no log line, error or metric.
//!
//! Quota deferrals: when a call ends with [`ApiError::BudgetExhausted`] because the API said
//! the tenant must wait (daily quota spent, or a 429 asking for longer than a delivery may
//! sleep), [`ApiClient::upstream_wait`] returns that wait for the (api, tenant) until it has
//! passed. The runtime asks [`ApiClient::deferral`] with the error it got (the quota, then the
//! token source's "credentials not ready"): `Some((wait, note))` means "defer the delivery by
//! `wait` without spending an attempt"; None means the budget ran out for ordinary reasons
//! (retries, pacing) and the attempt counts.

pub mod auth;
mod batch;
mod breaker;
mod cache;
mod call;
pub mod capability;
mod classify;
mod client;
mod observe;
mod pacing;
pub mod pages;
pub mod path;
mod prepare;
mod ratelimit;
pub mod retry;
mod send;
mod tenant;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::{
    config::ApiConfig,
    ids::{ApiName, PluginName, TenantId},
};

pub use auth::{AuthError, StaticTokens, TokenSource};
pub use batch::BATCH_CONCURRENCY;
pub use capability::{AllowList, Capabilities, PathPattern, Rule};
pub use classify::classify;
pub use pages::{PageStyle, Pages};
pub use retry::{DEFAULT_RETRY_STATUSES, Decision, RetrySchedule};

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
    /// Retry timeouts, connection errors and the API's retry statuses (default 429, 500, 502,
    /// 503, 504) on the API's schedule.
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
    /// Builds the client with the configured static tokens (loaded once: a missing env var or
    /// file is an error here, naming it). Each API retries on its own configured schedule.
    pub fn new(apis: &BTreeMap<ApiName, ApiConfig>) -> Result<ApiClient, ApiInitError> {
        let tokens = Arc::new(StaticTokens::load(apis)?);
        Self::with_token_source(apis, tokens)
    }

    /// Like [`ApiClient::new`] with credentials from `tokens` (e.g. OAuth) instead of the
    /// configured static tokens.
    pub fn with_token_source(
        apis: &BTreeMap<ApiName, ApiConfig>,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<ApiClient, ApiInitError> {
        Ok(ApiClient {
            inner: Arc::new(client::Inner::new(apis, tokens)?),
        })
    }

    /// Shares each API's configured rate budget per tenant with every process using `store`
    /// (several replicas on one PostgreSQL database); the first call wins.
    pub fn share_pacing(&self, store: crate::store::postgres::PostgresStore) {
        self.inner.shared.share_through(store);
    }

    /// Checks `req` against the caller's capabilities and sends it, paced per tenant, retrying
    /// transient failures within `ctx.deadline` unless `req.retry` is [`RetryMode::Never`]. A
    /// GET on a declared list endpoint without `limit` gets the declared one.
    pub async fn send(&self, ctx: &CallContext, req: ApiRequest) -> Result<ApiResponse, ApiError> {
        self.inner.send(ctx, &req).await
    }

    /// Sends `requests` as one batch: each an ordinary [`ApiClient::send`] with call number
    /// `ctx.call_number + i`, at most [`BATCH_CONCURRENCY`] at once, under the tenant's pacing.
    /// One result per request, in request order. The caller counts `requests.len()` calls
    /// against the delivery's cap.
    pub async fn send_batch(
        &self,
        ctx: &CallContext,
        requests: Vec<ApiRequest>,
    ) -> Vec<Result<ApiResponse, ApiError>> {
        batch::send_batch(self, ctx, requests).await
    }

    /// A GET through the reference-data cache. The capability check runs first (a plugin
    /// without the grant gets `Denied`, never cached data); a fresh entry for the same api,
    /// tenant, method, path, query and `Version` is returned without a request; otherwise the
    /// request is sent and a 2xx answer kept for the matching cache rule's TTL. A path no cache
    /// rule covers is sent uncached. Non-GET requests are `Denied`.
    pub async fn get_cached(
        &self,
        ctx: &CallContext,
        req: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.inner.get_cached(ctx, &req).await
    }

    /// Starts a walk over the pages of `req` in `style`, fetching at most `max_pages` pages
    /// (and never more than the API's `max_pages`). Nothing is sent until [`Pages::next`];
    /// each page is one call, numbered from `ctx.call_number` up.
    pub fn pages(
        &self,
        ctx: &CallContext,
        req: ApiRequest,
        style: PageStyle,
        max_pages: u32,
    ) -> Pages {
        Pages::new(self.clone(), ctx.clone(), req, style, max_pages)
    }

    /// Called by ingress for each stored webhook of `event_kind` (e.g. `OpportunityCreate`)
    /// for `tenant` on the source's `api`: drops the tenant's cached answers of every cache rule
    /// listing that kind. Returns how many were dropped.
    pub fn invalidate(&self, api: &ApiName, tenant: &TenantId, event_kind: &str) -> usize {
        self.inner.invalidate(api, tenant, event_kind)
    }

    /// Forgets everything the client keeps for `tenant` on `api` (cached answers, pacing
    /// state), e.g. when the tenant uninstalls.
    pub fn forget_tenant(&self, api: &ApiName, tenant: &TenantId) {
        self.inner.forget_tenant(api, tenant);
    }

    /// How long `tenant` must wait before calling `api` because the API said so — its daily
    /// quota is spent, or a 429 asked for a wait — or None when it may call. See the module
    /// docs: after a `BudgetExhausted`, `Some` means defer the delivery without spending an
    /// attempt.
    pub fn upstream_wait(&self, api: &ApiName, tenant: &TenantId) -> Option<Duration> {
        self.inner.upstream_wait(api, tenant)
    }

    /// Whether `error`, returned by a call of `tenant` on `api`, is a quota deferral: a
    /// `BudgetExhausted` while the API has told the tenant to wait. `Some(wait)`: defer the
    /// delivery by `wait` without spending an attempt. None: an ordinary outcome.
    pub fn quota_deferral(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        error: &ApiError,
    ) -> Option<Duration> {
        match error {
            ApiError::BudgetExhausted { .. } => self.upstream_wait(api, tenant),
            _ => None,
        }
    }

    /// Whether `error`, returned by a call of `tenant` on `api`, means the delivery should
    /// wait without spending an attempt: the API's quota is spent, or the tenant's credentials
    /// are not ready (install in progress, re-authorisation needed). `Some((wait, note))`:
    /// defer by `wait`, showing `note` on the delivery.
    pub fn deferral(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        error: &ApiError,
    ) -> Option<(Duration, String)> {
        if !matches!(error, ApiError::BudgetExhausted { .. }) {
            return None;
        }
        if let Some(wait) = self.quota_deferral(api, tenant, error) {
            return Some((
                wait,
                format!(
                    "waiting: api {api} asked tenant {tenant} to wait (its quota is spent or it \
                     named a later reset); runs again then"
                ),
            ));
        }
        self.inner.tokens.waiting(api, tenant)
    }
}

#[cfg(test)]
pub(crate) mod tests;
