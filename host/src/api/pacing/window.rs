//! The budget of one (api, tenant) as plain data, with the clock passed in: how many requests may
//! go now, when the next slot frees, and how the API's own rate-limit headers correct the picture.
//!
//! The model is a bucket of `capacity` slots in which a slot, once used, comes back `period`
//! after its request's ANSWER arrived (not after it was sent). Counting from the answer makes
//! the bound hold on the server's side whatever the network latency: the request that reuses a
//! slot is sent after the previous one was already counted, plus a whole period, so no window of
//! length `period` at the server ever sees more than `capacity` of our requests — against fixed
//! and sliding windows alike. (A classic token bucket refilling continuously would let up to
//! twice the capacity through one window.)
//!
//! Corrections, the stricter view winning: `X-RateLimit-Max` lowers the capacity,
//! `X-RateLimit-Interval-Milliseconds` lengthens the period, `X-RateLimit-Remaining` below our
//! own count marks the difference as used for a period (someone else shares the quota),
//! `X-RateLimit-Limit-Daily`/`-Daily-Remaining` correct the daily count, and a 429's requested
//! wait blocks the bucket until then. Until the first answer arrives at most one request is in
//! flight, so the server can announce a lower limit before a burst goes out.
//!
//! Invariants: `returns` is sorted and holds only future instants after `expire`; it never holds
//! more than the largest capacity seen (at most [`MAX_TRACKED`]); with no capacity known it is
//! empty.

use std::{collections::VecDeque, time::Duration};

use http::HeaderMap;
use tokio::time::Instant;

use crate::config::RateLimit;

/// Largest capacity tracked: one instant is kept per used slot.
pub const MAX_TRACKED: u32 = 100_000;
/// Period assumed when the server announces a maximum but no interval and config names none
/// (HighLevel's window).
const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// Longest period or block a server may impose on us; a bound against absurd headers.
const MAX_SERVER_PERIOD: Duration = Duration::from_secs(3600);
/// The length of a "day" for the daily quota: a window starting at the first request.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The rate-limit headers of one answer, parsed (absent, unparsable or zero values are None).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerReport {
    /// `X-RateLimit-Max`: requests per interval.
    pub max: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in the current interval (0 is kept).
    pub remaining: Option<u64>,
    /// `X-RateLimit-Interval-Milliseconds`.
    pub interval: Option<Duration>,
    /// `X-RateLimit-Limit-Daily`.
    pub daily_limit: Option<u64>,
    /// `X-RateLimit-Daily-Remaining` (0 is kept).
    pub daily_remaining: Option<u64>,
}

impl ServerReport {
    /// Reads HighLevel's rate-limit headers.
    pub fn from_headers(headers: &HeaderMap) -> ServerReport {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let positive = |name: &str| number(name).filter(|n| *n > 0);
        ServerReport {
            max: positive("x-ratelimit-max"),
            remaining: number("x-ratelimit-remaining"),
            interval: positive("x-ratelimit-interval-milliseconds").map(Duration::from_millis),
            daily_limit: positive("x-ratelimit-limit-daily"),
            daily_remaining: number("x-ratelimit-daily-remaining"),
        }
    }
}

/// What an answered attempt tells the bucket.
#[derive(Clone, Copy, Debug, Default)]
pub struct Feedback {
    /// The HTTP status.
    pub status: u16,
    /// The rate-limit headers.
    pub report: ServerReport,
    /// For a 429: how long the server asked us to wait.
    pub server_wait: Option<Duration>,
}

/// Whether a request may go now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// A slot is free.
    Now,
    /// The next slot frees at this instant.
    At(Instant),
    /// Every slot is held by a request in flight: wait for an answer.
    Answer,
    /// The daily quota is exhausted until this instant.
    Quota(Instant),
}

/// The budget of one (api, tenant).
#[derive(Debug)]
pub struct Window {
    configured: Option<RateLimit>,
    server_max: Option<u32>,
    server_interval: Option<Duration>,
    server_daily: Option<u64>,
    in_flight: u32,
    /// When each used slot comes back, sorted.
    returns: VecDeque<Instant>,
    /// Whether any answer has arrived (until then one request at a time).
    answered: bool,
    /// A 429's requested wait.
    blocked_until: Option<Instant>,
    daily_used: u64,
    /// End of the current daily window; None before its first request.
    day_ends: Option<Instant>,
    /// The server said the daily quota is spent, until then.
    quota_until: Option<Instant>,
    last_used: Instant,
}

impl Window {
    /// A fresh budget from config (None: no configured limit).
    pub fn new(configured: Option<RateLimit>, now: Instant) -> Window {
        Window {
            configured,
            server_max: None,
            server_interval: None,
            server_daily: None,
            in_flight: 0,
            returns: VecDeque::new(),
            answered: false,
            blocked_until: None,
            daily_used: 0,
            day_ends: None,
            quota_until: None,
            last_used: now,
        }
    }

    /// Requests per period: the stricter of config and server; None = no known limit.
    pub fn capacity(&self) -> Option<u32> {
        let configured = self.configured.as_ref().map(|c| c.requests);
        match (configured, self.server_max) {
            (Some(c), Some(s)) => Some(c.min(s)),
            (one, other) => one.or(other),
        }
    }

    /// The window a used slot stays used for: the longer of config and server.
    pub fn period(&self) -> Duration {
        let configured = self.configured.as_ref().map(|c| c.per);
        match (configured, self.server_interval) {
            (Some(c), Some(s)) => c.max(s),
            (one, other) => one.or(other).unwrap_or(DEFAULT_PERIOD),
        }
    }

    /// Requests per day: the stricter of config and server.
    pub fn daily_limit(&self) -> Option<u64> {
        let configured = self.configured.as_ref().and_then(|c| c.daily);
        match (configured, self.server_daily) {
            (Some(c), Some(s)) => Some(c.min(s)),
            (one, other) => one.or(other),
        }
    }

    /// Drops what `now` has made stale: returned slots, a passed block, a finished day.
    pub fn expire(&mut self, now: Instant) {
        while self.returns.front().is_some_and(|t| *t <= now) {
            self.returns.pop_front();
        }
        if self.blocked_until.is_some_and(|t| t <= now) {
            self.blocked_until = None;
        }
        if self.quota_until.is_some_and(|t| t <= now) {
            self.quota_until = None;
        }
        if self.day_ends.is_some_and(|t| t <= now) {
            self.day_ends = None;
            self.daily_used = 0;
        }
    }

    fn used(&self) -> usize {
        self.in_flight as usize + self.returns.len()
    }

    /// Until when the daily quota is known exhausted (call after `expire`).
    fn quota(&self) -> Option<Instant> {
        let counted = self
            .daily_limit()
            .filter(|limit| self.daily_used >= *limit)
            .and(self.day_ends);
        match (counted, self.quota_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (one, other) => one.or(other),
        }
    }

    /// Whether a request may go at `now` (call after `expire`).
    pub fn ready(&self, now: Instant) -> Ready {
        if let Some(until) = self.quota() {
            return Ready::Quota(until);
        }
        if let Some(until) = self.blocked_until.filter(|t| *t > now) {
            return Ready::At(until);
        }
        if !self.answered && self.in_flight > 0 {
            return Ready::Answer;
        }
        let Some(capacity) = self.capacity() else {
            return Ready::Now;
        };
        let used = self.used();
        if used < capacity as usize {
            return Ready::Now;
        }
        // That many returns must pass before one slot is free.
        let needed = used - capacity as usize + 1;
        match self.returns.get(needed - 1) {
            Some(at) => Ready::At(*at),
            None => Ready::Answer,
        }
    }

    /// A lower bound on when the request with `ahead` others before it can go, assuming no new
    /// arrivals (call after `expire`).
    pub fn eta(&self, now: Instant, ahead: usize) -> Instant {
        let base = self.blocked_until.map_or(now, |t| t.max(now));
        let Some(capacity) = self.capacity().map(|c| c as usize) else {
            return base;
        };
        let free = capacity.saturating_sub(self.used());
        if ahead < free {
            return base;
        }
        let needed = ahead - free + 1;
        if let Some(at) = self.returns.get(needed - 1) {
            return base.max(*at);
        }
        // Slots held in flight come back a period after their answer, at the earliest a period
        // from now; each further round of `capacity` takes another period.
        let extra = needed - self.returns.len();
        let rounds = u32::try_from(extra.div_ceil(capacity.max(1))).unwrap_or(u32::MAX);
        base.max(now + self.period().saturating_mul(rounds))
    }

    /// Marks a slot used by a request about to be sent.
    pub fn take(&mut self, now: Instant) {
        self.in_flight += 1;
        self.last_used = now;
        // Counted only while a daily limit is known, so a count never spans more than one day.
        if self.daily_limit().is_some() {
            self.day_ends.get_or_insert(now + DAY);
            self.daily_used = self.daily_used.saturating_add(1);
        }
    }

    /// The request holding a slot ended: answered with `feedback`, or without an answer (a
    /// transport failure or cancellation: it may still have reached the server, so the slot is
    /// held for a period all the same).
    pub fn release(&mut self, now: Instant, feedback: Option<&Feedback>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_used = now;
        if let Some(feedback) = feedback {
            self.answered = true;
            self.learn(now, feedback);
        }
        if self.capacity().is_some() {
            self.hold(now + self.period(), 1);
        }
        if let Some(feedback) = feedback {
            self.clamp_to_remaining(now, &feedback.report);
        }
    }

    /// Applies the server's limits and waits.
    fn learn(&mut self, now: Instant, feedback: &Feedback) {
        let report = &feedback.report;
        if let Some(max) = report.max {
            self.server_max = Some(u32::try_from(max).unwrap_or(u32::MAX).min(MAX_TRACKED));
        }
        if let Some(interval) = report.interval {
            self.server_interval = Some(interval.min(MAX_SERVER_PERIOD));
        }
        if let Some(limit) = report.daily_limit {
            self.server_daily = Some(limit);
        }
        let wait = feedback
            .server_wait
            .filter(|_| feedback.status == 429)
            .map(|w| now + w);
        if report.daily_remaining == Some(0) {
            // Spent for the day: until the server's stated wait, else the end of our day. A
            // stated wait is the server's reset, so it also ends our count of the day (our own
            // day started at our first request and may end much later).
            if let Some(reset) = wait {
                self.day_ends = Some(reset);
            }
            let until = wait.or(self.day_ends).unwrap_or(now + DAY);
            self.quota_until = Some(self.quota_until.map_or(until, |q| q.max(until)));
        } else if let Some(until) = wait {
            let until = until.min(now + MAX_SERVER_PERIOD);
            self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
        }
        if let (Some(remaining), Some(limit)) = (report.daily_remaining, self.daily_limit()) {
            self.daily_used = self.daily_used.max(limit.saturating_sub(remaining));
            self.day_ends.get_or_insert(now + DAY);
        }
    }

    /// The server knows of fewer free slots than we do (another process shares the quota):
    /// count the difference as used for a period.
    fn clamp_to_remaining(&mut self, now: Instant, report: &ServerReport) {
        let (Some(remaining), Some(capacity)) = (report.remaining, self.capacity()) else {
            return;
        };
        let free = (capacity as usize).saturating_sub(self.used());
        let remaining = usize::try_from(remaining).unwrap_or(usize::MAX);
        if remaining < free {
            self.hold(now + self.period(), free - remaining);
        }
    }

    /// Marks `count` slots used until `at`, keeping `returns` sorted and bounded.
    fn hold(&mut self, at: Instant, count: usize) {
        let index = self.returns.partition_point(|t| *t <= at);
        for _ in 0..count {
            if self.returns.len() >= MAX_TRACKED as usize {
                break;
            }
            self.returns.insert(index, at);
        }
    }

    /// How long the (api, tenant) cannot send because the upstream said so: the daily quota
    /// or a 429's wait. None when it can send (call after `expire`).
    pub fn upstream_wait(&self, now: Instant) -> Option<Duration> {
        let until = match (self.quota(), self.blocked_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (one, other) => one.or(other),
        }?;
        Some(until.saturating_duration_since(now)).filter(|d| !d.is_zero())
    }

    /// Whether nothing here matters any more: nothing in flight or held, no block, and unused
    /// for `idle_for` (call after `expire`). Forgetting an idle bucket loses only its daily count,
    /// which the server's `Daily-Remaining` restores on the next answer.
    pub fn is_idle(&self, now: Instant, idle_for: Duration) -> bool {
        self.in_flight == 0
            && self.returns.is_empty()
            && self.blocked_until.is_none()
            && self.quota().is_none()
            && now.saturating_duration_since(self.last_used) >= idle_for
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
