//! The one path every alert takes: `alerts::raise`. It logs at error level and counts; later
//! sinks (a signed POST, de-duplication, resolution messages) plug in here and nowhere else.

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertKind {
    /// A delivery ran out of attempts or failed for good.
    DeliveryDead,
    /// An API call gave up after its retries.
    ApiGaveUp,
    /// An API answered 401 after a refresh, or 403.
    AuthFailure,
    /// A plugin could not be loaded.
    PluginLoad,
    /// A SIGHUP reload failed; the previous settings stay in force.
    Reload,
    /// Getting a new token (refresh, mint) failed for a reason worth retrying.
    TokenRefresh,
    /// A static token is older than `rotate_after`.
    TokenAge,
}

impl AlertKind {
    /// The stable name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DeliveryDead => "delivery_dead",
            AlertKind::ApiGaveUp => "api_gave_up",
            AlertKind::AuthFailure => "auth_failure",
            AlertKind::PluginLoad => "plugin_load",
            AlertKind::Reload => "reload",
            AlertKind::TokenRefresh => "token_refresh",
            AlertKind::TokenAge => "token_age",
        }
    }
}

/// Raises an alert: an error log line with `subject` and `detail`, and
/// `wasmhook_alerts_total{kind}` + 1. `detail` must not contain secrets.
pub fn raise(kind: AlertKind, subject: &str, detail: &str) {
    tracing::error!(alert = kind.as_str(), subject, detail, "alert");
    metrics::counter!("wasmhook_alerts_total", "kind" => kind.as_str()).increment(1);
}
