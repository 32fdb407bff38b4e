//! The budget arithmetic with an explicit clock.

use super::*;

fn limit(requests: u32, per_secs: u64, daily: Option<u64>) -> Option<RateLimit> {
    Some(RateLimit {
        requests,
        per: Duration::from_secs(per_secs),
        daily,
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ok() -> Feedback {
    Feedback {
        status: 200,
        ..Feedback::default()
    }
}

fn with(report: ServerReport) -> Feedback {
    Feedback {
        status: 200,
        report,
        server_wait: None,
    }
}

/// Takes a slot at `at` and answers it at once with `feedback`.
fn round_trip(w: &mut Window, at: Instant, feedback: &Feedback) {
    w.expire(at);
    assert_eq!(w.ready(at), Ready::Now, "no slot at {at:?}");
    w.take(at);
    w.release(at, Some(feedback));
}

#[test]
fn one_request_in_flight_until_the_first_answer() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(100, 10, None), t0);
    w.take(t0);
    assert_eq!(w.ready(t0), Ready::Answer);
    w.release(t0, Some(&ok()));
    assert_eq!(w.ready(t0), Ready::Now);
    // After that, concurrency is up to the capacity.
    for _ in 0..98 {
        assert_eq!(w.ready(t0), Ready::Now);
        w.take(t0);
    }
    assert_eq!(w.ready(t0), Ready::Now);
    w.take(t0);
    assert_eq!(w.ready(t0), Ready::At(t0 + secs(10)));
}

#[test]
fn a_slot_comes_back_a_period_after_its_answer() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(2, 10, None), t0);
    round_trip(&mut w, t0, &ok());
    round_trip(&mut w, t0 + secs(1), &ok());
    let t = t0 + secs(2);
    w.expire(t);
    assert_eq!(w.ready(t), Ready::At(t0 + secs(10)));
    let t = t0 + secs(10);
    w.expire(t);
    assert_eq!(w.ready(t), Ready::Now);
    w.take(t);
    assert_eq!(w.ready(t), Ready::At(t0 + secs(11)));
}

#[test]
fn an_unanswered_end_still_holds_the_slot() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(1, 10, None), t0);
    round_trip(&mut w, t0, &ok());
    let t = t0 + secs(10);
    w.expire(t);
    w.take(t);
    w.release(t + secs(3), None);
    w.expire(t + secs(3));
    assert_eq!(w.ready(t + secs(3)), Ready::At(t + secs(13)));
}

#[test]
fn the_server_s_stricter_limits_win() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(100, 10, None), t0);
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            max: Some(50),
            interval: Some(secs(20)),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.capacity(), Some(50));
    assert_eq!(w.period(), secs(20));
    // A laxer report does not loosen config.
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            max: Some(500),
            interval: Some(secs(1)),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.capacity(), Some(100));
    assert_eq!(w.period(), secs(10));
}

#[test]
fn without_config_the_server_s_limits_apply() {
    let t0 = Instant::now();
    let mut w = Window::new(None, t0);
    assert_eq!(w.capacity(), None);
    round_trip(&mut w, t0, &ok());
    // Nothing known: nothing tracked.
    assert!(w.returns.is_empty());
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            max: Some(2),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.capacity(), Some(2));
    assert_eq!(w.period(), DEFAULT_PERIOD);
    round_trip(&mut w, t0, &ok());
    assert_eq!(w.ready(t0), Ready::At(t0 + DEFAULT_PERIOD));
}

#[test]
fn a_lower_remaining_marks_the_difference_used() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(10, 10, None), t0);
    // We used 1; the server says 3 are left: 6 more are someone else's.
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            remaining: Some(3),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.used(), 7);
    // A remaining that matches our own count adds nothing.
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            remaining: Some(2),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.used(), 8);
}

#[test]
fn a_429_wait_blocks_the_bucket() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(100, 10, None), t0);
    w.take(t0);
    w.release(
        t0,
        Some(&Feedback {
            status: 429,
            report: ServerReport::default(),
            server_wait: Some(secs(5)),
        }),
    );
    assert_eq!(w.ready(t0), Ready::At(t0 + secs(5)));
    assert_eq!(w.upstream_wait(t0), Some(secs(5)));
    assert_eq!(w.eta(t0, 0), t0 + secs(5));
    w.expire(t0 + secs(5));
    assert_eq!(w.ready(t0 + secs(5)), Ready::Now);
    assert_eq!(w.upstream_wait(t0 + secs(5)), None);
}

#[test]
fn the_daily_quota_is_counted_and_corrected() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(100, 10, Some(3)), t0);
    for _ in 0..3 {
        round_trip(&mut w, t0, &ok());
    }
    assert_eq!(w.ready(t0), Ready::Quota(t0 + DAY));
    assert_eq!(w.upstream_wait(t0), Some(DAY));
    // A new day starts when the old one ends.
    let tomorrow = t0 + DAY;
    w.expire(tomorrow);
    assert_eq!(w.ready(tomorrow), Ready::Now);

    // The server's count wins when it is higher.
    let mut w = Window::new(limit(100, 10, Some(1000)), t0);
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            daily_limit: Some(500),
            daily_remaining: Some(2),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.daily_limit(), Some(500));
    assert_eq!(w.daily_used, 498);
    round_trip(&mut w, t0, &ok());
    round_trip(&mut w, t0, &ok());
    assert!(matches!(w.ready(t0), Ready::Quota(_)));
}

#[test]
fn requests_before_a_daily_limit_is_known_are_not_held_against_it() {
    let t0 = Instant::now();
    let mut w = Window::new(None, t0);
    for _ in 0..1000 {
        round_trip(&mut w, t0, &ok());
    }
    round_trip(
        &mut w,
        t0,
        &with(ServerReport {
            daily_limit: Some(500),
            daily_remaining: Some(490),
            ..ServerReport::default()
        }),
    );
    assert_eq!(w.daily_used, 10);
    assert_eq!(w.ready(t0), Ready::Now);
}

#[test]
fn a_spent_daily_quota_lasts_what_the_server_says() {
    let t0 = Instant::now();
    let mut w = Window::new(None, t0);
    w.take(t0);
    w.release(
        t0,
        Some(&Feedback {
            status: 429,
            report: ServerReport {
                daily_remaining: Some(0),
                ..ServerReport::default()
            },
            server_wait: Some(secs(3600)),
        }),
    );
    assert_eq!(w.ready(t0), Ready::Quota(t0 + secs(3600)));
    assert_eq!(w.upstream_wait(t0 + secs(600)), Some(secs(3000)));
}

#[test]
fn a_spent_daily_quota_with_a_known_limit_ends_at_the_servers_reset() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(100, 10, Some(200_000)), t0);
    w.take(t0);
    w.release(
        t0,
        Some(&Feedback {
            status: 429,
            report: ServerReport {
                daily_limit: Some(200_000),
                daily_remaining: Some(0),
                ..ServerReport::default()
            },
            server_wait: Some(secs(3)),
        }),
    );
    // The count says the day is spent, but the server's reset ends it, not our 24 h estimate.
    assert_eq!(w.daily_used, 200_000);
    assert_eq!(w.upstream_wait(t0), Some(secs(3)));
    assert_eq!(w.ready(t0), Ready::Quota(t0 + secs(3)));
    w.expire(t0 + secs(3));
    assert_eq!(w.daily_used, 0, "a new day");
    assert_eq!(w.upstream_wait(t0 + secs(3)), None);
    assert_eq!(w.ready(t0 + secs(3)), Ready::Now);
}

#[test]
fn eta_is_a_lower_bound_from_the_known_returns() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(2, 10, None), t0);
    round_trip(&mut w, t0, &ok());
    round_trip(&mut w, t0 + secs(1), &ok());
    w.expire(t0 + secs(2));
    let now = t0 + secs(2);
    assert_eq!(w.eta(now, 0), t0 + secs(10));
    assert_eq!(w.eta(now, 1), t0 + secs(11));
    // Beyond the known returns, a period per round of capacity.
    assert_eq!(w.eta(now, 2), now + secs(10));
    assert_eq!(w.eta(now, 4), now + secs(20));
    let fresh = Window::new(limit(2, 10, None), t0);
    assert_eq!(fresh.eta(t0, 1), t0);
}

#[test]
fn idleness_needs_no_state_and_time() {
    let t0 = Instant::now();
    let mut w = Window::new(limit(1, 10, None), t0);
    round_trip(&mut w, t0, &ok());
    assert!(!w.is_idle(t0 + secs(5), secs(60)));
    let later = t0 + secs(61);
    w.expire(later);
    assert!(w.is_idle(later, secs(60)));
}

#[test]
fn headers_parse_leniently() {
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("x-ratelimit-max", "100"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-interval-milliseconds", "10000"),
        ("x-ratelimit-limit-daily", "junk"),
        ("x-ratelimit-daily-remaining", " 199999 "),
    ] {
        headers.insert(k, v.parse().unwrap());
    }
    assert_eq!(
        ServerReport::from_headers(&headers),
        ServerReport {
            max: Some(100),
            remaining: Some(0),
            interval: Some(secs(10)),
            daily_limit: None,
            daily_remaining: Some(199_999),
        }
    );
    headers.insert("x-ratelimit-max", "0".parse().unwrap());
    assert_eq!(ServerReport::from_headers(&headers).max, None);
}
