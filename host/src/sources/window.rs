//! The replay window of schemes that sign a timestamp (Standard Webhooks, Stripe, Slack): the
//! signed time must be within the tolerance of our clock, in both directions.
//!
//! Why both directions: a timestamp far in the future would stay "fresh" long after the dedup
//! retention forgot the event id, so a captured request could be replayed later; and a sender
//! whose clock is that far off should be told (the error says to check the clock).

use std::time::Duration;

use super::VerifyError;

/// Checks the signed time `sent_secs` (Unix seconds, from `header`) against `now_ms`.
pub(super) fn check(
    header: &'static str,
    sent_secs: i64,
    now_ms: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let tolerance_ms = i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX);
    let sent_ms = sent_secs.saturating_mul(1000);
    let age_ms = now_ms.saturating_sub(sent_ms);
    if age_ms > tolerance_ms {
        return Err(VerifyError::TooOld {
            header: header.into(),
            age_secs: (age_ms / 1000).unsigned_abs(),
            tolerance_secs: tolerance.as_secs(),
        });
    }
    if -age_ms > tolerance_ms {
        return Err(VerifyError::TooNew {
            header: header.into(),
            ahead_secs: (age_ms / 1000).unsigned_abs(),
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);
    const NOW_MS: i64 = 1_700_000_000_000;
    const NOW_S: i64 = NOW_MS / 1000;

    #[test]
    fn inside_the_window_both_ways_is_accepted() {
        for sent in [NOW_S, NOW_S - 300, NOW_S + 300, NOW_S - 1, NOW_S + 1] {
            assert_eq!(check("t", sent, NOW_MS, FIVE_MIN), Ok(()), "{sent}");
        }
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_with_their_distance() {
        match check("t", NOW_S - 301, NOW_MS, FIVE_MIN) {
            Err(VerifyError::TooOld {
                age_secs,
                tolerance_secs,
                ..
            }) => assert_eq!((age_secs, tolerance_secs), (301, 300)),
            other => panic!("{other:?}"),
        }
        match check("t", NOW_S + 301, NOW_MS, FIVE_MIN) {
            Err(VerifyError::TooNew { ahead_secs, .. }) => assert_eq!(ahead_secs, 301),
            other => panic!("{other:?}"),
        }
        // Absurd values do not overflow.
        assert!(check("t", i64::MAX, NOW_MS, FIVE_MIN).is_err());
        assert!(check("t", 0, NOW_MS, FIVE_MIN).is_err());
    }
}
