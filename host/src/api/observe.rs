//! Logs and metrics of every API call, in one place so each attempt is reported the same way.
//!
//! Each attempt logs plugin, tenant, api, method, the path TEMPLATE (the matching allow-list
//! rule, never the raw path with its ids), status, attempt, latency and the rate-limit headers
//! seen; at `info` on success and `warn` on failure. Metrics carry no tenant and no path, so
//! their label sets stay small: `wasmhook_api_requests_total{api, status_class, attempt}` and
//! `wasmhook_api_request_seconds{api}`. Tokens and bodies are never logged.

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

/// Reports one attempt that went on the wire (`status` None = no answer arrived).
pub fn attempt(
    call: Call<'_>,
    attempt: u32,
    status: Option<u16>,
    error: Option<&ApiError>,
    latency: Duration,
    seen: &RateLimitSeen,
) {
    let class = status_class(status, error);
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    let status = status.unwrap_or(0);
    let remaining = seen.remaining.as_deref().unwrap_or("");
    let max = seen.max.as_deref().unwrap_or("");
    let daily = seen.daily_remaining.as_deref().unwrap_or("");
    match error {
        None => tracing::info!(
            plugin = %call.plugin, tenant = %call.tenant, api = call.api,
            method = %call.method, path = call.template, status, attempt, latency_ms,
            ratelimit_remaining = remaining, ratelimit_max = max,
            ratelimit_daily_remaining = daily,
            "api call"
        ),
        Some(error) => tracing::warn!(
            plugin = %call.plugin, tenant = %call.tenant, api = call.api,
            method = %call.method, path = call.template, status, attempt, latency_ms,
            ratelimit_remaining = remaining, ratelimit_max = max,
            ratelimit_daily_remaining = daily, %error,
            "api call failed"
        ),
    }
    metrics::counter!(
        "wasmhook_api_requests_total",
        "api" => call.api.to_string(),
        "status_class" => class,
        "attempt" => attempt.to_string()
    )
    .increment(1);
    metrics::histogram!("wasmhook_api_request_seconds", "api" => call.api.to_string())
        .record(latency.as_secs_f64());
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
        &format!("{}/{}", call.plugin, call.api),
        &format!(
            "{} {} failed after {attempts} attempts: {error}",
            call.method, call.template
        ),
    );
}

/// Reports a 401/403: the installation may need re-authorisation.
pub fn auth_failed(call: Call<'_>, status: u16) {
    crate::alerts::raise(
        crate::alerts::AlertKind::AuthFailure,
        &format!("{}/{}", call.api, call.tenant),
        &format!(
            "{} {} answered {status}; the installation may need re-authorisation",
            call.method, call.template
        ),
    );
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
