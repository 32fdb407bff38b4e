//! The sending loop of one call, after its request passed every check: per attempt, the circuit
//! breaker, then a pacing slot, then the wire; then classify, learn, and decide — replay once
//! after a refreshed 401, retry a transient failure on the schedule, or stop.
//!
//! Invariants: every attempt and every wait is bounded by the delivery's deadline (a slot or a
//! retry that cannot come before it ends the call with `BudgetExhausted`, so the dispatcher
//! retries the delivery later); each attempt's timeout is `min(request_timeout, time left)`;
//! all attempts of one call carry the same idempotency value `<key>:<call_number>`; a 401 leads
//! to at most one `refresh` and one replay per call, and a 403 to none; nothing is sent while
//! the API's breaker is open.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rand::Rng;
use tokio::time::Instant;

use super::{
    ApiError, ApiRequest, ApiResponse, CallContext, RetryMode, auth,
    breaker::{self, Refused},
    classify::{self, Failure},
    client::{Api, Inner, call_of},
    observe::{self, Call},
    pacing::{
        PaceError,
        window::{Feedback, ServerReport},
    },
    prepare::Prepared,
    ratelimit::{self, RateLimitSeen},
    retry::Decision,
    send::{self, HostHeaders},
};
use crate::secret::Secret;

/// `retry_after_ms` when a call finds no time left before an attempt: the first step of the
/// default schedule, so a delivery out of time is not retried in a tight loop.
const NO_TIME_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Sends `prepared` (built from `req` for the caller `ctx`) until an answer, a final failure or
/// the deadline.
pub(super) async fn run(
    inner: &Inner,
    api: &Api,
    ctx: &CallContext,
    req: &ApiRequest,
    prepared: &Prepared,
) -> Result<ApiResponse, ApiError> {
    let call = call_of(ctx, api.config.name.as_str(), req, &prepared.template);
    let fail = |attempts: u32, error: ApiError| {
        observe::ended_unsent(call, attempts, &error);
        Err(error)
    };
    let mut host = match host_headers(api, ctx, &prepared.relative) {
        Ok(host) => host,
        Err(error) => return fail(0, error),
    };
    let mut token = match inner.tokens.token(&api.config.name, &ctx.tenant).await {
        Ok(token) => token,
        Err(error) => return fail(0, error.into_api_error(None)),
    };
    let mut refreshed = false;
    let mut attempt: u32 = 1;
    loop {
        if ctx.deadline <= Instant::now() {
            return fail(attempt - 1, budget_exhausted(NO_TIME_RETRY_AFTER));
        }
        let admission = match api.breaker.admit() {
            Ok(admission) => {
                if admission.is_probe() {
                    tracing::info!(
                        api = call.api, plugin = %call.plugin,
                        "circuit breaker half-open: this call is the probe"
                    );
                }
                admission
            }
            Err(refused) => {
                observe::breaker_refused(call);
                return fail(attempt - 1, breaker_open(call.api, refused));
            }
        };
        let permit = match api
            .pacer
            .acquire(&ctx.tenant, &ctx.plugin, ctx.deadline)
            .await
        {
            Ok(permit) => permit,
            Err(error) => {
                let (reason, wait) = match error {
                    PaceError::Deadline { retry_after } => ("deadline", retry_after),
                    PaceError::Quota { retry_after } => ("quota", retry_after),
                };
                observe::pacing_refused(call, reason);
                return fail(attempt - 1, budget_exhausted(wait));
            }
        };
        let mut paced = permit.waited;
        if let Some(limit) = &api.config.rate_limit {
            match inner
                .shared
                .take(&api.config.name, &ctx.tenant, limit, ctx.deadline)
                .await
            {
                Ok(waited) => paced += waited,
                Err(PaceError::Deadline { retry_after } | PaceError::Quota { retry_after }) => {
                    observe::pacing_refused(call, "deadline");
                    return fail(attempt - 1, budget_exhausted(retry_after));
                }
            }
        }
        host.authorization = match token.as_ref().map(auth::bearer).transpose() {
            Ok(value) => value,
            Err(error) => return fail(attempt - 1, error),
        };

        let started = Instant::now();
        let timeout = api
            .config
            .request_timeout
            .min(ctx.deadline.saturating_duration_since(started));
        let result = send::send_once(
            &inner.http,
            prepared,
            &host,
            api.config.max_response,
            timeout,
        )
        .await;
        let latency = started.elapsed();

        let (status, seen, outcome) = match result {
            Ok(answer) => {
                let server_wait = (answer.status == 429)
                    .then(|| ratelimit::server_wait(&answer.headers, crate::ids::now_ms()))
                    .flatten();
                permit.answered(&Feedback {
                    status: answer.status,
                    report: ServerReport::from_headers(&answer.headers),
                    server_wait,
                });
                admission.record(if answer.status >= 500 {
                    breaker::Outcome::Down
                } else {
                    breaker::Outcome::Up
                });
                let seen = RateLimitSeen::from_headers(&answer.headers);
                let transient = api.config.retry.retries_status(answer.status);
                (
                    Some(answer.status),
                    seen,
                    judge(answer, transient, server_wait),
                )
            }
            Err(failure) => {
                // No answer: the slot stays used for a period (the request may have arrived).
                drop(permit);
                admission.record(if failure.transient {
                    breaker::Outcome::Down
                } else {
                    breaker::Outcome::Up
                });
                (None, RateLimitSeen::default(), Err(failure))
            }
        };
        let attempt_log = observe::Attempt {
            number: attempt,
            status,
            latency,
            paced,
            seen: &seen,
        };
        let failure = match outcome {
            Ok(response) => {
                observe::attempt(call, &attempt_log, None);
                return Ok(response);
            }
            Err(failure) => failure,
        };
        observe::attempt(call, &attempt_log, Some(&failure.error));

        if let ApiError::Auth { status, body } = &failure.error {
            // Only a 401 with a credential we sent can be cured by a new one, and only once.
            if let (401, false, Some(rejected)) = (*status, refreshed, token.as_ref()) {
                refreshed = true;
                match refresh(inner, api, ctx, rejected, call).await {
                    Ok(fresh) => {
                        token = Some(fresh);
                        attempt += 1;
                        continue;
                    }
                    Err(error) => {
                        let error = error.into_api_error(Some((401, body.clone())));
                        if let ApiError::Auth { status, .. } = error {
                            observe::auth_failed(call, status);
                        }
                        return Err(error);
                    }
                }
            }
            observe::auth_failed(call, *status);
            return Err(failure.error);
        }
        if req.retry == RetryMode::Never {
            return Err(failure.error);
        }
        let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
        match api.config.retry.decide(&failure, attempt, jitter) {
            Decision::GiveUp => {
                if failure.transient {
                    observe::gave_up(call, attempt, &failure.error);
                }
                return Err(failure.error);
            }
            Decision::Defer(wait) => return fail(attempt, budget_exhausted(wait)),
            Decision::Retry(wait) => {
                // Waiting up to the deadline would leave no time to send: hand the rest of the
                // schedule to the dispatcher instead.
                if Instant::now() + wait >= ctx.deadline {
                    return fail(attempt, budget_exhausted(wait));
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Asks the token source for a replacement of `rejected`, reporting how it went.
async fn refresh(
    inner: &Inner,
    api: &Api,
    ctx: &CallContext,
    rejected: &Secret,
    call: Call<'_>,
) -> Result<Secret, auth::AuthError> {
    let result = inner
        .tokens
        .refresh(&api.config.name, &ctx.tenant, rejected)
        .await;
    observe::token_refreshed(call, result.as_ref().err());
    result
}

/// `Version` for the path and the idempotency header for this call (authorization is added per
/// attempt, since a refresh may replace it).
fn host_headers(api: &Api, ctx: &CallContext, relative: &str) -> Result<HostHeaders, ApiError> {
    // Version values were checked when the client was built, so a conversion cannot fail here.
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
        authorization: None,
        version,
        idempotency,
    })
}

/// Classifies a complete answer; a failure is retryable when `transient` (its status is one
/// the API retries), with the server's requested wait for a 429.
fn judge(
    answer: send::Answer,
    transient: bool,
    server_wait: Option<Duration>,
) -> Result<ApiResponse, Failure> {
    let headers = answer.header_pairs();
    classify::classify(answer.status, headers, answer.body).map_err(|error| Failure {
        error,
        transient,
        server_wait,
    })
}

/// The error of a call refused by an open breaker: transport-class (the API is unreachable as
/// far as the plugin is concerned), saying why and that nothing was sent.
fn breaker_open(api: &str, refused: Refused) -> ApiError {
    ApiError::Transport(format!(
        "circuit breaker open: api `{api}` failed {} times in a row; no request sent, next \
         probe in about {} s",
        refused.failures,
        refused.retry_after.as_secs().max(1)
    ))
}

pub(super) fn budget_exhausted(wait: Duration) -> ApiError {
    ApiError::BudgetExhausted {
        retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
    }
}
