//! The client against loopback fakes: what arrives upstream, what never does, deadlines, size
//! caps, and the retry schedule on paused time.

use std::time::Duration;

use tokio::time::Instant;

use super::fake::{
    Capture, Fake, Reply, TOKEN, client, config, ctx, fake_client, get, quick_schedule, token_file,
};
use crate::{
    api::{ApiClient, ApiError, ApiInitError, RetryMode, RetrySchedule},
    ids::{ApiName, TenantId},
    secret::SecretRef,
};

#[tokio::test]
async fn host_headers_base_path_and_query_arrive_as_expected() {
    let fake = Fake::start(vec![
        Reply::status(200)
            .header("X-RateLimit-Remaining", "97")
            .header("X-Custom", "a"),
    ])
    .await;
    let (_dir, token) = token_file();
    let client = client(config(fake.base("/v1"), Some(token)), quick_schedule());
    let debug = format!("{client:?}");
    assert!(debug.contains("hl") && !debug.contains(TOKEN), "{debug}");
    let mut req = get("/contacts/c1");
    req.query = vec![
        ("locationId".into(), "loc1".into()),
        ("q".into(), "a b&c=d/é".into()),
    ];
    let response = client
        .send(&ctx(Duration::from_secs(10)), req)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response
            .headers
            .contains(&("x-ratelimit-remaining".into(), "97".into()))
    );
    assert!(response.headers.contains(&("x-custom".into(), "a".into())));
    assert_eq!(response.body, b"{\"status\":200}");

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, http::Method::GET);
    assert_eq!(
        s.uri,
        "/v1/contacts/c1?locationId=loc1&q=a+b%26c%3Dd%2F%C3%A9"
    );
    assert_eq!(s.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(s.headers["version"], "2021-07-28");
    assert_eq!(s.headers["idempotency-key"], "evt1-tagger:3");
    assert_eq!(s.headers["accept"], "application/json");
    assert!(s.headers.get("content-type").is_none());
}

#[tokio::test]
async fn body_content_type_and_per_path_version() {
    let fake = Fake::start(vec![]).await;
    let (_dir, token) = token_file();
    let client = client(config(fake.base(""), Some(token)), quick_schedule());
    let c = ctx(Duration::from_secs(10));

    let mut req = get("/contacts/c1/tags");
    req.method = http::Method::POST;
    req.body = Some(r#"{"tags":["vip"]}"#.into());
    client.send(&c, req).await.unwrap();
    client
        .send(&c, get("/calendars/cal1/events"))
        .await
        .unwrap();

    let seen = fake.seen();
    assert_eq!(seen[0].uri, "/contacts/c1/tags");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].body.as_ref(), br#"{"tags":["vip"]}"#);
    assert_eq!(seen[0].headers["version"], "2021-07-28");
    assert_eq!(seen[1].headers["version"], "2021-04-15");
}

#[tokio::test]
async fn denied_requests_never_reach_the_api() {
    let fake = Fake::start(vec![]).await;
    let client = client(config(fake.base("/v1"), None), quick_schedule());
    let c = ctx(Duration::from_secs(10));
    let mut other_tenant = get("/contacts/c1");
    other_tenant.query = vec![("locationId".into(), "loc2".into())];
    let mut bad_body = get("/contacts/c1/tags");
    bad_body.method = http::Method::POST;
    bad_body.body = Some("not json".into());
    let mut bad_header = get("/contacts/c1");
    bad_header.headers = vec![("X-Api-Key".into(), "x".into())];
    let mut unknown_api = get("/contacts/c1");
    unknown_api.api = ApiName::new("stripe");
    for req in [
        get("/contacts/../admin"),
        get("//evil.example/contacts/c1"),
        get("/contacts/c1%2F..%2Fadmin"),
        get("/opportunities/o1"),
        other_tenant,
        bad_body,
        bad_header,
        unknown_api,
    ] {
        let path = req.path.clone();
        let err = client.send(&c, req).await.unwrap_err();
        assert!(matches!(err, ApiError::Denied(_)), "{path}: {err:?}");
    }
    assert!(fake.seen().is_empty(), "{:?}", fake.seen());
}

#[tokio::test]
async fn without_a_token_no_authorization_is_sent() {
    let fake = Fake::start(vec![]).await;
    let mut cfg = config(fake.base(""), None);
    cfg.idempotency_header = None;
    let client = client(cfg, quick_schedule());
    client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap();
    let seen = fake.seen();
    assert!(seen[0].headers.get("authorization").is_none());
    assert!(seen[0].headers.get("idempotency-key").is_none());
}

#[tokio::test]
async fn a_slow_api_is_cut_at_the_deadline() {
    let slow = Reply {
        delay: Duration::from_secs(30),
        ..Reply::status(200)
    };
    let (_fake, client) = fake_client(vec![slow.clone(), slow], RetrySchedule::default()).await;

    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_millis(300)), get("/contacts/c1"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    // The timeout is transient, but the first retry wait (1 s) does not fit: defer.
    assert!(matches!(err, ApiError::BudgetExhausted { .. }), "{err:?}");
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    let mut once = get("/contacts/c1");
    once.retry = RetryMode::Never;
    let err = client
        .send(&ctx(Duration::from_millis(200)), once)
        .await
        .unwrap_err();
    assert_eq!(err, ApiError::Timeout);
}

#[tokio::test]
async fn no_time_left_sends_nothing() {
    let (fake, client) = fake_client(vec![], quick_schedule()).await;
    let err = client
        .send(&ctx(Duration::ZERO), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::BudgetExhausted {
            retry_after_ms: 1000
        }
    );
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let (fake, client) = fake_client(
        vec![Reply {
            body: vec![b'x'; 2048],
            ..Reply::status(200)
        }],
        quick_schedule(),
    )
    .await;
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/big"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Transport("response larger than 1024 bytes".into())
    );
    // Not transient: sent once.
    assert_eq!(fake.seen().len(), 1);
}

/// A raw server answering with a chunked body (no `Content-Length`) of `size` bytes.
async fn chunked_server(size: usize) -> reqwest::Url {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for _ in 0..size / 256 {
                    out.extend_from_slice(b"100\r\n");
                    out.extend_from_slice(&[b'y'; 256]);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                let _ = socket.write_all(&out).await;
            });
        }
    });
    reqwest::Url::parse(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn streamed_bodies_are_capped_while_reading() {
    let client_big = client(config(chunked_server(4096).await, None), quick_schedule());
    let err = client_big
        .send(&ctx(Duration::from_secs(10)), get("/big"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Transport("response larger than 1024 bytes".into())
    );
    let client_small = client(config(chunked_server(512).await, None), quick_schedule());
    let ok = client_small
        .send(&ctx(Duration::from_secs(10)), get("/big"))
        .await
        .unwrap();
    assert_eq!(ok.body.len(), 512);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = Fake::start(vec![]).await;
    let fake = Fake::start(vec![
        Reply::status(302).header("Location", elsewhere.base("/steal").to_string()),
    ])
    .await;
    let (_dir, token) = token_file();
    let client = client(config(fake.base(""), Some(token)), quick_schedule());
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::ClientError { status: 302, .. }),
        "{err:?}"
    );
    assert!(elsewhere.seen().is_empty());
}

#[tokio::test]
async fn errors_are_classified_and_bodies_returned() {
    let (fake, client) = fake_client(
        vec![
            Reply::status(404),
            Reply::status(422),
            Reply::status(401),
            Reply::status(403),
            Reply::status(501),
        ],
        quick_schedule(),
    )
    .await;
    let c = ctx(Duration::from_secs(10));
    let mut results = vec![];
    for _ in 0..5 {
        results.push(client.send(&c, get("/contacts/c1")).await.unwrap_err());
    }
    assert_eq!(
        results,
        vec![
            ApiError::ClientError {
                status: 404,
                body: b"{\"status\":404}".to_vec()
            },
            ApiError::ClientError {
                status: 422,
                body: b"{\"status\":422}".to_vec()
            },
            ApiError::Auth {
                status: 401,
                body: b"{\"status\":401}".to_vec()
            },
            ApiError::Auth {
                status: 403,
                body: b"{\"status\":403}".to_vec()
            },
            ApiError::ServerError {
                status: 501,
                body: b"{\"status\":501}".to_vec()
            },
        ]
    );
    // None of them is transient: one request each.
    assert_eq!(fake.seen().len(), 5);
}

#[tokio::test]
async fn a_closed_port_is_a_transport_error_after_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = client(config(base, None), quick_schedule());
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Transport(m) if m.starts_with("connection failed")),
        "{err:?}"
    );
}

#[test]
fn a_missing_token_variable_is_named_at_start_up() {
    let var = "WASMHOOK_TEST_TOKEN_THAT_IS_NEVER_SET";
    let cfg = config(
        reqwest::Url::parse("https://api.example").unwrap(),
        Some(SecretRef::Env(var.into())),
    );
    let apis = [(cfg.name.clone(), cfg)].into_iter().collect();
    let err = ApiClient::new(&apis).unwrap_err();
    assert!(matches!(err, ApiInitError::Token { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(var), "{message}");
    assert!(message.contains("hl"), "{message}");
}

#[test]
fn a_token_with_a_newline_inside_is_refused_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "abc\ndef-secret").unwrap();
    let cfg = config(
        reqwest::Url::parse("https://api.example").unwrap(),
        Some(SecretRef::File(path)),
    );
    let apis = [(cfg.name.clone(), cfg)].into_iter().collect();
    let err = ApiClient::new(&apis).unwrap_err();
    assert!(matches!(err, ApiInitError::InvalidToken { .. }), "{err:?}");
    assert!(!err.to_string().contains("def-secret"));
}

#[tokio::test]
async fn calls_are_logged_with_the_template_and_never_the_token_or_body() {
    let capture = Capture::default();
    let _guard = capture.install();

    let fake = Fake::start(vec![
        Reply::status(200)
            .header("x-ratelimit-remaining", "42")
            .header("x-ratelimit-max", "100")
            .header("x-ratelimit-daily-remaining", "199000"),
    ])
    .await;
    let (_dir, token) = token_file();
    let client = client(config(fake.base(""), Some(token)), quick_schedule());
    let mut req = get("/contacts/c1/tags");
    req.method = http::Method::POST;
    req.path = "/contacts/contact-id-777/tags".into();
    req.body = Some(r#"{"tags":["body-marker"]}"#.into());
    client
        .send(&ctx(Duration::from_secs(10)), req)
        .await
        .unwrap();

    let logs = capture.text();
    let line = logs
        .lines()
        .find(|l| l.contains("api call"))
        .unwrap_or_else(|| panic!("no api call line in {logs}"));
    for expected in [
        "plugin=tagger",
        "tenant=loc1",
        "api=\"hl\"",
        "method=POST",
        "path=\"/contacts/*/tags\"",
        "status=200",
        "attempt=1",
        "latency_ms=",
        "paced_ms=0",
        "ratelimit_remaining=\"42\"",
        "ratelimit_max=\"100\"",
        "ratelimit_daily_remaining=\"199000\"",
    ] {
        assert!(line.contains(expected), "{expected} missing in {line}");
    }
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("body-marker"), "{logs}");
    assert!(!logs.contains("contact-id-777"), "{logs}");
}

// ---- The retry schedule on paused time: waits advance the clock instantly and exactly. ----

fn elapsed_secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_on_the_1_2_4_8_schedule() {
    let (fake, client) = fake_client(
        vec![
            Reply::status(503),
            Reply::status(500),
            Reply::status(502),
            Reply::status(504),
        ],
        RetrySchedule::default(),
    )
    .await;
    let started = Instant::now();
    let ok = client
        .send(&ctx(Duration::from_secs(30)), get("/contacts/c1"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let took = elapsed_secs(started);
    // 1 + 2 + 4 + 8 = 15 s, each wait within ±10%.
    assert!((13.5..=16.5).contains(&took), "{took}");
    let seen = fake.seen();
    assert_eq!(seen.len(), 5);
    // Every attempt of one call repeats the same idempotency value.
    assert!(
        seen.iter()
            .all(|s| s.headers["idempotency-key"] == "evt1-tagger:3")
    );
}

#[tokio::test(start_paused = true)]
async fn the_fifth_failure_gives_up() {
    let (fake, client) = fake_client(vec![Reply::status(503); 6], RetrySchedule::default()).await;
    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 5);
    assert!((13.5..=16.5).contains(&elapsed_secs(started)));
}

#[tokio::test(start_paused = true)]
async fn retry_never_sends_once() {
    let (fake, client) = fake_client(vec![Reply::status(503)], RetrySchedule::default()).await;
    let mut req = get("/contacts/c1");
    req.retry = RetryMode::Never;
    let err = client
        .send(&ctx(Duration::from_secs(60)), req)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::ServerError { status: 503, .. }));
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_what_the_server_asks() {
    let (fake, client) = fake_client(
        vec![
            Reply::status(429).header("Retry-After", "3"),
            Reply::status(429).header("X-RateLimit-Interval-Milliseconds", "2500"),
        ],
        RetrySchedule::default(),
    )
    .await;
    let started = Instant::now();
    client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap();
    // Server waits are exact: no jitter.
    assert_eq!(started.elapsed(), Duration::from_millis(5500));
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_returns_budget_exhausted() {
    let (fake, client) = fake_client(vec![Reply::status(503); 5], RetrySchedule::default()).await;
    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_secs(5)), get("/contacts/c1"))
        .await
        .unwrap_err();
    // Attempts at ~0 s, ~1 s and ~3 s; the ~4 s wait would end past the 5 s deadline.
    let ApiError::BudgetExhausted { retry_after_ms } = err else {
        panic!("{err:?}")
    };
    assert!((3600..=4400).contains(&retry_after_ms), "{retry_after_ms}");
    assert_eq!(fake.seen().len(), 3);
    // Out of delivery time, not told to wait by the API: the attempt counts.
    assert_eq!(
        client.quota_deferral(&ApiName::new("hl"), &TenantId::new("loc1"), &err),
        None
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_daily_quota_defers_the_delivery() {
    let (fake, client) = fake_client(
        vec![
            Reply::status(429)
                .header("Retry-After", "3600")
                .header("X-RateLimit-Daily-Remaining", "0"),
        ],
        RetrySchedule::default(),
    )
    .await;
    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::BudgetExhausted {
            retry_after_ms: 3_600_000
        }
    );
    assert_eq!(fake.seen().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The dispatcher learns that this is the API's quota, not the plugin's failure.
    let (api, tenant) = (ApiName::new("hl"), TenantId::new("loc1"));
    assert_eq!(
        client.upstream_wait(&api, &tenant),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(client.upstream_wait(&api, &TenantId::new("loc2")), None);
    assert_eq!(
        client.quota_deferral(&api, &tenant, &err),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        client.quota_deferral(&api, &tenant, &ApiError::Timeout),
        None
    );
    // Further calls of that tenant are deferred without reaching the API.
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c2"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::BudgetExhausted {
            retry_after_ms: 3_600_000
        }
    );
    assert_eq!(fake.seen().len(), 1);
}

#[test]
fn every_entry_point_is_send_for_async_host_functions() {
    fn send<T: Send>(_: &T) {}
    fn owned<T: Send + Sync + 'static>() {}
    owned::<ApiClient>();
    owned::<crate::api::Pages>();
    let client = client(
        config(reqwest::Url::parse("https://api.example").unwrap(), None),
        quick_schedule(),
    );
    let c = ctx(Duration::from_secs(1));
    send(&client.send(&c, get("/contacts/c1")));
    send(&client.get_cached(&c, get("/contacts/c1")));
    send(&client.send_batch(&c, vec![get("/contacts/c1")]));
    let mut pages = client.pages(&c, get("/contacts/c1"), crate::api::PageStyle::Page, 3);
    send(&pages.next());
}
