//! Rate-limit response headers: how long a 429 asks us to wait, and the headers every call logs.
//!
//! Wait precedence (DESIGN.md §6): `Retry-After` (delta seconds or an HTTP date), else
//! `X-RateLimit-Reset` (over 10^12 = epoch milliseconds, over 10^9 = epoch seconds, else delta
//! seconds), else `X-RateLimit-Interval-Milliseconds` (the length of the rate window). A header
//! that is absent, unparsable, or names a moment already past gives no hint and the next one is
//! consulted. The functions are pure: the caller passes the wall clock.

use std::time::Duration;

use http::HeaderMap;

/// Values above this are epoch milliseconds.
const EPOCH_MS_THRESHOLD: f64 = 1e12;
/// Values above this (and not above [`EPOCH_MS_THRESHOLD`]) are epoch seconds.
const EPOCH_S_THRESHOLD: f64 = 1e9;

/// How long the server asked us to wait before the next request, if it said. `now_ms` is the
/// wall clock in milliseconds since the Unix epoch.
pub fn server_wait(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    text("retry-after")
        .and_then(|v| retry_after(v, now_ms))
        .or_else(|| text("x-ratelimit-reset").and_then(|v| reset(v, now_ms)))
        .or_else(|| text("x-ratelimit-interval-milliseconds").and_then(interval))
        .filter(|d| !d.is_zero())
}

/// `Retry-After`: delta seconds or an IMF-fixdate.
fn retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at_ms = parse_http_date(value)?.checked_mul(1000)?;
    until(at_ms, now_ms)
}

/// `X-RateLimit-Reset`: epoch ms, epoch s or delta s, told apart by magnitude.
fn reset(value: &str, now_ms: i64) -> Option<Duration> {
    let v: f64 = value
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    if v > EPOCH_MS_THRESHOLD {
        until(v as i64, now_ms)
    } else if v > EPOCH_S_THRESHOLD {
        until((v * 1000.0) as i64, now_ms)
    } else {
        Some(Duration::from_secs_f64(v))
    }
}

/// `X-RateLimit-Interval-Milliseconds`: the window length; waiting it out frees the budget.
fn interval(value: &str) -> Option<Duration> {
    value.parse::<u64>().ok().map(Duration::from_millis)
}

/// Time from `now_ms` until `at_ms`; None when that moment has passed.
fn until(at_ms: i64, now_ms: i64) -> Option<Duration> {
    let delta = at_ms.checked_sub(now_ms)?;
    (delta > 0).then(|| Duration::from_millis(delta as u64))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, the only format HTTP senders may
/// generate) into epoch seconds. The obsolete RFC 850 and asctime forms give None: the caller
/// then falls back to the next header or the backoff schedule, which is safe.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let (_weekday, rest) = text.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next().filter(|d| d.len() == 2)?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let time = parts.next()?;
    if parts.next() != Some("GMT") || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = time.split(':');
    let mut field = |max: i64| {
        hms.next()
            .filter(|f| f.len() == 2)
            .and_then(|f| f.parse::<i64>().ok())
            .filter(|v| (0..=max).contains(v))
    };
    let (h, m, s) = (field(23)?, field(59)?, field(60)?);
    if hms.next().is_some() || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The rate-limit headers every call logs (HighLevel's names); absent ones are None.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSeen {
    /// `x-ratelimit-remaining`: requests left in the current window.
    pub remaining: Option<String>,
    /// `x-ratelimit-max`: requests allowed per window.
    pub max: Option<String>,
    /// `x-ratelimit-interval-milliseconds`: the window's length.
    pub interval: Option<String>,
    /// `x-ratelimit-daily-remaining`: requests left today.
    pub daily_remaining: Option<String>,
    /// `x-ratelimit-limit-daily`: requests allowed per day.
    pub daily_limit: Option<String>,
}

impl RateLimitSeen {
    /// Reads the headers, keeping at most a short prefix of each (they are numbers; a hostile
    /// server must not be able to flood the log).
    pub fn from_headers(headers: &HeaderMap) -> RateLimitSeen {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(32).collect())
        };
        RateLimitSeen {
            remaining: get("x-ratelimit-remaining"),
            max: get("x-ratelimit-max"),
            interval: get("x-ratelimit-interval-milliseconds"),
            daily_remaining: get("x-ratelimit-daily-remaining"),
            daily_limit: get("x-ratelimit-limit-daily"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn wait(pairs: &[(&str, &str)]) -> Option<Duration> {
        server_wait(&headers(pairs), NOW_MS)
    }

    #[test]
    fn retry_after_wins_and_takes_seconds_or_a_date() {
        assert_eq!(
            wait(&[("retry-after", "3"), ("x-ratelimit-reset", "9")]),
            Some(Duration::from_secs(3))
        );
        // NOW_MS is 2023-11-14T22:13:20Z.
        assert_eq!(
            wait(&[("retry-after", "Tue, 14 Nov 2023 22:13:25 GMT")]),
            Some(Duration::from_secs(5))
        );
        // A date in the past gives no hint; the next header is used.
        assert_eq!(
            wait(&[
                ("retry-after", "Tue, 14 Nov 2023 22:00:00 GMT"),
                ("x-ratelimit-reset", "2")
            ]),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn reset_magnitude_picks_the_unit() {
        assert_eq!(
            wait(&[("x-ratelimit-reset", "7")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset", "1700000004")]),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            wait(&[("x-ratelimit-reset", "1700000001500")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(wait(&[("x-ratelimit-reset", "1600000000")]), None);
        assert_eq!(wait(&[("x-ratelimit-reset", "-5")]), None);
        assert_eq!(wait(&[("x-ratelimit-reset", "soon")]), None);
    }

    #[test]
    fn interval_is_the_last_resort() {
        assert_eq!(
            wait(&[("x-ratelimit-interval-milliseconds", "10000")]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            wait(&[
                ("x-ratelimit-reset", "junk"),
                ("x-ratelimit-interval-milliseconds", "250")
            ]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(wait(&[]), None);
        assert_eq!(wait(&[("retry-after", "0")]), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn seen_headers_are_read_and_bounded() {
        let seen = RateLimitSeen::from_headers(&headers(&[
            ("x-ratelimit-remaining", "97"),
            ("x-ratelimit-max", "100"),
            ("x-ratelimit-daily-remaining", &"9".repeat(100)),
        ]));
        assert_eq!(seen.remaining.as_deref(), Some("97"));
        assert_eq!(seen.max.as_deref(), Some("100"));
        assert_eq!(seen.daily_remaining.map(|d| d.len()), Some(32));
        assert_eq!(
            RateLimitSeen::from_headers(&HeaderMap::new()),
            RateLimitSeen::default()
        );
    }
}
