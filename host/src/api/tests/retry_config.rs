//! `[apis.<name>.retry]` followed by the client: a schedule and status list written in TOML,
//! parsed by the real config loader, drive what the fake sees and when (paused time, jitter 0
//! so the waits are exact).

use std::{path::Path, sync::Arc, time::Duration};

use tokio::time::Instant;

use super::fake::{Fake, Reply, ctx, get};
use crate::{
    api::{AllowList, ApiClient, ApiError},
    config::Config,
    ids::ApiName,
};

/// A client of API `hl` at `base` with `[apis.hl.retry]` set to `table`, plus API `plain` at
/// the same base with the default schedule.
fn client_with_retry(base: &reqwest::Url, table: &str) -> ApiClient {
    let toml = format!(
        "[apis.hl]\nbase_url = \"{base}\"\n[apis.hl.retry]\n{table}\n\
         [apis.plain]\nbase_url = \"{base}\"\n"
    );
    let config = Config::parse(Path::new("w.toml"), &toml).unwrap();
    ApiClient::new(&config.apis).unwrap()
}

const CUSTOM: &str = r#"waits = ["2s", "3s"]
jitter = 0.0
on = [408, 503]"#;

#[tokio::test(start_paused = true)]
async fn the_configured_waits_and_statuses_are_followed() {
    let fake = Fake::start(vec![Reply::status(408), Reply::status(503)]).await;
    let client = client_with_retry(&fake.base(""), CUSTOM);
    let started = Instant::now();
    let ok = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    // 408 is retried because the config lists it; the waits are 2 s then 3 s, no jitter.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_configured_schedule_gives_up_after_its_last_wait() {
    let fake = Fake::start(vec![Reply::status(503); 4]).await;
    let client = client_with_retry(&fake.base(""), CUSTOM);
    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 3, "two waits: three attempts");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn statuses_left_out_of_on_are_returned_at_once() {
    let fake = Fake::start(vec![Reply::status(500), Reply::status(429)]).await;
    let client = client_with_retry(&fake.base(""), CUSTOM);
    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::ServerError { status: 500, .. }),
        "{err:?}"
    );
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::RateLimited { status: 429, .. }),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 2);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn each_api_keeps_its_own_schedule() {
    let script = vec![Reply::status(500), Reply::status(200), Reply::status(500)];
    let fake = Fake::start(script).await;
    let client = client_with_retry(&fake.base(""), CUSTOM);
    let mut ctx = ctx(Duration::from_secs(60));
    let mut caps = (*ctx.capabilities).clone();
    caps.apis.insert(
        ApiName::new("plain"),
        AllowList::parse(&["GET /contacts/*".to_string()]).unwrap(),
    );
    ctx.capabilities = Arc::new(caps);
    let mut req = get("/contacts/c1");
    req.api = ApiName::new("plain");
    let started = Instant::now();
    // `plain` keeps the default schedule, where 500 is transient: one wait of 1 s ±10%.
    let ok = client.send(&ctx, req).await.unwrap();
    assert_eq!(ok.status, 200);
    let took = started.elapsed();
    assert_eq!(fake.seen().len(), 2);
    assert!(
        (Duration::from_millis(900)..=Duration::from_millis(1100)).contains(&took),
        "{took:?}"
    );
    // `hl` does not retry a 500.
    let err = client.send(&ctx, get("/contacts/c2")).await.unwrap_err();
    assert!(
        matches!(err, ApiError::ServerError { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn connection_errors_stay_transient_with_no_status_listed() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = client_with_retry(&base, "waits = [\"2s\"]\njitter = 0.0\non = []");
    let started = Instant::now();
    let err = client
        .send(&ctx(Duration::from_secs(60)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    // One wait of 2 s: the refused connection was tried twice.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}
