//! The retry DECISION for one failed attempt: wait and send again, defer the whole delivery, or
//! give up. Pure (the caller supplies the jitter sample), so the schedule is tested without a
//! clock; the sending loop in `client.rs` does the waiting and bounds it by the deadline.
//!
//! Policy (DESIGN.md §6): only transient failures are retried (by default 429, 500, 502, 503,
//! 504; always timeouts and connection errors); waits of 1 s, 2 s, 4 s, 8 s with ±10% jitter,
//! then give up. Each API may configure its own schedule and statuses (`[apis.<name>.retry]`). A
//! 429 waits what the server asked (see `ratelimit.rs`) instead, without jitter: the server
//! knows when its window resets. A server wait longer than [`RetrySchedule::max_server_wait`]
//! (typically an exhausted daily quota) is not slept through inside a delivery: the delivery is
//! deferred until then (at most [`RetrySchedule::max_defer`]), without spending its attempts.

use std::time::Duration;

use super::classify::Failure;

/// Statuses retried by default: a rate limit, and server errors that a later attempt may not
/// meet (a 501 or 505 will not change on a retry).
pub const DEFAULT_RETRY_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// When to send a failed request again, and which statuses are worth it. `Default` is the
/// platform guide's schedule; `[apis.<name>.retry]` in the host config may set another per API.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySchedule {
    /// Wait before the 2nd, 3rd, ... attempt; its length is the number of retries.
    /// Default 1 s, 2 s, 4 s, 8 s (five attempts in all).
    pub delays: Vec<Duration>,
    /// Relative jitter on each scheduled delay: 0.1 = ±10%. Default 0.1. Spreads retries of
    /// many deliveries that failed together, so they do not return together.
    pub jitter: f64,
    /// Longest server-requested wait (429) slept through inside a delivery. Default 60 s.
    pub max_server_wait: Duration,
    /// Longest deferral of a delivery on a server's say-so; a bound against absurd headers.
    /// Default 24 h (a daily quota resets within a day).
    pub max_defer: Duration,
    /// HTTP statuses whose answers are transient (`on` in config), sorted. Timeouts and
    /// connection errors are transient whatever this holds. Default [`DEFAULT_RETRY_STATUSES`].
    pub statuses: Vec<u16>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            delays: [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
            jitter: 0.1,
            max_server_wait: Duration::from_secs(60),
            max_defer: Duration::from_secs(24 * 3600),
            statuses: DEFAULT_RETRY_STATUSES.to_vec(),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Wait this long, then send again.
    Retry(Duration),
    /// Stop now and have the delivery retried after this long (a daily quota, a long reset).
    Defer(Duration),
    /// Return the failure to the plugin.
    GiveUp,
}

impl RetrySchedule {
    /// Whether an answer with `status` may succeed if the same request is sent again.
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.binary_search(&status).is_ok()
    }

    /// Decides after attempt number `attempt` (1-based) failed with `failure`. `jitter_sample`
    /// is a uniform sample in [-1, 1] (clamped); 0 gives the exact schedule.
    pub fn decide(&self, failure: &Failure, attempt: u32, jitter_sample: f64) -> Decision {
        if !failure.transient {
            return Decision::GiveUp;
        }
        if let Some(wait) = failure.server_wait
            && wait > self.max_server_wait
        {
            return Decision::Defer(wait.min(self.max_defer));
        }
        let Some(delay) = self.delays.get(attempt.saturating_sub(1) as usize) else {
            return Decision::GiveUp;
        };
        match failure.server_wait {
            Some(wait) => Decision::Retry(wait),
            None => Decision::Retry(self.jittered(*delay, jitter_sample)),
        }
    }

    /// `delay` scaled by `1 + jitter * sample`, with `sample` clamped to [-1, 1].
    fn jittered(&self, delay: Duration, sample: f64) -> Duration {
        let sample = if sample.is_finite() {
            sample.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let factor = (1.0 + self.jitter.clamp(0.0, 1.0) * sample).max(0.0);
        delay.mul_f64(factor)
    }

    /// Most attempts a request can get: the first plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;

    fn transient(error: ApiError) -> Failure {
        Failure {
            error,
            transient: true,
            server_wait: None,
        }
    }

    fn server_error() -> Failure {
        transient(ApiError::ServerError {
            status: 503,
            body: vec![],
        })
    }

    fn rate_limited(wait: Option<Duration>) -> Failure {
        Failure {
            server_wait: wait,
            ..transient(ApiError::RateLimited {
                status: 429,
                body: vec![],
            })
        }
    }

    #[test]
    fn schedule_is_1_2_4_8_then_give_up() {
        let s = RetrySchedule::default();
        let f = server_error();
        let waits: Vec<Decision> = (1..=5).map(|a| s.decide(&f, a, 0.0)).collect();
        assert_eq!(
            waits,
            vec![
                Decision::Retry(Duration::from_secs(1)),
                Decision::Retry(Duration::from_secs(2)),
                Decision::Retry(Duration::from_secs(4)),
                Decision::Retry(Duration::from_secs(8)),
                Decision::GiveUp,
            ]
        );
        assert_eq!(s.max_attempts(), 5);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let s = RetrySchedule::default();
        let f = Failure::timeout();
        assert_eq!(
            s.decide(&f, 3, 1.0),
            Decision::Retry(Duration::from_millis(4400))
        );
        assert_eq!(
            s.decide(&f, 3, -1.0),
            Decision::Retry(Duration::from_millis(3600))
        );
        // Out-of-range or broken samples never widen the band.
        assert_eq!(
            s.decide(&f, 1, 7.0),
            Decision::Retry(Duration::from_millis(1100))
        );
        assert_eq!(
            s.decide(&f, 1, f64::NAN),
            Decision::Retry(Duration::from_secs(1))
        );
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let s = RetrySchedule::default();
        for error in [
            ApiError::ClientError {
                status: 404,
                body: vec![],
            },
            ApiError::Auth {
                status: 401,
                body: vec![],
            },
            ApiError::Transport("response larger than 10 bytes".into()),
        ] {
            assert_eq!(
                s.decide(&Failure::permanent(error), 1, 0.0),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn rate_limits_wait_what_the_server_says() {
        let s = RetrySchedule::default();
        assert_eq!(
            s.decide(&rate_limited(Some(Duration::from_secs(3))), 1, 1.0),
            Decision::Retry(Duration::from_secs(3))
        );
        // Without a hint, the schedule applies.
        assert_eq!(
            s.decide(&rate_limited(None), 2, 0.0),
            Decision::Retry(Duration::from_secs(2))
        );
        // The attempt limit still holds.
        assert_eq!(
            s.decide(&rate_limited(Some(Duration::from_secs(3))), 5, 0.0),
            Decision::GiveUp
        );
    }

    #[test]
    fn long_server_waits_defer_the_delivery_within_a_bound() {
        let s = RetrySchedule::default();
        assert_eq!(
            s.decide(&rate_limited(Some(Duration::from_secs(3600))), 1, 0.0),
            Decision::Defer(Duration::from_secs(3600))
        );
        assert_eq!(
            s.decide(
                &rate_limited(Some(Duration::from_secs(10 * 86_400))),
                5,
                0.0
            ),
            Decision::Defer(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn an_empty_schedule_sends_once() {
        let s = RetrySchedule {
            delays: vec![],
            ..RetrySchedule::default()
        };
        assert_eq!(s.decide(&server_error(), 1, 0.0), Decision::GiveUp);
        assert_eq!(s.max_attempts(), 1);
    }
}
