//! `GET /admin/status`: the live summary `wasmhook status` prints. Per plugin, its last hour
//! (attempts delivered and failed, deliveries dead, p95 attempt duration) from the store; per
//! API, its error rate over the alert window, the last rate-limit headroom seen and the breaker,
//! from this process, with its token health (soonest expiry, oldest static token, as
//! `/metrics` shows them); the installations that need an operator (re-authorisation, an
//! install not completed, refreshes failing); and the open alerts.
//!
//! Invariants: no tenant data beyond the ids of installations needing action (capped at
//! [`MAX_INSTALLATIONS`]); the API numbers are the ones `/metrics` shows.

use axum::{Json, extract::State, response::IntoResponse, response::Response};
use serde::{Deserialize, Serialize};

use super::admin::AdminState;
use crate::{
    alerts::{self, OpenAlert},
    ids::{ApiName, TenantId, now_ms},
    installations::InstallationState,
    store::{PluginStats, Store},
};

/// The period of the per-plugin numbers.
pub const PERIOD_MS: i64 = 3_600_000;
/// Installations listed (the count is always complete).
pub const MAX_INSTALLATIONS: usize = 100;

/// The summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Start of the per-plugin period, ms since the epoch.
    pub since_ms: i64,
    pub plugins: Vec<PluginStats>,
    pub apis: Vec<ApiStatus>,
    /// How many installations need action (re-authorisation, still waiting for credentials,
    /// or refreshes failing in this process).
    pub installations_needing_action: usize,
    /// The first [`MAX_INSTALLATIONS`] of them.
    pub installations: Vec<InstallationNeed>,
    pub alerts: Vec<OpenAlert>,
}

/// One API's health.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiStatus {
    pub api: ApiName,
    /// Attempts in the alert window (`alerts.api_error_window`).
    pub attempts: u64,
    /// Of them, 5xx, timeouts and transport failures.
    pub errors: u64,
    /// The window's length, seconds.
    pub window_secs: u64,
    /// `x-ratelimit-remaining` of the last answer; None before any.
    pub ratelimit_remaining: Option<f64>,
    pub breaker_open: bool,
    /// Seconds until the soonest expiry of a token the refresher keeps current (negative:
    /// expired); None when the API has none.
    #[serde(default)]
    pub token_expiry_secs: Option<f64>,
    /// Age of the oldest static token, seconds; None when the API has none.
    #[serde(default)]
    pub static_token_age_secs: Option<f64>,
}

/// An installation an operator must look at.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstallationNeed {
    pub api: ApiName,
    pub tenant: TenantId,
    /// `needs-reauth`, `pending` or `refresh-failing` (the last refresh failed; retried in
    /// the background).
    pub state: String,
}

pub(super) async fn status(State(state): State<AdminState>) -> Response {
    let since_ms = now_ms() - PERIOD_MS;
    let plugins = match state.store.plugin_stats(since_ms).await {
        Ok(plugins) => plugins,
        Err(e) => return super::admin::store_error(e),
    };
    let rendered = crate::telemetry::metrics().render();
    let window_secs = alerts::config().api_error_window.as_secs();
    let mut apis = Vec::new();
    let mut installations = Vec::new();
    let mut needing = 0;
    for api in state.apis.iter() {
        let (attempts, errors) = alerts::api_errors(api.as_str());
        apis.push(ApiStatus {
            api: api.clone(),
            attempts,
            errors,
            window_secs,
            ratelimit_remaining: gauge(&rendered, "wasmhook_api_ratelimit_remaining", api),
            breaker_open: gauge(&rendered, "wasmhook_api_breaker_open", api) == Some(1.0),
            token_expiry_secs: gauge(&rendered, "wasmhook_token_expiry_soonest_seconds", api)
                .filter(|v| v.is_finite()),
            static_token_age_secs: gauge(
                &rendered,
                "wasmhook_static_token_oldest_age_seconds",
                api,
            )
            .filter(|v| v.is_finite()),
        });
        let list = match state.store.installations(api).await {
            Ok(list) => list,
            Err(e) => return super::admin::store_error(e),
        };
        for i in list {
            if matches!(
                i.state,
                InstallationState::NeedsReauth | InstallationState::Pending
            ) {
                needing += 1;
                if installations.len() < MAX_INSTALLATIONS {
                    installations.push(InstallationNeed {
                        api: i.api,
                        tenant: i.tenant,
                        state: i.state.as_str().to_string(),
                    });
                }
            }
        }
    }
    let failing = state
        .tokens
        .as_ref()
        .map(|t| t.refresh_failing())
        .unwrap_or_default();
    for (api, tenant) in failing {
        if !state.apis.contains(&api) {
            continue;
        }
        needing += 1;
        if installations.len() < MAX_INSTALLATIONS {
            installations.push(InstallationNeed {
                api,
                tenant,
                state: "refresh-failing".to_string(),
            });
        }
    }
    Json(Status {
        since_ms,
        plugins,
        apis,
        installations_needing_action: needing,
        installations,
        alerts: alerts::open(),
    })
    .into_response()
}

/// The value of `family{api="<api>"}` in the Prometheus text.
fn gauge(rendered: &str, family: &str, api: &ApiName) -> Option<f64> {
    let prefix = format!("{family}{{api=\"{}\"}} ", api.as_str());
    rendered
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_is_read_by_its_exact_family_and_api() {
        let text = "wasmhook_api_ratelimit_remaining{api=\"hl\"} 87\n\
                    wasmhook_api_ratelimit_remaining_x{api=\"hl\"} 1\n\
                    wasmhook_api_ratelimit_remaining{api=\"hl2\"} 3\n";
        let hl = ApiName::new("hl");
        assert_eq!(
            gauge(text, "wasmhook_api_ratelimit_remaining", &hl),
            Some(87.0)
        );
        assert_eq!(gauge(text, "wasmhook_api_breaker_open", &hl), None);
    }
}
