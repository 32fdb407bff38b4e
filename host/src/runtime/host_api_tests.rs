//! The `api` import on a delivery's state against a loopback fake, no guest needed.
//!
//! Call numbering: `send`, every page of a `pages` walk, every item of a `send-batch` and a
//! `get-cached` each take the next number, so the idempotency header `<key>:<n>` differs
//! between calls of one attempt, and a later attempt that makes the same calls sends the same
//! values again (a cache hit keeps its number unsent). Quota notes: a call that meets a spent
//! daily quota leaves the state knowing until when, for the dispatcher's deferral.

use super::{
    Services,
    bindings::api::{self, HostPages, PageStyle},
    state::State,
    test_support,
};
use crate::api::{
    AllowList, Capabilities, RetrySchedule,
    tests::fake::{Fake, Reply, client, config},
};

/// Services whose API `hl` is `fake`, over a store in `dir`.
async fn services_on(fake: &Fake, dir: &std::path::Path) -> Services {
    Services {
        api: client(config(fake.base(""), None), RetrySchedule::default()),
        ..test_support::services(dir).await
    }
}

/// A delivery's state on `services`, granted on `hl` what the sequence below calls.
fn state(services: Services) -> State {
    let rules: Vec<String> = [
        "GET /contacts",
        "GET /contacts/*",
        "POST /contacts/*/tags",
        "GET /calendars",
    ]
    .map(String::from)
    .to_vec();
    let mut caps = Capabilities::default();
    caps.apis.insert(
        crate::ids::ApiName::new("hl"),
        AllowList::parse(&rules).unwrap(),
    );
    test_support::state(services, caps, Default::default(), 20)
}

fn request(method: api::Method, path: &str) -> api::Request {
    api::Request {
        api: "hl".into(),
        method,
        path: path.into(),
        query: vec![],
        body: (method == api::Method::Post).then(|| r#"{"tags":["t"]}"#.into()),
        retry: None,
        headers: vec![],
    }
}

/// One attempt's calls: a send, a 3-page walk, a batch of three, a cached read and a send.
/// Returns the numbers each import used (from `state.api_calls` before and after).
async fn attempt(state: &mut State) -> Vec<(&'static str, u32)> {
    use api::{Host, Method::*};
    let mut used = Vec::new();
    let mut note = |what, state: &State| used.push((what, state.api_calls));
    Host::send(state, request(Get, "/contacts/c-1"))
        .await
        .unwrap();
    note("send", state);
    let mut list = request(Get, "/contacts");
    list.query.push(("limit".into(), "2".into()));
    let walk = HostPages::new(state, list, PageStyle::Page, 3)
        .await
        .unwrap();
    let rep = || wasmtime::component::Resource::<crate::api::Pages>::new_borrow(walk.rep());
    for _ in 0..3 {
        HostPages::next(state, rep())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        note("page", state);
    }
    assert!(
        HostPages::next(state, rep()).await.unwrap().is_none(),
        "max_pages stops it"
    );
    HostPages::drop(state, walk).await.unwrap();
    let batch = ["a", "b", "c"].map(|c| request(Post, &format!("/contacts/{c}/tags")));
    let answers = Host::send_batch(state, batch.to_vec()).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    note("batch", state);
    Host::get_cached(state, request(Get, "/calendars"))
        .await
        .unwrap();
    note("cached", state);
    Host::send(state, request(Get, "/contacts/c-2"))
        .await
        .unwrap();
    note("send", state);
    used
}

/// The idempotency values the fake received, in arrival order.
fn keys(fake: &Fake) -> Vec<String> {
    fake.seen()
        .iter()
        .map(|s| s.headers["idempotency-key"].to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pages_batch_items_and_cached_reads_are_numbered_in_call_order_and_repeat_on_redelivery() {
    let fake = Fake::with_handler(|seen| match seen.path() {
        // Full pages of the requested limit, so the walk goes on until max_pages.
        "/contacts" => Reply::json(serde_json::json!({"contacts": [{"id": "x"}, {"id": "y"}]})),
        _ => Reply::json(serde_json::json!({"ok": true})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let services = services_on(&fake, dir.path()).await;

    let mut first = state(services.clone());
    let used = attempt(&mut first).await;
    assert_eq!(
        used,
        vec![
            ("send", 1),
            ("page", 2),
            ("page", 3),
            ("page", 4),
            ("batch", 7),
            ("cached", 8),
            ("send", 9)
        ]
    );
    let mut sent = keys(&fake);
    // Batch items run concurrently: compare them as a set.
    sent[4..7].sort();
    let expected: Vec<String> = (1..=9).map(|n| format!("idem-1:{n}")).collect();
    assert_eq!(sent, expected, "one number per call, in call order");

    // A redelivery (a fresh attempt with the same key) makes the same calls: the same values
    // go out again, except the cached read, answered from the cache but still call 8.
    let mut again = state(services);
    assert_eq!(attempt(&mut again).await, used);
    let mut resent = keys(&fake).split_off(9);
    resent[4..7].sort();
    let expected: Vec<String> = [1, 2, 3, 4, 5, 6, 7, 9]
        .map(|n| format!("idem-1:{n}"))
        .to_vec();
    assert_eq!(resent, expected);
}

/// A call that meets an exhausted daily quota whose reset is past the attempt's deadline leaves
/// the delivery's state knowing until when, for the dispatcher to defer the delivery.
#[tokio::test]
async fn a_spent_daily_quota_is_remembered_for_the_dispatcher() {
    let reset = (crate::ids::now_ms() / 1000 + 3).to_string();
    let fake = Fake::start(vec![
        Reply::status(429)
            .header("X-RateLimit-Daily-Remaining", "0")
            .header("X-RateLimit-Reset", reset),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let services = services_on(&fake, dir.path()).await;
    let mut state = state(services);
    // Less time than the reset is away: the host cannot wait it out inside the attempt.
    state.deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let err = api::Host::send(&mut state, request(api::Method::Get, "/contacts/c-1")).await;
    assert!(
        matches!(err, Err(api::ApiError::BudgetExhausted(_))),
        "{err:?}"
    );
    let wait = state.quota_wait.clone().expect("the quota wait is noted");
    assert_eq!(wait.api.as_str(), "hl");
    let now = crate::ids::now_ms();
    assert!((now..=now + 3_000).contains(&wait.until_ms), "{wait:?}");
}
