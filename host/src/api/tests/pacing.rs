//! Pacing against a fake that enforces a rate limit (answering 429 past it), on paused time:
//! bursts are spread so the fake never has to refuse, the fake's own announced limit is
//! followed, and one tenant's burst or 429 storm does not slow another tenant.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use super::fake::{
    Fake, Reply, Seen, as_caller, client, config, ctx, fake_client, get, quick_schedule,
};
use crate::{
    api::{ApiClient, ApiError, CallContext, RetrySchedule},
    config::RateLimit,
};

/// Enforces at most `max` accepted requests per tenant in any window of `per` (the strictest
/// reading of "100 per 10 s"), counting what it refuses.
struct Limiter {
    max: usize,
    per: Duration,
    /// Send `X-RateLimit-Max`/`-Remaining`/`-Interval-Milliseconds`.
    announce: bool,
    accepted: HashMap<String, VecDeque<Instant>>,
    refused: usize,
}

impl Limiter {
    fn new(max: usize, per: Duration, announce: bool) -> Arc<Mutex<Limiter>> {
        Arc::new(Mutex::new(Limiter {
            max,
            per,
            announce,
            accepted: HashMap::new(),
            refused: 0,
        }))
    }

    fn answer(&mut self, seen: &Seen) -> Reply {
        let tenant = seen.query("locationId").unwrap_or_default();
        let window = self.accepted.entry(tenant).or_default();
        while window.front().is_some_and(|t| *t + self.per <= seen.at) {
            window.pop_front();
        }
        let reply = if window.len() >= self.max {
            self.refused += 1;
            Reply::status(429)
        } else {
            window.push_back(seen.at);
            Reply::json(serde_json::json!({"ok": true}))
        };
        if !self.announce {
            return reply;
        }
        let remaining = self.max - window.len();
        reply
            .header("X-RateLimit-Max", self.max.to_string())
            .header("X-RateLimit-Remaining", remaining.to_string())
            .header(
                "X-RateLimit-Interval-Milliseconds",
                self.per.as_millis().to_string(),
            )
    }
}

async fn limited_fake(limiter: &Arc<Mutex<Limiter>>) -> Fake {
    let limiter = Arc::clone(limiter);
    Fake::with_handler(move |seen| limiter.lock().unwrap().answer(seen)).await
}

fn paced_client(fake: &Fake, schedule: RetrySchedule) -> ApiClient {
    let mut cfg = config(fake.base(""), None);
    cfg.rate_limit = Some(RateLimit {
        requests: 100,
        per: Duration::from_secs(10),
        daily: Some(200_000),
    });
    client(cfg, schedule)
}

/// Sends `n` GETs for the caller's tenant at once; returns the results.
async fn burst(client: &ApiClient, ctx: &CallContext, n: usize) -> Vec<Result<(), ApiError>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (client, ctx) = (client.clone(), ctx.clone());
            tokio::spawn(async move {
                let mut req = get(&format!("/contacts/c{i}"));
                req.query = vec![("locationId".into(), ctx.tenant.to_string())];
                client.send(&ctx, req).await.map(|_| ())
            })
        })
        .collect();
    let mut results = vec![];
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(start_paused = true)]
async fn three_hundred_requests_meet_no_429() {
    let limiter = Limiter::new(100, Duration::from_secs(10), false);
    let fake = limited_fake(&limiter).await;
    let client = paced_client(&fake, RetrySchedule::default());
    let started = Instant::now();
    let results = burst(&client, &ctx(Duration::from_secs(120)), 300).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(limiter.lock().unwrap().refused, 0);
    assert_eq!(fake.count(), 300);
    // Three windows' worth: the third hundred cannot start before 20 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(20), "{took:?}");
    assert!(took < Duration::from_secs(40), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn the_api_s_announced_lower_limit_is_followed() {
    let limiter = Limiter::new(50, Duration::from_secs(10), true);
    let fake = limited_fake(&limiter).await;
    let client = paced_client(&fake, RetrySchedule::default());
    let started = Instant::now();
    let results = burst(&client, &ctx(Duration::from_secs(300)), 300).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(limiter.lock().unwrap().refused, 0);
    assert_eq!(fake.count(), 300);
    // Fifty per window: six windows.
    assert!(started.elapsed() >= Duration::from_secs(50));
}

#[tokio::test(start_paused = true)]
async fn a_slot_beyond_the_deadline_is_budget_exhausted_without_sending() {
    let limiter = Limiter::new(100, Duration::from_secs(10), false);
    let fake = limited_fake(&limiter).await;
    let client = paced_client(&fake, RetrySchedule::default());
    let results = burst(&client, &ctx(Duration::from_secs(5)), 150).await;
    let sent = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(sent, 100);
    for result in results.iter().filter(|r| r.is_err()) {
        let Err(ApiError::BudgetExhausted { retry_after_ms }) = result else {
            panic!("{result:?}")
        };
        // The next slots come about 10 s after the first answers.
        assert!(*retry_after_ms >= 5_000, "{retry_after_ms}");
    }
    assert_eq!(fake.count(), 100);
}

#[tokio::test(start_paused = true)]
async fn another_tenant_is_not_slowed_by_a_burst_or_a_429_storm() {
    // Tenant A's answers are all 429s asking for 2 s; tenant B's are fine.
    let fake = Fake::with_handler(|seen| {
        if seen.query("locationId").as_deref() == Some("locA") {
            Reply::status(429).header("Retry-After", "2")
        } else {
            Reply::json(serde_json::json!({"ok": true}))
        }
    })
    .await;
    let client = paced_client(&fake, RetrySchedule::default());
    let a = as_caller(ctx(Duration::from_secs(120)), "locA", "storm");
    let storm = {
        let client = client.clone();
        tokio::spawn(async move { burst(&client, &a, 250).await })
    };
    // Let A's burst start and its first 429s arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let b = as_caller(ctx(Duration::from_secs(120)), "locB", "calm");
    let started = Instant::now();
    let mut req = get("/contacts/b1");
    req.query = vec![("locationId".into(), "locB".into())];
    client.send(&b, req).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "tenant B waited {:?}",
        started.elapsed()
    );

    let results = storm.await.unwrap();
    assert!(
        results.iter().all(|r| matches!(
            r,
            Err(ApiError::RateLimited { .. } | ApiError::BudgetExhausted { .. })
        )),
        "{results:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_pacing_the_fake_does_refuse() {
    // The control for the tests above: the fake really enforces its limit.
    let limiter = Limiter::new(100, Duration::from_secs(10), false);
    let fake = limited_fake(&limiter).await;
    let client = client(config(fake.base(""), None), quick_schedule());
    let mut ctx = ctx(Duration::from_secs(60));
    ctx.call_number = 1;
    let tasks: Vec<_> = (0..150)
        .map(|i| {
            let (client, ctx) = (client.clone(), ctx.clone());
            tokio::spawn(async move {
                let mut req = get(&format!("/contacts/c{i}"));
                req.query = vec![("locationId".into(), "loc1".into())];
                req.retry = crate::api::RetryMode::Never;
                client.send(&ctx, req).await
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await.unwrap();
    }
    assert_eq!(limiter.lock().unwrap().refused, 50);
}

#[tokio::test]
async fn unpaced_apis_send_at_once() {
    let (fake, client) = fake_client(vec![], quick_schedule()).await;
    let results = burst(&client, &ctx(Duration::from_secs(10)), 20).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(fake.count(), 20);
}

/// Two clients (as two replicas would have, each with its own connection pool) on one
/// PostgreSQL schema share the budget: 300 requests for one tenant split between them meet no
/// 429 from a fake enforcing 100 per 10 s. Each client alone would allow itself 100 per 10 s,
/// so without the shared budget they would send 200 in the first window. Real time: the
/// database's clock paces it (about 21 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_and_meet_no_429() {
    use crate::store::postgres::testing::TestSchema;
    let schema = TestSchema::create().await;
    let limiter = Limiter::new(100, Duration::from_secs(10), false);
    let fake = limited_fake(&limiter).await;
    let replicas = [
        paced_client(&fake, RetrySchedule::default()),
        paced_client(&fake, RetrySchedule::default()),
    ];
    for replica in &replicas {
        replica.share_pacing(schema.open().await);
    }
    let started = Instant::now();
    let bursts = replicas.map(|replica| {
        tokio::spawn(async move { burst(&replica, &ctx(Duration::from_secs(120)), 150).await })
    });
    for burst in bursts {
        let results = burst.await.unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    assert_eq!(
        limiter.lock().unwrap().refused,
        0,
        "the fake refused requests"
    );
    assert_eq!(fake.count(), 300);
    // Three windows' worth across both: the third hundred cannot start before 20 s.
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    schema.drop().await;
}
