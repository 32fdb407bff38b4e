//! RFC 3339 timestamps (`2025-06-25T06:57:06.225Z`) to and from milliseconds since the Unix
//! epoch, by hand: the workspace has no date crate and senders only use this one format.
//!
//! Invariants: parsing is strict about the shape (four-digit year, two-digit fields, a zone
//! designator is required) and about ranges (real calendar days, leap years included), so a
//! value that parses denotes exactly one instant. Fractions beyond milliseconds are truncated.
//! Formatting always writes UTC with three fraction digits, the form HighLevel sends.

/// Why a timestamp string is not RFC 3339. Says what is wrong, never echoes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp like 2025-06-25T06:57:06.225Z: {0}")]
pub struct TimestampError(&'static str);

impl TimestampError {
    /// What is wrong, without the surrounding explanation.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

/// Parses an RFC 3339 date-time into milliseconds since the epoch (negative before 1970).
///
/// Accepts `T`, `t` or a space between date and time (RFC 3339 §5.6 note), `Z`/`z` or a
/// `+hh:mm`/`-hh:mm` offset, an optional fraction of 1–9 digits (truncated to milliseconds),
/// and a leap second (`:60`, counted as the next second, as POSIX time does).
pub fn parse_rfc3339(text: &str) -> Result<i64, TimestampError> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(TimestampError("too short"));
    }
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(TimestampError("expected `T` between date and time"));
    }
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b':')?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b':')?;
    let second = digits(b, 17, 2)?;

    if !(1..=12).contains(&month) {
        return Err(TimestampError("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(TimestampError("day out of range for the month"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(TimestampError("time of day out of range"));
    }

    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            // Only the first three digits matter; later ones are truncated.
            if at - start < 3 {
                millis = millis * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        let len = at - start;
        if len == 0 || len > 9 {
            return Err(TimestampError("the fraction must have 1 to 9 digits"));
        }
        for _ in len..3 {
            millis *= 10;
        }
    }

    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            let oh = digits(b, at + 1, 2)?;
            expect(b, at + 3, b':')?;
            let om = digits(b, at + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err(TimestampError("zone offset out of range"));
            }
            let minutes = oh * 60 + om;
            if sign == b'-' { -minutes } else { minutes }
        }
        None => {
            return Err(TimestampError(
                "missing zone (`Z` or an offset like +02:00)",
            ));
        }
        Some(_) => return Err(TimestampError("unexpected text after the time")),
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDThh:mm:ss.mmmZ` (UTC).
///
/// Years outside 0000–9999 cannot be written in RFC 3339; they are clamped to those bounds'
/// first/last instant, which no caller reaches with a real clock.
pub fn format_rfc3339_ms(ms: i64) -> String {
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(MIN, MAX);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// `len` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Result<i64, TimestampError> {
    let field = b.get(at..at + len).ok_or(TimestampError("too short"))?;
    field.iter().try_fold(0i64, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + i64::from(c - b'0'))
        } else {
            Err(TimestampError("expected a digit"))
        }
    })
}

fn expect(b: &[u8], at: usize, want: u8) -> Result<(), TimestampError> {
    match b.get(at) {
        Some(&c) if c == want => Ok(()),
        _ => Err(TimestampError("misplaced separator")),
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`:
/// years are counted from March so the leap day falls at the end of a 400-year era).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_highlevel_timestamps() {
        // Checked against `date -u -d 2025-06-25T06:57:06.225Z +%s%3N`.
        assert_eq!(
            parse_rfc3339("2025-06-25T06:57:06.225Z"),
            Ok(1_750_834_626_225)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn offsets_and_fractions() {
        let utc = parse_rfc3339("2024-02-29T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2024-02-29T14:30:00+02:30"), Ok(utc));
        assert_eq!(parse_rfc3339("2024-02-29T07:00:00-05:00"), Ok(utc));
        assert_eq!(parse_rfc3339("2024-02-29t12:00:00z"), Ok(utc));
        assert_eq!(parse_rfc3339("2024-02-29 12:00:00Z"), Ok(utc));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.5Z"), Ok(utc + 500));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456789Z"),
            Ok(utc + 123)
        );
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.07Z"), Ok(utc + 70));
    }

    #[test]
    fn leap_second_counts_as_the_next_second() {
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rejects_malformed_and_out_of_range() {
        for bad in [
            "",
            "2025-06-25",
            "2025-06-25T06:57:06",   // no zone
            "2025-06-25T06:57:06.Z", // empty fraction
            "2025-06-25T06:57:06.1234567890Z",
            "2025-13-01T00:00:00Z",
            "2025-00-01T00:00:00Z",
            "2025-02-29T00:00:00Z", // not a leap year
            "1900-02-29T00:00:00Z", // century, not leap
            "2025-04-31T00:00:00Z",
            "2025-06-25T24:00:00Z",
            "2025-06-25T23:60:00Z",
            "2025-06-25T06:57:06+2:00",
            "2025-06-25T06:57:06+24:00",
            "2025-06-25T06:57:06Zjunk",
            "2025/06/25T06:57:06Z",
            "20x5-06-25T06:57:06Z",
            "2025-06-25T06:57:06.225Z ",
            "+2025-06-25T06:57:06Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            parse_rfc3339("2000-02-29T00:00:00Z").is_ok(),
            "400-year leap"
        );
    }

    #[test]
    fn error_does_not_echo_the_input() {
        let err = parse_rfc3339("secret-looking-value-0000").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0,
            -1,
            1_750_834_626_225,
            951_782_400_000, // 2000-02-29
            4_102_444_799_999,
            -62_167_219_200_000,
        ] {
            let text = format_rfc3339_ms(ms);
            assert_eq!(parse_rfc3339(&text), Ok(ms), "{text}");
        }
        assert_eq!(
            format_rfc3339_ms(1_750_834_626_225),
            "2025-06-25T06:57:06.225Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1900..2300 covers non-leap centuries and a 400-year leap one.
        let start = days_from_civil(1900, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        for days in start..end {
            let (y, m, d) = civil_from_days(days);
            assert!(d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(end - start, 400 * 365 + 97);
    }
}
