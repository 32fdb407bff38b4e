//! When a failed attempt runs again: `base * 2^(attempt-1)`, within ±10% jitter, capped at
//! `max`; or the plugin's own `retry(after)` when it gave one (also capped).

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
pub fn delay(attempt: u32, base: Duration, max: Duration, requested: Option<Duration>) -> Duration {
    if let Some(after) = requested {
        return after.min(max);
    }
    let exp = attempt.saturating_sub(1).min(30);
    let nominal = base.saturating_mul(1u32 << exp).min(max);
    // Jitter spreads retries of a burst that failed together, so they do not return together.
    let factor = rand::thread_rng().gen_range(0.9..=1.1);
    nominal.mul_f64(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for (attempt, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)] {
            for _ in 0..100 {
                let d = delay(attempt, base, max, None).as_secs_f64();
                assert!(
                    (nominal * 0.9..=nominal * 1.1).contains(&d),
                    "attempt {attempt}: {d}s not within 10% of {nominal}s"
                );
            }
        }
        assert!(delay(20, base, max, None) <= max);
    }

    #[test]
    fn plugin_request_wins_but_is_capped() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(
            delay(1, base, max, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(delay(1, base, max, Some(Duration::from_secs(600))), max);
    }
}
