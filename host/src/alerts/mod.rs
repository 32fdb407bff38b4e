//! The one path every alert takes: [`raise`] when something is wrong, [`resolve`] when it is
//! right again. A new incident logs at error level, counts in `wasmhook_alerts_total{kind}` and,
//! with `[alerts] url`, is POSTed as JSON signed with Standard Webhooks `v1`; its resolution
//! logs at info, counts in `wasmhook_alerts_resolved_total{kind}` and is POSTed the same way.
//!
//! Invariants:
//! - one incident is one alert: an incident is keyed by (kind, subject), and raising it again
//!   while it is open only logs at debug; subjects are bounded names (a plugin, an API, `queue`)
//!   or, for the token kinds, one installation (`api <api> tenant <tenant>`), never ids of
//!   single deliveries, so the open set stays as small as the set of things in trouble;
//! - kinds that are single events rather than states ([`AlertKind::is_incident`] false: a
//!   plugin that failed to load, a refused reload) are sent every time and never resolved;
//! - raising never blocks: the POST goes through a bounded queue to one task (`sink`);
//! - `detail` must not carry secrets; it is logged and sent as written.
//!
//! Like the `metrics` recorder, the alerter is process-wide so that every subsystem raises
//! through a free function without plumbing: [`configure`] (called by `run`) sets its rules and
//! sink, and a process that runs several servers shares one alerter.

mod rules;
mod sink;

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex, MutexGuard, PoisonError},
};

use rules::{Rules, Verdict};
use sink::Sink;
pub use sink::SinkError;

use crate::{config::AlertsConfig, ids::now_ms};

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// Deliveries of a plugin ran out of attempts or failed for good (subject: the plugin).
    DeliveryDead,
    /// An API call gave up after its retries (subject: the API).
    ApiGaveUp,
    /// An API's share of failed attempts passed `alerts.api_error_rate` (subject: the API).
    ApiErrorRate,
    /// An API answered 401/403 `alerts.auth_failures` times in the window (subject: the API).
    AuthFailure,
    /// The most overdue delivery waited past `alerts.queue_age` (subject: `queue`).
    QueueAge,
    /// A plugin could not be loaded.
    PluginLoad,
    /// A SIGHUP reload failed; the previous settings stay in force.
    Reload,
    /// Getting a new token (refresh, mint) failed for a reason worth retrying (subject: the
    /// api and tenant); resolved by the next success.
    TokenRefresh,
    /// A static token is older than `rotate_after` (subject: the api and tenant).
    TokenAge,
    /// An access token expires within `alerts.token_expiry.horizon` and was not refreshed
    /// although it was due (subject: the api and tenant); resolved by a successful refresh.
    TokenExpiry,
}

impl AlertKind {
    /// The stable name used in logs, metric labels and POSTed alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DeliveryDead => "delivery_dead",
            AlertKind::ApiGaveUp => "api_gave_up",
            AlertKind::ApiErrorRate => "api_error_rate",
            AlertKind::AuthFailure => "auth_failure",
            AlertKind::QueueAge => "queue_age",
            AlertKind::PluginLoad => "plugin_load",
            AlertKind::Reload => "reload",
            AlertKind::TokenRefresh => "token_refresh",
            AlertKind::TokenAge => "token_age",
            AlertKind::TokenExpiry => "token_expiry",
        }
    }

    /// True for states that stay open until resolved; false for single events.
    pub fn is_incident(self) -> bool {
        !matches!(self, AlertKind::PluginLoad | AlertKind::Reload)
    }
}

/// An open incident.
#[derive(Debug)]
struct Incident {
    since_ms: i64,
}

/// Open incidents, windowed rules and the optional sink.
#[derive(Debug)]
struct Alerter {
    open: HashMap<(AlertKind, String), Incident>,
    rules: Rules,
    sink: Option<Sink>,
}

static ALERTER: LazyLock<Mutex<Alerter>> = LazyLock::new(|| {
    Mutex::new(Alerter {
        open: HashMap::new(),
        rules: Rules::new(AlertsConfig::default()),
        sink: None,
    })
});

fn alerter() -> MutexGuard<'static, Alerter> {
    // Every critical section leaves the maps consistent, so a panic elsewhere cannot poison
    // the state in a way that matters.
    ALERTER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets the rules and (with `url` and `secret`) starts the signed POST; open incidents stay
/// open. Must run inside a tokio runtime. Fails when the secret cannot be read or used.
pub fn configure(config: &AlertsConfig) -> Result<(), SinkError> {
    let sink = match &config.webhook {
        Some(webhook) => {
            let secret = webhook.secret.load().map_err(|error| SinkError::Read {
                reference: webhook.secret.describe(),
                error,
            })?;
            Some(Sink::start(webhook.url.clone(), secret)?)
        }
        None => None,
    };
    let mut a = alerter();
    a.rules = Rules::new(config.clone());
    a.sink = sink;
    Ok(())
}

/// Raises an alert about `subject`. A new incident (or any single-event kind) logs at error,
/// counts and is POSTed; an incident already open only logs at debug.
pub fn raise(kind: AlertKind, subject: &str, detail: &str) {
    let now = now_ms();
    let mut a = alerter();
    if kind.is_incident() {
        let key = (kind, subject.to_string());
        if a.open.contains_key(&key) {
            tracing::debug!(alert = kind.as_str(), subject, detail, "alert still open");
            return;
        }
        a.open.insert(key, Incident { since_ms: now });
        active_gauge(&a, kind);
    }
    tracing::error!(alert = kind.as_str(), subject, detail, "alert");
    metrics::counter!("wasmhook_alerts_total", "kind" => kind.as_str()).increment(1);
    a.post("alert.firing", kind, subject, detail, now, now);
}

/// Resolves the open incident (kind, subject), if any: an info line, a count and a POST of the
/// resolution. Cheap when nothing is open (one map lookup), so callers may call it on every
/// success.
pub fn resolve(kind: AlertKind, subject: &str, detail: &str) {
    let mut a = alerter();
    if a.open.is_empty() {
        return;
    }
    let Some(incident) = a.open.remove(&(kind, subject.to_string())) else {
        return;
    };
    active_gauge(&a, kind);
    let now = now_ms();
    tracing::info!(
        alert = kind.as_str(),
        subject,
        detail,
        open_ms = now - incident.since_ms,
        "alert resolved"
    );
    metrics::counter!("wasmhook_alerts_resolved_total", "kind" => kind.as_str()).increment(1);
    a.post(
        "alert.resolved",
        kind,
        subject,
        detail,
        incident.since_ms,
        now,
    );
}

/// Counts one API attempt for the error-rate rule (`class` as in `wasmhook_api_requests_total`)
/// and resolves `api_gave_up` of `api` on a 2xx.
pub fn api_attempt(api: &str, class: &str) {
    let error = matches!(class, "5xx" | "timeout" | "transport");
    let verdict = alerter().rules.attempt(api, error, now_ms());
    apply(AlertKind::ApiErrorRate, api, verdict);
    if class == "2xx" {
        resolve(AlertKind::ApiGaveUp, api, "the API answered 2xx again");
    }
}

/// Counts one final 401/403 of `api` for the auth-failure rule.
pub fn auth_failure(api: &str) {
    let verdict = alerter().rules.auth_failure(api, now_ms());
    apply(AlertKind::AuthFailure, api, verdict);
}

/// Re-evaluates the windowed rules, so they resolve once traffic stops; run periodically.
pub fn evaluate() {
    let (errors, auth) = alerter().rules.evaluate(now_ms());
    for (api, verdict) in errors {
        apply(AlertKind::ApiErrorRate, &api, verdict);
    }
    for (api, verdict) in auth {
        apply(AlertKind::AuthFailure, &api, verdict);
    }
}

/// An open incident, as `wasmhook status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenAlert {
    pub kind: String,
    pub subject: String,
    pub since_ms: i64,
}

/// The open incidents, oldest first.
pub fn open() -> Vec<OpenAlert> {
    let a = alerter();
    let mut open: Vec<OpenAlert> = a
        .open
        .iter()
        .map(|((kind, subject), incident)| OpenAlert {
            kind: kind.as_str().to_string(),
            subject: subject.clone(),
            since_ms: incident.since_ms,
        })
        .collect();
    open.sort_by(|x, y| (x.since_ms, &x.subject).cmp(&(y.since_ms, &y.subject)));
    open
}

/// (attempts, failed attempts) of `api` in the error-rate window, now.
pub fn api_errors(api: &str) -> (u64, u64) {
    alerter().rules.api_errors(api, now_ms())
}

/// The configured rules (for the periodic checks).
pub fn config() -> AlertsConfig {
    alerter().rules.config().clone()
}

fn apply(kind: AlertKind, subject: &str, verdict: Verdict) {
    match verdict {
        Verdict::Firing(detail) => raise(kind, subject, &detail),
        Verdict::Clear(detail) => resolve(kind, subject, &detail),
        Verdict::Hold => {}
    }
}

fn active_gauge(a: &Alerter, kind: AlertKind) {
    let open = a.open.keys().filter(|(k, _)| *k == kind).count();
    metrics::gauge!("wasmhook_alerts_open", "kind" => kind.as_str()).set(open as f64);
}

impl Alerter {
    fn post(
        &self,
        kind_of_message: &str,
        kind: AlertKind,
        subject: &str,
        detail: &str,
        since_ms: i64,
        at_ms: i64,
    ) {
        let Some(sink) = &self.sink else { return };
        let body = serde_json::json!({
            "type": kind_of_message,
            "data": {
                "kind": kind.as_str(),
                "subject": subject,
                "detail": detail,
                "since_ms": since_ms,
                "at_ms": at_ms,
            }
        });
        sink.send(body.to_string().into_bytes());
    }
}
