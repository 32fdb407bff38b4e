//! The JavaScript example plugin won-followup end to end: built from source with
//! `scripts/build-js-plugin`, run by the real server on signed OpportunityStatusUpdate
//! webhooks, calling the fake API and kv through the JS SDK. One server (one compile of the
//! ~12 MB component) walks through the cases in turn.

use axum::http::Method;
use serde_json::{Value, json};
use wasmhook::{
    ids::now_ms,
    store::{DeliveryRecord, DeliveryState},
};
use wasmhook_tests::{
    APP_ID, FakeApi, TestServer, fake_api::Reply, fixtures, plugins::js_plugin,
    signing::HighLevelSigner,
};

use crate::common::{FINAL, server_with};

/// The ids in the opportunity-status-update fixture.
const DEAL: &str = "wWhVuzqpRuOA1ZVWi4FC";
const CONTACT: &str = "cJAWDskpkJHbRbhAT7bs";
const OWNER: &str = "bNl8QNGXhIQJLv8eeASQ";

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `[plugins] retry_max` of the server `server_with` starts.
const RETRY_MAX_MS: i64 = 2_000;

/// The example's manifest with a 3 s budget and two attempts, so that a failing upstream runs
/// out of time inside the host's retry schedule (1 s, 2 s, ...) and the test ends quickly.
fn manifest() -> String {
    let text = std::fs::read_to_string(
        wasmhook_tests::repo_root().join("example-plugins/won-followup/won-followup.toml"),
    )
    .unwrap();
    assert!(text.contains("timeout = \"20s\"") && text.contains("max_attempts = 5"));
    text.replace("timeout = \"20s\"", "timeout = \"3s\"")
        .replace("max_attempts = 5", "max_attempts = 2")
}

/// Posts a signed OpportunityStatusUpdate with `changes` merged in and waits for won-followup.
async fn status_update(
    server: &TestServer,
    signer: &HighLevelSigner,
    changes: Value,
) -> DeliveryRecord {
    let id = format!("wh-{}", rand::random::<u64>());
    let body = fixtures::highlevel_body_with("opportunity-status-update", APP_ID, &id, changes);
    assert_eq!(server.post_highlevel(signer, &body).await.status(), 200);
    server.wait_final(&id, "won-followup", FINAL).await
}

#[tokio::test]
async fn won_followup_creates_one_task_per_won_deal_and_surfaces_api_errors() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let tasks = format!("/contacts/{CONTACT}/tasks");
    fake.on(
        Method::POST,
        &tasks,
        Reply::Json(201, json!({"task": {"id": "task-1"}})),
    );
    let wasm = js_plugin("won-followup");
    let server = server_with(&signer, &fake, |b| {
        b.plugin("won-followup", &wasm, &manifest())
    })
    .await;

    // Still open: nothing to do.
    let delivery = status_update(&server, &signer, json!({"status": "open"})).await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());

    // Won: one task on the deal's contact, assigned to its owner, due in three days.
    let before = now_ms();
    let delivery = status_update(&server, &signer, json!({"status": "won"})).await;
    let after = now_ms();
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    let calls = fake.requests();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let call = &calls[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", tasks.as_str())
    );
    assert_eq!(
        call.header("idempotency-key"),
        Some(format!("{}:1", delivery.id).as_str())
    );
    let mut task = call.json();
    let due = task["dueDate"].take();
    assert_eq!(
        task,
        json!({"title": "Onboarding call: Loram ipsu", "body": "Won Loram ipsu worth 40.",
               "dueDate": null, "completed": false, "assignedTo": OWNER})
    );
    let due_ms = wasmhook::sources::timestamp::parse_rfc3339(due.as_str().unwrap())
        .unwrap_or_else(|e| panic!("dueDate {due} is not RFC 3339: {e}"));
    assert!(
        (before + 3 * DAY_MS..=after + 3 * DAY_MS).contains(&due_ms),
        "due {due} is three days after the delivery"
    );
    let line = delivery.attempts[0]
        .logs
        .iter()
        .find(|l| l.message == "created follow-up task")
        .unwrap_or_else(|| panic!("{delivery:#?}"));
    assert!(
        line.fields.contains(&("task".into(), "task-1".into())),
        "{line:#?}"
    );

    // The same deal won again (a new webhook): the kv claim stops a second task.
    let delivery = status_update(&server, &signer, json!({"status": "won"})).await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    assert_eq!(fake.requests_to(&tasks).len(), 1, "still one task");
    let line = delivery.attempts[0]
        .logs
        .iter()
        .find(|l| l.message == "follow-up already created for this deal")
        .unwrap_or_else(|| panic!("{delivery:#?}"));
    assert_eq!(line.fields, [("opportunity".to_string(), DEAL.to_string())]);

    // Another won deal whose contact is gone: the 404 reaches the handler as api.ClientError
    // and, uncaught, fails the delivery at once with the status and the API's message.
    let gone = "/contacts/gone-contact/tasks";
    fake.on(
        Method::POST,
        gone,
        Reply::Json(404, json!({"message": "Contact not found"})),
    );
    let delivery = status_update(
        &server,
        &signer,
        json!({"status": "won", "id": "deal-2", "contactId": "gone-contact"}),
    )
    .await;
    assert_eq!(delivery.state, DeliveryState::Dead, "{delivery:#?}");
    assert_eq!(delivery.attempts.len(), 1, "a client error is not retried");
    let attempt = &delivery.attempts[0];
    assert_eq!(attempt.outcome, "fail", "{attempt:#?}");
    let error = attempt.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("api client error (status 404)") && error.contains("Contact not found"),
        "{error}"
    );

    // A 500 that outlasts the attempt's budget: the host's retries run out of time, the handler
    // sees api.BudgetExhausted, and, uncaught, it retries the delivery after the wait the host
    // named — no sooner.
    let flaky = "/contacts/flaky-contact/tasks";
    fake.on(
        Method::POST,
        flaky,
        Reply::Json(500, json!({"message": "oops"})),
    );
    let delivery = status_update(
        &server,
        &signer,
        json!({"status": "won", "id": "deal-3", "contactId": "flaky-contact"}),
    )
    .await;
    assert_eq!(delivery.state, DeliveryState::Dead, "{delivery:#?}");
    assert_eq!(delivery.attempts.len(), 2, "{delivery:#?}");
    let first = &delivery.attempts[0];
    assert_eq!(first.outcome, "retry", "{delivery:#?}");
    let error = first.error.as_deref().unwrap_or_default();
    let after_ms: i64 = error
        .split("retry in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no `retry in N ms` in {error}"));
    assert!(
        error.contains("api retries need more time than the delivery has left"),
        "{error}"
    );
    // The server caps any requested wait at its `retry_max` (2 s here); its own backoff after
    // a first attempt would be about 100 ms.
    let expected = after_ms.min(RETRY_MAX_MS);
    let second = &delivery.attempts[1];
    assert!(
        second.started_at_ms - first.finished_at_ms >= expected,
        "the second attempt waited the {expected} ms asked for: {delivery:#?}"
    );
    assert!(
        fake.requests_to(flaky).len() >= 2,
        "the host retried within each attempt"
    );
}
