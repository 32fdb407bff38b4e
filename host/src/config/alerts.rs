//! `[alerts]`: the rules that turn counts into alerts, and the optional signed POST of each
//! alert. Every rule has a default, so an absent section still alerts (to the log and the
//! metrics); the POST needs both `url` and `secret`.

use std::time::Duration;

use serde::Deserialize;

use super::{raw::RawSecret, validate::Checker};
use crate::secret::SecretRef;

/// `[alerts]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub url: Option<String>,
    pub secret: Option<RawSecret>,
    pub api_error_rate: Option<f64>,
    pub api_error_window: Option<String>,
    pub api_error_min_requests: Option<u64>,
    pub auth_failures: Option<u64>,
    pub auth_failure_window: Option<String>,
    pub queue_age: Option<String>,
    pub check_interval: Option<String>,
    pub token_expiry: Option<RawTokenExpiry>,
}

/// `[alerts.token_expiry]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTokenExpiry {
    pub horizon: Option<String>,
}

/// `[alerts]`, validated.
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// Where each alert and resolution is POSTed as JSON signed with Standard Webhooks `v1`;
    /// None keeps alerts in the log and the metrics.
    pub webhook: Option<AlertWebhook>,
    /// Share of an API's attempts (5xx, timeouts, transport errors) in the window that raises
    /// `api_error_rate`, in (0, 1]. Default 0.5.
    pub api_error_rate: f64,
    /// The sliding window of the error-rate rule. Default 5 min.
    pub api_error_window: Duration,
    /// Attempts an API must see in the window before its error rate counts. Default 20.
    pub api_error_min_requests: u64,
    /// Final 401/403 answers of one API within the window that raise `auth_failure`. Default 3.
    pub auth_failures: u64,
    /// The window of the auth-failure rule. Default 10 min.
    pub auth_failure_window: Duration,
    /// How long the most overdue delivery may wait past its due time before `queue_age`
    /// fires. Default 5 min.
    pub queue_age: Duration,
    /// How often the queue is read and the windowed rules are re-evaluated (to resolve them
    /// once traffic stops). Default 15 s.
    pub check_interval: Duration,
    /// `[alerts.token_expiry] horizon`: an installation whose access token expires within
    /// this long, and which was not refreshed although it was due (its last refresh failed,
    /// or none was even tried), raises `token_expiry`. Default 30 min, well inside the share
    /// of lifetime at which tokens are refreshed (2.4 h of HighLevel's 24 h at the default
    /// `refresh_when_left`), so it fires only after refreshes kept failing for hours.
    pub token_expiry_horizon: Duration,
}

/// The destination of alert POSTs.
#[derive(Clone, Debug)]
pub struct AlertWebhook {
    pub url: reqwest::Url,
    /// A Standard Webhooks `whsec_...` secret.
    pub secret: SecretRef,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            webhook: None,
            api_error_rate: 0.5,
            api_error_window: Duration::from_secs(300),
            api_error_min_requests: 20,
            auth_failures: 3,
            auth_failure_window: Duration::from_secs(600),
            queue_age: Duration::from_secs(300),
            check_interval: Duration::from_secs(15),
            token_expiry_horizon: Duration::from_secs(1800),
        }
    }
}

pub(super) fn validate_alerts(c: &mut Checker<'_>, raw: RawAlerts) -> AlertsConfig {
    let d = AlertsConfig::default();
    let url = raw.url.as_deref().and_then(|text| match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        _ => {
            c.problem(
                "alerts.url",
                format!("`{text}` is not an http(s) URL; write e.g. \"https://ops.example.com/alerts\""),
            );
            None
        }
    });
    let secret = c.secret("alerts.secret", raw.secret);
    let webhook = match (url, secret, raw.url.is_some()) {
        (Some(url), Some(secret), _) => Some(AlertWebhook { url, secret }),
        (None, Some(_), false) => {
            c.problem(
                "alerts.secret",
                "a secret without `url` signs nothing; add alerts.url or remove the secret",
            );
            None
        }
        (Some(_), None, _) => {
            c.problem(
                "alerts.secret",
                "alerts.url needs a Standard Webhooks secret to sign with: secret = { env = \"VAR\" } holding a whsec_... value",
            );
            None
        }
        _ => None,
    };
    let api_error_rate = raw.api_error_rate.unwrap_or(d.api_error_rate);
    if !(api_error_rate > 0.0 && api_error_rate <= 1.0) {
        c.problem(
            "alerts.api_error_rate",
            "must be a share in (0, 1], e.g. 0.5 for half of the attempts",
        );
    }
    let min_one = |c: &mut Checker<'_>, field: &str, value: Option<u64>, default: u64| {
        let value = value.unwrap_or(default);
        if value == 0 {
            c.problem(field, "must be at least 1");
        }
        value
    };
    let positive = |c: &mut Checker<'_>, field: &str, value: Option<&str>, default: Duration| {
        let value = c.duration(field, value, default);
        if value.is_zero() {
            c.problem(field, "must be longer than 0, e.g. \"5m\"");
        }
        value
    };
    AlertsConfig {
        webhook,
        api_error_rate,
        api_error_window: positive(
            c,
            "alerts.api_error_window",
            raw.api_error_window.as_deref(),
            d.api_error_window,
        ),
        api_error_min_requests: min_one(
            c,
            "alerts.api_error_min_requests",
            raw.api_error_min_requests,
            d.api_error_min_requests,
        ),
        auth_failures: min_one(
            c,
            "alerts.auth_failures",
            raw.auth_failures,
            d.auth_failures,
        ),
        auth_failure_window: positive(
            c,
            "alerts.auth_failure_window",
            raw.auth_failure_window.as_deref(),
            d.auth_failure_window,
        ),
        queue_age: positive(c, "alerts.queue_age", raw.queue_age.as_deref(), d.queue_age),
        check_interval: positive(
            c,
            "alerts.check_interval",
            raw.check_interval.as_deref(),
            d.check_interval,
        ),
        token_expiry_horizon: positive(
            c,
            "alerts.token_expiry.horizon",
            raw.token_expiry.and_then(|t| t.horizon).as_deref(),
            d.token_expiry_horizon,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems(text: &str) -> String {
        match Config::parse(Path::new("cfg/wasmhook.toml"), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_url_needs_a_secret_and_rules_need_sane_values() {
        let msg = problems(
            "[alerts]\nurl = \"https://ops.example.com/a\"\napi_error_rate = 1.5\n\
             auth_failures = 0\nqueue_age = \"0s\"\n",
        );
        for needle in [
            "alerts.secret",
            "whsec_",
            "alerts.api_error_rate",
            "alerts.auth_failures",
            "alerts.queue_age",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
    }

    #[test]
    fn an_inline_secret_and_a_bad_url_are_refused_without_echoing_the_secret() {
        let msg = problems("[alerts]\nurl = \"ftp://x\"\nsecret = \"whsec_c2VjcmV0\"\n");
        assert!(msg.contains("alerts.url"), "{msg}");
        assert!(msg.contains("never written into the config"), "{msg}");
        assert!(!msg.contains("whsec_c2VjcmV0"), "{msg}");
    }

    #[test]
    fn a_full_section_validates() {
        let config = Config::parse(
            Path::new("w.toml"),
            "[alerts]\nurl = \"http://127.0.0.1:1/a\"\nsecret = { env = \"ALERT_SECRET\" }\n\
             api_error_window = \"1m\"\ncheck_interval = \"1s\"\n\n\
             [alerts.token_expiry]\nhorizon = \"45m\"\n",
        )
        .unwrap();
        assert!(config.alerts.webhook.is_some());
        assert_eq!(config.alerts.api_error_window.as_secs(), 60);
        assert_eq!(config.alerts.check_interval.as_secs(), 1);
        assert_eq!(config.alerts.token_expiry_horizon.as_secs(), 45 * 60);
    }

    #[test]
    fn a_zero_token_expiry_horizon_and_unknown_fields_are_named() {
        let msg = problems("[alerts.token_expiry]\nhorizon = \"0s\"\n");
        assert!(msg.contains("alerts.token_expiry.horizon"), "{msg}");
        let msg = problems("[alerts.token_expiry]\nwithin = \"30m\"\n");
        assert!(msg.contains("within"), "{msg}");
    }
}
