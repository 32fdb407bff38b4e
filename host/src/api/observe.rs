//! Logs and metrics of every API call, in one place so each attempt is reported the same way.
//!
//! Each attempt logs plugin, tenant, api, method, the path TEMPLATE (the matching allow-list
//! rule, never the raw path with its ids), status, attempt, latency, the time spent waiting for
//! a pacing slot and the rate-limit headers seen; at `info` on success and `warn` on failure.
//! Metrics carry no tenant and no path, so their label sets stay small:
//! `wasmhook_api_requests_total{api, status_class, attempt}`, `wasmhook_api_request_seconds{api}`,
//! `wasmhook_api_pacing_wait_seconds{api}`, `wasmhook_api_pacing_refusals_total{api, reason}`,
//! `wasmhook_api_breaker_open{api}` (gauge), `wasmhook_api_breaker_rejections_total{api}`,
//! `wasmhook_api_cache_total{api, result}` (hit, miss, bypass), `wasmhook_api_cache_bytes{api}`,
//! `wasmhook_api_cache_evictions_total{api, reason}`, `wasmhook_api_auth_failures_total{api}` and
//! `wasmhook_api_token_refreshes_total{api, result}`, and the last rate-limit headroom seen,
//! `wasmhook_api_ratelimit_remaining{api}` and `wasmhook_api_ratelimit_daily_remaining{api}`.
//! Every attempt also feeds the alert rules (`alerts::api_attempt`). Tokens and bodies are never
//! logged.

use std::time::Duration;

use super::{ApiError, ratelimit::RateLimitSeen};
use crate::ids::{PluginName, TenantId};

/// Template logged for requests refused before any rule matched.
pub const NO_TEMPLATE: &str = "-";

/// What every log line of one call carries.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The calling plugin.
    pub plugin: &'a PluginName,
    /// The delivery's tenant.
    pub tenant: &'a TenantId,
    /// The API label: its configured name, or `unknown` for a name not in config (a plugin
    /// must not be able to mint metric label values).
    pub api: &'a str,
    /// The request method.
    pub method: &'a http::Method,
    /// The matching rule's pattern, or [`NO_TEMPLATE`].
    pub template: &'a str,
}

/// The metric label for an outcome.
pub fn status_class(status: Option<u16>, error: Option<&ApiError>) -> &'static str {
    match (status, error) {
        (_, Some(ApiError::Denied(_))) => "denied",
        (_, Some(ApiError::BudgetExhausted { .. })) => "budget",
        (Some(429), _) => "429",
        (Some(s), _) if (200..300).contains(&s) => "2xx",
        (Some(s), _) if (300..400).contains(&s) => "3xx",
        (Some(s), _) if (400..500).contains(&s) => "4xx",
        (Some(s), _) if (500..600).contains(&s) => "5xx",
        (_, Some(ApiError::Timeout)) => "timeout",
        _ => "transport",
    }
}

/// One attempt that went on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// 1 for the first attempt of the call.
    pub number: u32,
    /// The answer's status; None = no answer arrived.
    pub status: Option<u16>,
    /// Time on the wire.
    pub latency: Duration,
    /// Time spent waiting for a pacing slot before sending.
    pub paced: Duration,
    /// The rate-limit headers of the answer.
    pub seen: &'a RateLimitSeen,
}

/// Reports one attempt that went on the wire.
pub fn attempt(call: Call<'_>, attempt: &Attempt<'_>, error: Option<&ApiError>) {
    let class = status_class(attempt.status, error);
    let latency_ms = millis(attempt.latency);
    let paced_ms = millis(attempt.paced);
    let status = attempt.status.unwrap_or(0);
    let number = attempt.number;
    let seen = attempt.seen;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (remaining, max, interval) = (text(&seen.remaining), text(&seen.max), text(&seen.interval));
    let (daily, daily_limit) = (text(&seen.daily_remaining), text(&seen.daily_limit));
    match error {
        None => tracing::info!(
            plugin = %call.plugin, tenant = %call.tenant, api = call.api,
            method = %call.method, path = call.template, status, attempt = number, latency_ms,
            paced_ms, ratelimit_remaining = remaining, ratelimit_max = max,
            ratelimit_interval_ms = interval, ratelimit_daily_remaining = daily,
            ratelimit_daily_limit = daily_limit,
            "api call"
        ),
        Some(error) => tracing::warn!(
            plugin = %call.plugin, tenant = %call.tenant, api = call.api,
            method = %call.method, path = call.template, status, attempt = number, latency_ms,
            paced_ms, ratelimit_remaining = remaining, ratelimit_max = max,
            ratelimit_interval_ms = interval, ratelimit_daily_remaining = daily,
            ratelimit_daily_limit = daily_limit, %error,
            "api call failed"
        ),
    }
    metrics::counter!(
        "wasmhook_api_requests_total",
        "api" => call.api.to_string(),
        "status_class" => class,
        "attempt" => number.to_string()
    )
    .increment(1);
    metrics::histogram!("wasmhook_api_request_seconds", "api" => call.api.to_string())
        .record(attempt.latency.as_secs_f64());
    if let Some(remaining) = seen
        .remaining
        .as_deref()
        .and_then(|r| r.parse::<f64>().ok())
    {
        metrics::gauge!("wasmhook_api_ratelimit_remaining", "api" => call.api.to_string())
            .set(remaining);
    }
    if let Some(daily) = seen
        .daily_remaining
        .as_deref()
        .and_then(|r| r.parse::<f64>().ok())
    {
        metrics::gauge!("wasmhook_api_ratelimit_daily_remaining", "api" => call.api.to_string())
            .set(daily);
    }
    crate::alerts::api_attempt(call.api, class);
    if !attempt.paced.is_zero() {
        metrics::histogram!("wasmhook_api_pacing_wait_seconds", "api" => call.api.to_string())
            .record(attempt.paced.as_secs_f64());
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reports a call that ended without (another) attempt on the wire: denied before sending, or
/// out of delivery time. `attempt` is the number of attempts that were sent (0 for denied).
pub fn ended_unsent(call: Call<'_>, attempt: u32, error: &ApiError) {
    tracing::warn!(
        plugin = %call.plugin, tenant = %call.tenant, api = call.api,
        method = %call.method, path = call.template, attempt, %error,
        "api call not sent"
    );
    metrics::counter!(
        "wasmhook_api_requests_total",
        "api" => call.api.to_string(),
        "status_class" => status_class(None, Some(error)),
        "attempt" => attempt.to_string()
    )
    .increment(1);
}

/// Reports a transient failure that outlasted the retry schedule: an error line and an alert.
pub fn gave_up(call: Call<'_>, attempts: u32, error: &ApiError) {
    tracing::error!(
        plugin = %call.plugin, tenant = %call.tenant, api = call.api,
        method = %call.method, path = call.template, attempts, %error,
        "api call gave up after retries"
    );
    crate::alerts::raise(
        crate::alerts::AlertKind::ApiGaveUp,
        call.api,
        &format!(
            "{} {} of plugin {} failed after {attempts} attempts: {error}",
            call.method, call.template, call.plugin
        ),
    );
}

/// Reports a final 401/403 (a 401 only after its one refresh failed or did not help): logged,
/// counted, and fed to the auth-failure rule, which alerts on a run of them.
pub fn auth_failed(call: Call<'_>, status: u16) {
    tracing::warn!(
        plugin = %call.plugin, tenant = %call.tenant, api = call.api,
        method = %call.method, path = call.template, status,
        "api refused the credential; the installation may need re-authorisation"
    );
    metrics::counter!("wasmhook_api_auth_failures_total", "api" => call.api.to_string())
        .increment(1);
    crate::alerts::auth_failure(call.api);
}

/// Reports a credential refresh after a 401: `error` is None when it produced a new one.
pub fn token_refreshed(call: Call<'_>, error: Option<&super::auth::AuthError>) {
    let result = match error {
        None => {
            tracing::info!(
                plugin = %call.plugin, tenant = %call.tenant, api = call.api,
                "credential refreshed after a 401; replaying once"
            );
            "ok"
        }
        Some(error) => {
            tracing::warn!(
                plugin = %call.plugin, tenant = %call.tenant, api = call.api, %error,
                "credential refresh after a 401 failed"
            );
            "failed"
        }
    };
    metrics::counter!(
        "wasmhook_api_token_refreshes_total",
        "api" => call.api.to_string(),
        "result" => result
    )
    .increment(1);
}

/// Reports a call refused because no pacing slot could be had (`reason`: `deadline` or
/// `quota`); the line itself is written by [`ended_unsent`].
pub fn pacing_refused(call: Call<'_>, reason: &'static str) {
    metrics::counter!(
        "wasmhook_api_pacing_refusals_total",
        "api" => call.api.to_string(),
        "reason" => reason
    )
    .increment(1);
}

/// Sets the breaker gauge of `api`.
pub fn breaker_gauge(api: &str, open: bool) {
    metrics::gauge!("wasmhook_api_breaker_open", "api" => api.to_string()).set(if open {
        1.0
    } else {
        0.0
    });
}

/// Reports the breaker of `api` opening (or re-opening after a failed probe) or closing.
pub fn breaker_changed(api: &str, open: bool, failures: u32, cool_down: Duration) {
    breaker_gauge(api, open);
    if open {
        tracing::warn!(
            api,
            failures,
            cool_down_ms = millis(cool_down),
            "circuit breaker open: calls fail fast until a probe succeeds"
        );
    } else {
        tracing::info!(api, "circuit breaker closed: the probe succeeded");
    }
}

/// Reports a call refused by an open breaker (the line is written by [`ended_unsent`]).
pub fn breaker_refused(call: Call<'_>) {
    metrics::counter!("wasmhook_api_breaker_rejections_total", "api" => call.api.to_string())
        .increment(1);
}

/// Reports a cache lookup: `hit`, `miss` or `bypass` (no cache rule covers the path).
pub fn cache_lookup(call: Call<'_>, result: &'static str) {
    tracing::debug!(
        plugin = %call.plugin, tenant = %call.tenant, api = call.api,
        method = %call.method, path = call.template, result,
        "api cache lookup"
    );
    metrics::counter!(
        "wasmhook_api_cache_total",
        "api" => call.api.to_string(),
        "result" => result
    )
    .increment(1);
}

/// Reports an answer stored in the cache of `api`, now holding `bytes`, after `evicted` entries
/// made room.
pub fn cache_stored(api: &str, bytes: usize, evicted: usize) {
    metrics::gauge!("wasmhook_api_cache_bytes", "api" => api.to_string()).set(bytes as f64);
    if evicted > 0 {
        metrics::counter!(
            "wasmhook_api_cache_evictions_total",
            "api" => api.to_string(),
            "reason" => "size"
        )
        .increment(evicted as u64);
    }
}

/// Reports cached answers dropped because a webhook of `kind` arrived (or `forget` for a tenant
/// being erased).
pub fn cache_invalidated(api: &str, kind: &str, dropped: usize) {
    if dropped == 0 {
        return;
    }
    tracing::debug!(api, kind, dropped, "api cache entries invalidated");
    metrics::counter!(
        "wasmhook_api_cache_evictions_total",
        "api" => api.to_string(),
        "reason" => "invalidated"
    )
    .increment(dropped as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let timeout = ApiError::Timeout;
        let denied = ApiError::Denied("x".into());
        let budget = ApiError::BudgetExhausted { retry_after_ms: 1 };
        let transport = ApiError::Transport("x".into());
        assert_eq!(status_class(Some(200), None), "2xx");
        assert_eq!(status_class(Some(302), None), "3xx");
        assert_eq!(status_class(Some(404), None), "4xx");
        assert_eq!(status_class(Some(429), None), "429");
        assert_eq!(status_class(Some(503), None), "5xx");
        assert_eq!(status_class(None, Some(&timeout)), "timeout");
        assert_eq!(status_class(None, Some(&transport)), "transport");
        assert_eq!(status_class(None, Some(&denied)), "denied");
        assert_eq!(status_class(None, Some(&budget)), "budget");
    }
}
