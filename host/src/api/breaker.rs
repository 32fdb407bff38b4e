//! The circuit breaker of one API: after a run of server failures, calls fail fast for a
//! cool-down instead of adding load to a struggling upstream; then one probe decides.
//!
//! States: closed (counting consecutive failures) -> open after `failures` of them (every call
//! refused, nothing sent) -> after `cool_down`, half-open: exactly one call is let through as the
//! probe while the others are still refused -> the probe's success closes the breaker, its
//! failure re-opens it for another cool-down. A probe that ends without an outcome (its call was
//! cancelled or ran out of delivery time before sending) frees the probe slot for the next call.
//!
//! What counts: a failure is a 5xx, a timeout or a transient transport error (the upstream did
//! not answer properly); any other answer, 4xx and 429 included, proves the upstream is up and
//! counts as a success. The breaker is per API, not per tenant: it protects against the API
//! being down, which affects every tenant alike.
//!
//! Invariants: state changes happen under one short lock, never held across an await; the gauge
//! `wasmhook_api_breaker_open{api}` is 1 exactly while the breaker is open or half-open.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

use super::observe;
use crate::{config::BreakerConfig, ids::ApiName};

/// How long a refused call is told to wait while a probe is in flight (its outcome is not yet
/// known, so this is a guess; it only shapes the error message).
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The breaker of one API.
#[derive(Debug)]
pub struct Breaker {
    api: ApiName,
    config: BreakerConfig,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Why a call was refused: the breaker is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The consecutive failures that opened it.
    pub failures: u32,
    /// Until the next probe may go (approximately).
    pub retry_after: Duration,
}

/// How an admitted attempt ended, as far as the breaker cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (any status below 500).
    Up,
    /// 5xx, timeout or transient transport failure.
    Down,
}

/// Permission to send one attempt. Report how it ended with [`Admission::record`]; dropping it
/// unrecorded frees a probe slot without changing the state.
#[must_use = "record the attempt's outcome"]
#[derive(Debug)]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    /// A closed breaker for `api`; `config.failures == 0` disables it.
    pub fn new(api: ApiName, config: BreakerConfig) -> Breaker {
        observe::breaker_gauge(api.as_str(), false);
        Breaker {
            api,
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Admits an attempt now, or refuses it (nothing may be sent).
    pub fn admit(&self) -> Result<Admission<'_>, Refused> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Result<Admission<'_>, Refused> {
        let admission = |probe| Admission {
            breaker: self,
            probe,
            recorded: false,
        };
        if self.config.failures == 0 {
            return Ok(admission(false));
        }
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(admission(false)),
            State::Open { until } if now < until => Err(Refused {
                failures: self.config.failures,
                retry_after: until - now,
            }),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(admission(true))
            }
            State::HalfOpen { probing: true } => Err(Refused {
                failures: self.config.failures,
                retry_after: PROBE_WAIT,
            }),
        }
    }

    fn record(&self, probe: bool, outcome: Outcome, now: Instant) {
        if self.config.failures == 0 {
            return;
        }
        let mut state = self.lock();
        let before = *state;
        *state = match (before, probe, outcome) {
            (State::Closed { .. }, _, Outcome::Up) => State::Closed { failures: 0 },
            (State::Closed { failures }, _, Outcome::Down) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failures {
                    State::Open {
                        until: now + self.config.cool_down,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (State::HalfOpen { .. }, true, Outcome::Up) => State::Closed { failures: 0 },
            (State::HalfOpen { .. }, true, Outcome::Down) => State::Open {
                until: now + self.config.cool_down,
            },
            // A call admitted before the breaker opened ended late: only the probe decides.
            (other, _, _) => other,
        };
        let after = *state;
        drop(state);
        let was_open = !matches!(before, State::Closed { .. });
        let is_open = !matches!(after, State::Closed { .. });
        if was_open != is_open || (probe && matches!(after, State::Open { .. })) {
            observe::breaker_changed(
                self.api.as_str(),
                is_open,
                self.config.failures,
                self.config.cool_down,
            );
        }
    }

    fn release_probe(&self) {
        let mut state = self.lock();
        if *state == (State::HalfOpen { probing: true }) {
            *state = State::HalfOpen { probing: false };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Admission<'_> {
    /// Whether this attempt is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports how the attempt ended.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.probe, outcome, Instant::now());
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(
            ApiName::new("hl"),
            BreakerConfig {
                failures,
                cool_down: Duration::from_secs(30),
            },
        )
    }

    fn fail(b: &Breaker, now: Instant) {
        b.admit_at(now).unwrap().record(Outcome::Down);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_run_and_probes_once_after_the_cool_down() {
        let b = breaker(3);
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        // A success in between resets the run.
        b.admit_at(t0).unwrap().record(Outcome::Up);
        fail(&b, t0);
        fail(&b, t0);
        assert!(b.admit_at(t0).is_ok());
        fail(&b, t0);
        let refused = b.admit_at(t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(refused.failures, 3);
        assert_eq!(refused.retry_after, Duration::from_secs(29));

        // After the cool-down: one probe, the others refused while it runs.
        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = b.admit().unwrap();
        assert!(probe.is_probe());
        assert!(b.admit().is_err());
        probe.record(Outcome::Up);
        assert!(!b.admit().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_a_dropped_one_frees_the_slot() {
        let b = breaker(1);
        fail(&b, Instant::now());
        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = b.admit().unwrap();
        drop(probe);
        let probe = b.admit().unwrap();
        assert!(probe.is_probe());
        probe.record(Outcome::Down);
        assert_eq!(
            b.admit().unwrap_err().retry_after,
            Duration::from_secs(30),
            "a failed probe starts a whole new cool-down"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_do_not_close_an_open_breaker() {
        let b = breaker(1);
        let early = b.admit().unwrap();
        fail(&b, Instant::now());
        // The call admitted before the breaker opened answers now: no probe, no closing.
        early.record(Outcome::Up);
        assert!(b.admit().is_err());
    }

    #[test]
    fn zero_failures_disables_it() {
        let b = breaker(0);
        for _ in 0..100 {
            fail(&b, Instant::now());
        }
        assert!(b.admit().is_ok());
    }
}
