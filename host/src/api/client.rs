//! The client's state (one shared HTTP client, each API's config and loaded token, the retry
//! schedule) and the sending loop: prepare once, then attempt, classify, decide, wait — every
//! attempt and every wait bounded by the delivery's deadline.
//!
//! Invariants: a denied request sends nothing; each attempt's timeout is
//! `min(request_timeout, time left)`; a wait that would reach the deadline is not started (the
//! call returns `BudgetExhausted` so the delivery is retried later instead); all attempts of one
//! call carry the same idempotency value `<key>:<call_number>`.

use std::{collections::BTreeMap, time::Duration};

use http::{HeaderName, HeaderValue};
use rand::Rng;
use tokio::time::Instant;

use super::{
    ApiError, ApiInitError, ApiRequest, ApiResponse, CallContext, RetryMode,
    classify::{self, Failure},
    observe::{self, Call},
    prepare,
    ratelimit::{self, RateLimitSeen},
    retry::{Decision, RetrySchedule},
    send::{self, HostHeaders},
};
use crate::{config::ApiConfig, ids::ApiName};

/// `retry_after_ms` when a call finds no time left before its first attempt: the first step of
/// the default schedule, so a delivery out of time is not retried in a tight loop.
const NO_TIME_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Shared by all clones of `ApiClient`.
pub(super) struct Inner {
    /// One client for every API: connection pools are per origin inside it. Redirects off.
    http: reqwest::Client,
    apis: BTreeMap<ApiName, Api>,
    schedule: RetrySchedule,
}

/// One configured API with its token loaded.
struct Api {
    config: ApiConfig,
    /// `Bearer <token>`, marked sensitive; None when the API has no static token.
    authorization: Option<HeaderValue>,
}

impl Inner {
    pub(super) fn new(
        apis: &BTreeMap<ApiName, ApiConfig>,
        schedule: RetrySchedule,
    ) -> Result<Inner, ApiInitError> {
        let http = reqwest::Client::builder()
            // A 3xx could point anywhere; following it would escape the configured origin.
            .redirect(reqwest::redirect::Policy::none())
            .use_rustls_tls()
            .user_agent(concat!("wasmhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut loaded = BTreeMap::new();
        for (name, config) in apis {
            let authorization = config
                .token
                .as_ref()
                .map(|reference| bearer(name, reference))
                .transpose()?;
            if let Some((prefix, _)) = config
                .versions
                .iter()
                .find(|(_, value)| HeaderValue::from_str(value).is_err())
            {
                return Err(ApiInitError::InvalidVersion {
                    api: name.clone(),
                    prefix: prefix.clone(),
                });
            }
            loaded.insert(
                name.clone(),
                Api {
                    config: config.clone(),
                    authorization,
                },
            );
        }
        Ok(Inner {
            http,
            apis: loaded,
            schedule,
        })
    }

    pub(super) fn api_names(&self) -> Vec<&str> {
        self.apis.keys().map(ApiName::as_str).collect()
    }

    pub(super) async fn send(
        &self,
        ctx: &CallContext,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let Some(api) = self.apis.get(&req.api) else {
            // The configured names are not listed: a plugin learns only the APIs it was granted.
            let error = ApiError::Denied(format!(
                "unknown api `{}`: the host configures no API of that name",
                req.api.as_str().chars().take(64).collect::<String>()
            ));
            observe::ended_unsent(
                call_of(ctx, "unknown", req, observe::NO_TEMPLATE),
                0,
                &error,
            );
            return Err(error);
        };
        let api_label = api.config.name.as_str();
        let prepared = match prepare::prepare(&api.config, &ctx.capabilities, &ctx.tenant, req) {
            Ok(prepared) => prepared,
            Err(reason) => {
                let error = ApiError::Denied(reason);
                observe::ended_unsent(
                    call_of(ctx, api_label, req, observe::NO_TEMPLATE),
                    0,
                    &error,
                );
                return Err(error);
            }
        };
        let call = call_of(ctx, api_label, req, &prepared.template);
        let host = match host_headers(api, ctx, &prepared.relative) {
            Ok(host) => host,
            Err(error) => {
                observe::ended_unsent(call, 0, &error);
                return Err(error);
            }
        };

        let mut attempt: u32 = 1;
        loop {
            let started = Instant::now();
            let left = ctx.deadline.saturating_duration_since(started);
            if left.is_zero() {
                let error = budget_exhausted(NO_TIME_RETRY_AFTER);
                observe::ended_unsent(call, attempt - 1, &error);
                return Err(error);
            }
            let timeout = api.config.request_timeout.min(left);
            let result = send::send_once(
                &self.http,
                &prepared,
                &host,
                api.config.max_response,
                timeout,
            )
            .await;
            let latency = started.elapsed();
            let (status, seen, outcome) = match result {
                Ok(answer) => {
                    let seen = RateLimitSeen::from_headers(&answer.headers);
                    (Some(answer.status), seen, judge(answer))
                }
                Err(failure) => (None, RateLimitSeen::default(), Err(failure)),
            };
            let failure = match outcome {
                Ok(response) => {
                    observe::attempt(call, attempt, status, None, latency, &seen);
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            observe::attempt(call, attempt, status, Some(&failure.error), latency, &seen);
            if let ApiError::Auth { status, .. } = failure.error {
                observe::auth_failed(call, status);
            }
            if req.retry == RetryMode::Never {
                return Err(failure.error);
            }
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            match self.schedule.decide(&failure, attempt, jitter) {
                Decision::GiveUp => {
                    if failure.transient {
                        observe::gave_up(call, attempt, &failure.error);
                    }
                    return Err(failure.error);
                }
                Decision::Defer(wait) => {
                    let error = budget_exhausted(wait);
                    observe::ended_unsent(call, attempt, &error);
                    return Err(error);
                }
                Decision::Retry(wait) => {
                    // Waiting up to the deadline would leave no time to send: hand the rest of
                    // the schedule to the dispatcher instead.
                    if Instant::now() + wait >= ctx.deadline {
                        let error = budget_exhausted(wait);
                        observe::ended_unsent(call, attempt, &error);
                        return Err(error);
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// Authorization, `Version` for the path, and the idempotency header for this call.
fn host_headers(api: &Api, ctx: &CallContext, relative: &str) -> Result<HostHeaders, ApiError> {
    // Version values were checked in `new`, so a conversion cannot fail here.
    let version = api
        .config
        .version_for(relative)
        .and_then(|v| HeaderValue::from_str(v).ok());
    let idempotency = match &api.config.idempotency_header {
        None => None,
        Some(name) => {
            let value =
                HeaderValue::from_str(&format!("{}:{}", ctx.idempotency_key, ctx.call_number))
                    .map_err(|_| {
                        ApiError::Denied(
                            "the delivery's idempotency key cannot be sent as a header".into(),
                        )
                    })?;
            Some((HeaderName::clone(name), value))
        }
    };
    Ok(HostHeaders {
        authorization: api.authorization.clone(),
        version,
        idempotency,
    })
}

/// Classifies a complete answer; a transient status becomes a retryable failure, with the
/// server's requested wait for a 429.
fn judge(answer: send::Answer) -> Result<ApiResponse, Failure> {
    let status = answer.status;
    let server_wait = (status == 429)
        .then(|| ratelimit::server_wait(&answer.headers, crate::ids::now_ms()))
        .flatten();
    let headers = answer.header_pairs();
    classify::classify(status, headers, answer.body).map_err(|error| Failure {
        error,
        transient: classify::is_transient_status(status),
        server_wait,
    })
}

fn budget_exhausted(wait: Duration) -> ApiError {
    ApiError::BudgetExhausted {
        retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
    }
}

fn call_of<'a>(
    ctx: &'a CallContext,
    api: &'a str,
    req: &'a ApiRequest,
    template: &'a str,
) -> Call<'a> {
    Call {
        plugin: &ctx.plugin,
        tenant: &ctx.tenant,
        api,
        method: &req.method,
        template,
    }
}

/// Loads a token and builds its `Authorization` value, naming the reference (never the value)
/// on failure.
fn bearer(
    api: &ApiName,
    reference: &crate::secret::SecretRef,
) -> Result<HeaderValue, ApiInitError> {
    let token = reference.load().map_err(|source| ApiInitError::Token {
        api: api.clone(),
        source,
    })?;
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        ApiInitError::InvalidToken {
            api: api.clone(),
            reference: reference.describe(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
