//! The circuit breaker against a failing fake, on paused time: after the run of 5xx the fake
//! sees nothing until the cool-down, then exactly one probe.

use std::time::Duration;

use tokio::time::Instant;

use super::{
    fake::{Fake, Reply, client, config, ctx, fake_client, get},
    metrics::Recorded,
};
use crate::api::{ApiError, RetryMode, RetrySchedule};

fn open_error(err: &ApiError) -> bool {
    matches!(err, ApiError::Transport(m) if m.starts_with("circuit breaker open") && m.contains("no request sent"))
}

#[tokio::test(start_paused = true)]
async fn after_five_server_errors_nothing_is_sent_until_one_probe() {
    let recorded = Recorded::default();
    let _metrics = recorded.install();
    let mut script = vec![Reply::status(503); 5];
    script.push(Reply::status(200).delayed(Duration::from_secs(2)));
    let (fake, client) = fake_client(script, RetrySchedule::default()).await;
    let c = ctx(Duration::from_secs(600));
    let gauge = || recorded.get("wasmhook_api_breaker_open", &[("api", "hl")]);
    assert_eq!(gauge(), 0.0);

    // One call retried on the schedule: five 503s open the breaker.
    let err = client.send(&c, get("/contacts/c1")).await.unwrap_err();
    assert!(
        matches!(err, ApiError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(fake.count(), 5);
    assert_eq!(gauge(), 1.0);
    let opened = Instant::now();

    // Fail fast: nothing reaches the fake, whoever calls.
    for _ in 0..3 {
        let err = client.send(&c, get("/contacts/c2")).await.unwrap_err();
        assert!(open_error(&err), "{err:?}");
    }
    tokio::time::sleep_until(opened + Duration::from_secs(29)).await;
    assert!(open_error(
        &client.send(&c, get("/contacts/c3")).await.unwrap_err()
    ));
    assert_eq!(fake.count(), 5);
    assert_eq!(
        recorded.get("wasmhook_api_breaker_rejections_total", &[("api", "hl")]),
        4.0
    );

    // After the cool-down, three calls at once: one probe goes, the others still fail fast.
    tokio::time::sleep_until(opened + Duration::from_secs(30)).await;
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let (client, c) = (client.clone(), c.clone());
            tokio::spawn(async move {
                let mut req = get(&format!("/contacts/p{i}"));
                req.retry = RetryMode::Never;
                client.send(&c, req).await
            })
        })
        .collect();
    let mut results = vec![];
    for call in calls {
        results.push(call.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().is_err_and(open_error))
            .count(),
        2
    );
    assert_eq!(fake.count(), 6);

    // The probe succeeded: closed again.
    assert_eq!(gauge(), 0.0);
    client.send(&c, get("/contacts/c4")).await.unwrap();
    assert_eq!(fake.count(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_another_cool_down() {
    let fake = Fake::start(vec![Reply::status(500); 6]).await;
    let mut cfg = config(fake.base(""), None);
    cfg.breaker.failures = 2;
    let client = client(cfg, RetrySchedule::default());
    let c = ctx(Duration::from_secs(600));
    let mut once = get("/contacts/c1");
    once.retry = RetryMode::Never;
    for _ in 0..2 {
        client.send(&c, once.clone()).await.unwrap_err();
    }
    assert!(open_error(
        &client.send(&c, once.clone()).await.unwrap_err()
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The probe fails...
    let err = client.send(&c, once.clone()).await.unwrap_err();
    assert!(matches!(err, ApiError::ServerError { status: 500, .. }));
    assert_eq!(fake.count(), 3);
    // ...so the breaker is open for a whole new cool-down.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(open_error(
        &client.send(&c, once.clone()).await.unwrap_err()
    ));
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn client_errors_do_not_trip_it() {
    let (fake, client) = fake_client(vec![Reply::status(404); 10], RetrySchedule::default()).await;
    let c = ctx(Duration::from_secs(10));
    for _ in 0..10 {
        let err = client.send(&c, get("/contacts/c1")).await.unwrap_err();
        assert!(matches!(err, ApiError::ClientError { status: 404, .. }));
    }
    client.send(&c, get("/contacts/c1")).await.unwrap();
    assert_eq!(fake.count(), 11);
}
