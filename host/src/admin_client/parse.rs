//! Command-line values of the admin commands: `--since` (a duration ago or a timestamp) and
//! `--rate` (`N/s`, `N/m`, `N/h`, or `N` per second).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--since`: `1h` (that long before `now`) or an RFC 3339 time (`2025-01-31T12:00:00Z`), as
/// ms since the epoch.
pub fn parse_since(text: &str, now: SystemTime) -> Result<i64, String> {
    let at = match humantime::parse_duration(text) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(text).map_err(|_| {
            format!("`{text}` is neither a duration (\"2h\", \"3d\") nor a time (\"2025-01-31T12:00:00Z\")")
        })?,
    };
    Ok(at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// `--rate`: deliveries per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (count, per) = match text.split_once('/') {
        Some((count, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => Duration::from_secs(1),
                "m" | "min" | "minute" => Duration::from_secs(60),
                "h" | "hour" => Duration::from_secs(3600),
                other => {
                    return Err(format!(
                        "`{other}` is not a rate unit; write N/s, N/m or N/h"
                    ));
                }
            };
            (count, per)
        }
        None => (text, Duration::from_secs(1)),
    };
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a rate; write e.g. \"10/s\""))?;
    if !(count.is_finite() && count > 0.0) {
        return Err(format!("`{text}`: the rate must be above zero"));
    }
    Ok(count / per.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_ago_or_a_time() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(parse_since("1h", now).unwrap(), (10_000 - 3600) * 1000);
        assert_eq!(parse_since("1970-01-01T00:00:05Z", now).unwrap(), 5000);
        assert_eq!(
            parse_since("999d", now).unwrap(),
            0,
            "before the epoch clamps"
        );
        assert!(parse_since("yesterday-ish", now).is_err());
    }

    #[test]
    fn rates_read_like_humans_write_them() {
        assert_eq!(parse_rate("10/s").unwrap(), 10.0);
        assert_eq!(parse_rate("5").unwrap(), 5.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert!((parse_rate("36/h").unwrap() - 0.01).abs() < 1e-9);
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("10/fortnight").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
