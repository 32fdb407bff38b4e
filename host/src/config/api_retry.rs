//! `[apis.<name>.retry]`: one API's retry schedule and retried statuses, validated from the raw
//! TOML into a [`RetrySchedule`]. A field left out keeps its default (1 s, 2 s, 4 s, 8 s; ±10%;
//! 429, 500, 502, 503, 504; 60 s; 24 h).
//!
//! Invariants of the result: at most [`MAX_WAITS`] waits, each above zero and at most
//! [`MAX_WAIT`]; jitter within 0..=0.5; statuses sorted, unique, within 400..=599 and none of
//! the never-transient 400, 401, 403, 404, 422; `max_server_wait` at most [`MAX_WAIT`];
//! `max_defer` above zero and at most [`MAX_DEFER`].

use std::time::Duration;

use super::{raw::RawRetry, validate::Checker};
use crate::api::RetrySchedule;

/// Most retries one request may get: every wait holds a delivery's worker.
const MAX_WAITS: usize = 10;
/// Longest single wait slept inside a delivery (a retry wait or a server-requested one).
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// Largest jitter: ±50% still keeps each wait above half its nominal length.
const MAX_JITTER: f64 = 0.5;
/// Longest deferral of a delivery on a server's say-so: the default storage retention, so a
/// deferred delivery is still stored when it comes due.
const MAX_DEFER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Validates `[apis.<name>.retry]` at `field`; problems go to `c`, and a bad value falls back to
/// its default so one run reports every problem.
pub(super) fn retry(c: &mut Checker, field: &str, raw: RawRetry) -> RetrySchedule {
    let defaults = RetrySchedule::default();
    let delays = match raw.waits {
        Some(waits) => waits_of(c, &format!("{field}.waits"), &waits),
        None => defaults.delays,
    };
    let jitter = match raw.jitter {
        Some(j) if (0.0..=MAX_JITTER).contains(&j) => j,
        Some(j) => {
            c.problem(
                format!("{field}.jitter"),
                format!("{j} is outside 0..={MAX_JITTER}; write e.g. 0.1 for ±10%"),
            );
            defaults.jitter
        }
        None => defaults.jitter,
    };
    let statuses = match raw.on {
        Some(on) => statuses_of(c, &format!("{field}.on"), &on),
        None => defaults.statuses,
    };
    let at = format!("{field}.max_server_wait");
    let max_server_wait = c.duration(
        &at,
        raw.max_server_wait.as_deref(),
        defaults.max_server_wait,
    );
    if max_server_wait > MAX_WAIT {
        c.problem(
            at,
            "must be at most 10m: a longer server wait defers the delivery instead (max_defer)",
        );
    }
    let at = format!("{field}.max_defer");
    let max_defer = c.duration(&at, raw.max_defer.as_deref(), defaults.max_defer);
    if max_defer.is_zero() || max_defer > MAX_DEFER {
        c.problem(
            at,
            "must be above zero and at most 7 days (the default retention); write e.g. \"24h\"",
        );
    }
    RetrySchedule {
        delays,
        jitter,
        max_server_wait: max_server_wait.min(MAX_WAIT),
        max_defer: max_defer.clamp(Duration::from_secs(1), MAX_DEFER),
        statuses,
    }
}

fn waits_of(c: &mut Checker, field: &str, waits: &[String]) -> Vec<Duration> {
    if waits.len() > MAX_WAITS {
        c.problem(
            field,
            format!(
                "{} waits is too many: at most {MAX_WAITS}; a longer outage is the dispatcher's \
                 retry (plugins.retry_base)",
                waits.len()
            ),
        );
    }
    waits
        .iter()
        .take(MAX_WAITS)
        .enumerate()
        .map(|(i, text)| {
            let at = format!("{field}[{i}]");
            let wait = c.duration(&at, Some(text), Duration::from_secs(1));
            if wait.is_zero() || wait > MAX_WAIT {
                c.problem(
                    at,
                    "each wait must be above zero and at most 10m; write e.g. \"2s\"",
                );
            }
            wait.clamp(Duration::from_millis(1), MAX_WAIT)
        })
        .collect()
}

fn statuses_of(c: &mut Checker, field: &str, on: &[i64]) -> Vec<u16> {
    let mut statuses: Vec<u16> = on
        .iter()
        .filter_map(|&code| {
            let why = match code {
                400 | 404 | 422 => {
                    Some("the request itself is wrong; sending it again cannot help")
                }
                401 => {
                    Some("a 401 is answered by one token refresh and one replay, not by retries")
                }
                403 => Some("a 403 means no access or a missing scope; retrying cannot grant it"),
                400..=599 => None,
                _ => Some("only error statuses (400..=599) can be retried"),
            };
            match why {
                Some(why) => {
                    c.problem(field, format!("{code} cannot be retried: {why}; remove it"));
                    None
                }
                None => u16::try_from(code).ok(),
            }
        })
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{
        api::{DEFAULT_RETRY_STATUSES, RetrySchedule},
        config::Config,
        ids::ApiName,
    };
    use std::time::Duration;

    fn retry(table: &str) -> Result<RetrySchedule, String> {
        let toml =
            format!("[apis.hl]\nbase_url = \"https://api.example\"\n[apis.hl.retry]\n{table}");
        Config::parse(Path::new("w.toml"), &toml)
            .map(|c| c.apis[&ApiName::new("hl")].retry.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_table_keeps_the_defaults() {
        assert_eq!(retry("").unwrap(), RetrySchedule::default());
        let default = RetrySchedule::default();
        assert_eq!(default.statuses, DEFAULT_RETRY_STATUSES);
        assert!(default.retries_status(503));
        assert!(!default.retries_status(501));
    }

    #[test]
    fn every_field_parses() {
        let r = retry(
            r#"waits = ["500ms", "3s", "10m"]
jitter = 0.5
on = [503, 408, 429, 503]
max_server_wait = "5s"
max_defer = "2h""#,
        )
        .unwrap();
        assert_eq!(
            r.delays,
            [
                Duration::from_millis(500),
                Duration::from_secs(3),
                Duration::from_secs(600)
            ]
        );
        assert_eq!(r.jitter, 0.5);
        assert_eq!(r.statuses, [408, 429, 503], "sorted, duplicates dropped");
        assert!(r.retries_status(408));
        assert!(!r.retries_status(500));
        assert_eq!(r.max_server_wait, Duration::from_secs(5));
        assert_eq!(r.max_defer, Duration::from_secs(7200));
        assert_eq!(r.max_attempts(), 4);
    }

    #[test]
    fn empty_lists_mean_send_once_and_retry_no_status() {
        let r = retry("waits = []\non = []").unwrap();
        assert_eq!(r.max_attempts(), 1);
        assert!(r.statuses.is_empty());
    }

    #[test]
    fn bad_values_are_all_named_with_the_fix() {
        let message = retry(
            r#"waits = ["1s", "0s", "11m", "soon"]
jitter = 0.6
on = [400, 401, 403, 404, 422, 302, 600, 503]
max_server_wait = "1h"
max_defer = "8d""#,
        )
        .unwrap_err();
        for needle in [
            "apis.hl.retry.waits[1]: each wait must be above zero and at most 10m",
            "apis.hl.retry.waits[2]: each wait must be above zero",
            "apis.hl.retry.waits[3]: `soon` is not a duration",
            "apis.hl.retry.jitter: 0.6 is outside 0..=0.5",
            "apis.hl.retry.on: 400 cannot be retried: the request itself is wrong",
            "apis.hl.retry.on: 401 cannot be retried: a 401 is answered by one token refresh",
            "apis.hl.retry.on: 403 cannot be retried: a 403 means no access",
            "apis.hl.retry.on: 404 cannot be retried",
            "apis.hl.retry.on: 422 cannot be retried",
            "apis.hl.retry.on: 302 cannot be retried: only error statuses (400..=599)",
            "apis.hl.retry.on: 600 cannot be retried",
            "apis.hl.retry.max_server_wait: must be at most 10m",
            "apis.hl.retry.max_defer: must be above zero and at most 7 days",
        ] {
            assert!(
                message.contains(needle),
                "missing {needle:?} in:\n{message}"
            );
        }
        assert!(message.starts_with("w.toml has 13 problem(s)"), "{message}");
        assert!(!message.contains("503"), "{message}");
    }

    #[test]
    fn too_many_waits_and_unknown_keys_are_refused() {
        let message = retry(&format!("waits = [{}]", ["\"1s\""; 11].join(", "))).unwrap_err();
        assert!(
            message.contains("apis.hl.retry.waits: 11 waits is too many: at most 10"),
            "{message}"
        );
        let message = retry("attempts = 3").unwrap_err();
        assert!(message.contains("attempts"), "{message}");
        let message = retry("jitter = nan").unwrap_err();
        assert!(message.contains("apis.hl.retry.jitter"), "{message}");
        let message = retry("max_defer = \"0s\"").unwrap_err();
        assert!(message.contains("apis.hl.retry.max_defer"), "{message}");
    }
}
