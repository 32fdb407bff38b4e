//! The windowed rules: an API's error rate and its run of authentication failures, counted in
//! sliding windows of ten buckets each, so memory per API is fixed however busy it is.
//!
//! Invariants: a rule says "firing" or "clear" from its window alone; turning that into one
//! alert per incident is the caller's job (`Alerter` de-duplicates). Keys are configured API
//! names (the `unknown` label for anything else), so the maps stay as small as the config.

use std::{collections::HashMap, collections::VecDeque, time::Duration};

use crate::config::AlertsConfig;

/// Buckets per window: the window slides in steps of a tenth of its length.
const BUCKETS: i64 = 10;

/// Counts in a sliding window of `BUCKETS` buckets.
#[derive(Debug)]
pub(super) struct Window {
    bucket_ms: i64,
    /// (bucket start, total, matching), oldest first.
    buckets: VecDeque<(i64, u64, u64)>,
}

impl Window {
    pub(super) fn new(length: Duration) -> Window {
        let ms = i64::try_from(length.as_millis()).unwrap_or(i64::MAX);
        Window {
            bucket_ms: (ms / BUCKETS).max(1),
            buckets: VecDeque::new(),
        }
    }

    pub(super) fn record(&mut self, now_ms: i64, matching: bool) {
        self.expire(now_ms);
        let start = now_ms - now_ms.rem_euclid(self.bucket_ms);
        match self.buckets.back_mut() {
            Some((at, total, hits)) if *at == start => {
                *total += 1;
                *hits += u64::from(matching);
            }
            _ => self.buckets.push_back((start, 1, u64::from(matching))),
        }
    }

    /// (total, matching) inside the window at `now_ms`.
    pub(super) fn sums(&mut self, now_ms: i64) -> (u64, u64) {
        self.expire(now_ms);
        self.buckets
            .iter()
            .fold((0, 0), |(t, h), (_, total, hits)| (t + total, h + hits))
    }

    fn expire(&mut self, now_ms: i64) {
        let oldest = now_ms - self.bucket_ms * BUCKETS;
        while self.buckets.front().is_some_and(|(at, _, _)| *at <= oldest) {
            self.buckets.pop_front();
        }
    }
}

/// What a rule says about its subject now.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Firing(String),
    Clear(String),
    /// Neither: keep whatever state the subject is in (no flapping while the failures of an
    /// incident age out one by one).
    Hold,
}

/// Each API's verdict of one rule.
pub(super) type Verdicts = Vec<(String, Verdict)>;

/// Error-rate and auth-failure windows per API.
#[derive(Debug)]
pub(super) struct Rules {
    config: AlertsConfig,
    errors: HashMap<String, Window>,
    auth: HashMap<String, Window>,
}

impl Rules {
    pub(super) fn new(config: AlertsConfig) -> Rules {
        Rules {
            config,
            errors: HashMap::new(),
            auth: HashMap::new(),
        }
    }

    pub(super) fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// Counts one attempt of `api` (`error`: 5xx, timeout or transport failure).
    pub(super) fn attempt(&mut self, api: &str, error: bool, now_ms: i64) -> Verdict {
        let length = self.config.api_error_window;
        let window = self
            .errors
            .entry(api.to_string())
            .or_insert_with(|| Window::new(length));
        window.record(now_ms, error);
        self.error_rate(api, now_ms)
    }

    /// (attempts, failed attempts) of `api` in the error-rate window.
    pub(super) fn api_errors(&mut self, api: &str, now_ms: i64) -> (u64, u64) {
        self.errors.get_mut(api).map_or((0, 0), |w| w.sums(now_ms))
    }

    fn error_rate(&mut self, api: &str, now_ms: i64) -> Verdict {
        let (total, errors) = self.errors.get_mut(api).map_or((0, 0), |w| w.sums(now_ms));
        let window = humantime_secs(self.config.api_error_window);
        let share = if total == 0 {
            0.0
        } else {
            errors as f64 / total as f64
        };
        if total >= self.config.api_error_min_requests && share >= self.config.api_error_rate {
            Verdict::Firing(format!(
                "{errors} of {total} attempts in the last {window} failed (5xx, timeout or transport); the limit is {:.0}%",
                self.config.api_error_rate * 100.0
            ))
        } else {
            Verdict::Clear(format!(
                "{errors} of {total} attempts in the last {window} failed"
            ))
        }
    }

    /// Counts one final 401/403 of `api`.
    pub(super) fn auth_failure(&mut self, api: &str, now_ms: i64) -> Verdict {
        let length = self.config.auth_failure_window;
        let window = self
            .auth
            .entry(api.to_string())
            .or_insert_with(|| Window::new(length));
        window.record(now_ms, true);
        self.auth_state(api, now_ms)
    }

    fn auth_state(&mut self, api: &str, now_ms: i64) -> Verdict {
        let (count, _) = self.auth.get_mut(api).map_or((0, 0), |w| w.sums(now_ms));
        let window = humantime_secs(self.config.auth_failure_window);
        if count >= self.config.auth_failures {
            Verdict::Firing(format!(
                "{count} requests were refused with 401/403 in the last {window}; an installation may need re-authorisation or a token was revoked"
            ))
        } else if count == 0 {
            Verdict::Clear(format!("no 401/403 answers in the last {window}"))
        } else {
            Verdict::Hold
        }
    }

    /// Every API's current verdicts, for the periodic check that resolves rules after
    /// traffic stopped: (error-rate verdicts, auth verdicts).
    pub(super) fn evaluate(&mut self, now_ms: i64) -> (Verdicts, Verdicts) {
        let apis: Vec<String> = self.errors.keys().cloned().collect();
        let errors = apis
            .into_iter()
            .map(|api| {
                let verdict = self.error_rate(&api, now_ms);
                (api, verdict)
            })
            .collect();
        let apis: Vec<String> = self.auth.keys().cloned().collect();
        let auth = apis
            .into_iter()
            .map(|api| {
                let verdict = self.auth_state(&api, now_ms);
                (api, verdict)
            })
            .collect();
        (errors, auth)
    }
}

/// `300s` -> `5m`, for messages.
fn humantime_secs(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s > 0 => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(AlertsConfig {
            api_error_min_requests: 4,
            api_error_rate: 0.5,
            api_error_window: Duration::from_secs(10),
            auth_failures: 2,
            auth_failure_window: Duration::from_secs(10),
            ..AlertsConfig::default()
        })
    }

    #[test]
    fn the_error_rate_fires_only_past_the_minimum_and_clears_when_the_window_empties() {
        let mut r = rules();
        for _ in 0..3 {
            assert!(matches!(r.attempt("hl", true, 1_000), Verdict::Clear(_)));
        }
        let Verdict::Firing(detail) = r.attempt("hl", false, 1_500) else {
            panic!("3 of 4 failed")
        };
        assert!(detail.contains("3 of 4"), "{detail}");
        assert!(matches!(r.attempt("other", true, 1_500), Verdict::Clear(_)));
        let (errors, _) = r.evaluate(12_000);
        assert!(
            errors.iter().all(|(_, v)| matches!(v, Verdict::Clear(_))),
            "{errors:?}"
        );
    }

    #[test]
    fn auth_failures_fire_at_the_threshold_and_clear_only_after_a_clean_window() {
        let mut r = rules();
        assert_eq!(r.auth_failure("hl", 0), Verdict::Hold);
        assert!(matches!(r.auth_failure("hl", 100), Verdict::Firing(d) if !d.is_empty()));
        let (_, auth) = r.evaluate(5_000);
        assert!(matches!(&auth[0].1, Verdict::Firing(_)));
        let (_, auth) = r.evaluate(11_000);
        assert!(matches!(&auth[0].1, Verdict::Clear(_)), "{auth:?}");
    }

    #[test]
    fn a_window_forgets_what_is_older_than_its_length() {
        let mut w = Window::new(Duration::from_secs(1));
        w.record(0, true);
        w.record(950, false);
        assert_eq!(w.sums(999), (2, 1));
        assert_eq!(w.sums(1_000), (1, 0));
        assert_eq!(w.sums(2_000), (0, 0));
    }
}
