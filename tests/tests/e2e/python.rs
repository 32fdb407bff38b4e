//! The Python example plugin sms-router end to end: built from source with
//! `scripts/build-python-plugin`, run by the real server on signed InboundMessage webhooks,
//! calling the fake API through the Python SDK. One server (one compile of the ~18 MB
//! component) walks through the cases in turn, changing the fake's script between events.

use axum::http::Method;
use serde_json::json;
use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{
    APP_ID, FakeApi, TestServer, fake_api::Reply, fixtures, plugins::python_plugin,
    signing::HighLevelSigner,
};

use crate::common::{FINAL, server_with};

/// The ids in the inbound-message-sms fixture.
const LOCATION: &str = "l1C08ntBrFjLS0elLIYU";
const CONTACT: &str = "cI08i1Bls3iTB9bKgFJh";

fn manifest() -> String {
    std::fs::read_to_string(
        wasmhook_tests::repo_root().join("example-plugins/sms-router/sms-router.toml"),
    )
    .unwrap()
}

/// Posts a signed InboundMessage SMS saying `text` and waits for sms-router to finish with it.
async fn sms(server: &TestServer, signer: &HighLevelSigner, text: &str) -> DeliveryRecord {
    let id = format!("wh-{}", rand::random::<u64>());
    let body =
        fixtures::highlevel_body_with("inbound-message-sms", APP_ID, &id, json!({"body": text}));
    assert_eq!(server.post_highlevel(signer, &body).await.status(), 200);
    server.wait_final(&id, "sms-router", FINAL).await
}

fn logged(delivery: &DeliveryRecord, message: &str) -> Vec<(String, String)> {
    delivery
        .attempts
        .iter()
        .flat_map(|a| &a.logs)
        .find(|line| line.message == message)
        .unwrap_or_else(|| panic!("no log line `{message}`: {delivery:#?}"))
        .fields
        .clone()
}

#[tokio::test]
async fn sms_router_moves_or_creates_the_contacts_deal_and_surfaces_api_errors() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    fake.on(
        Method::GET,
        "/opportunities/pipelines",
        Reply::Json(
            200,
            json!({"pipelines": [
                {"id": "pl-support", "name": "Support", "stages": [{"id": "st-x", "name": "Proposal"}]},
                {"id": "pl-sales", "name": "Sales", "stages": [
                    {"id": "st-new", "name": "New Lead"},
                    {"id": "st-demo", "name": "Demo Requested"},
                    {"id": "st-price", "name": "Proposal"}]}]}),
        ),
    );
    let wasm = python_plugin("sms-router");
    let server = server_with(&signer, &fake, |b| {
        b.plugin("sms-router", &wasm, &manifest())
    })
    .await;

    // A message without a keyword: nothing to do, no API call.
    let delivery = sms(&server, &signer, "hello, who is this?").await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());

    // "Demo please!" with an open deal in another stage: the deal moves to "Demo Requested".
    fake.on(
        Method::GET,
        "/opportunities/search",
        Reply::Json(
            200,
            json!({"opportunities": [{"id": "opp-1", "pipelineStageId": "st-new", "name": "x"}],
                   "meta": {"total": 1}}),
        ),
    );
    fake.on(
        Method::PUT,
        "/opportunities/opp-1",
        Reply::Json(200, json!({"opportunity": {"id": "opp-1"}})),
    );
    let delivery = sms(&server, &signer, "Demo please!").await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    let calls = fake.requests();
    let seen: Vec<_> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str(), c.query.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "GET",
                "/opportunities/pipelines",
                format!("locationId={LOCATION}").as_str()
            ),
            (
                "GET",
                "/opportunities/search",
                format!(
                    "location_id={LOCATION}&contact_id={CONTACT}&pipeline_id=pl-sales&status=open"
                )
                .as_str()
            ),
            ("PUT", "/opportunities/opp-1", ""),
        ]
    );
    assert_eq!(calls[2].json(), json!({"pipelineStageId": "st-demo"}));
    for (n, call) in calls.iter().enumerate() {
        assert_eq!(
            call.header("idempotency-key"),
            Some(format!("{}:{}", delivery.id, n + 1).as_str()),
            "call {n} of the delivery"
        );
    }
    let fields = logged(&delivery, "moved deal");
    assert!(
        fields.contains(&("stage".into(), "Demo Requested".into()))
            && fields.contains(&("keyword".into(), "DEMO".into())),
        "{fields:?}"
    );

    // "price?" and no open deal: one is created in "Proposal"; the pipelines come from the cache.
    fake.on(
        Method::GET,
        "/opportunities/search",
        Reply::Json(200, json!({"opportunities": [], "meta": {"total": 0}})),
    );
    fake.on(
        Method::POST,
        "/opportunities",
        Reply::Json(201, json!({"opportunity": {"id": "opp-new"}})),
    );
    let delivery = sms(&server, &signer, "price?").await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    assert_eq!(
        fake.requests_to("/opportunities/pipelines").len(),
        1,
        "the pipelines are read once for both messages"
    );
    let created = fake.requests_to("/opportunities");
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(
        created[0].json(),
        json!({"locationId": LOCATION, "pipelineId": "pl-sales", "pipelineStageId": "st-price",
               "contactId": CONTACT, "name": "Price (SMS)", "status": "open"})
    );
    // The cached read is call 1, the search 2, the create 3.
    assert_eq!(
        created[0].header("idempotency-key"),
        Some(format!("{}:3", delivery.id).as_str())
    );
    assert_eq!(
        logged(&delivery, "created deal")[0],
        ("opportunity".into(), "opp-new".into())
    );

    // A 422 reaches the handler as api.ClientError; uncaught, it fails the delivery at once
    // with the status and the API's message.
    fake.on(
        Method::GET,
        "/opportunities/search",
        Reply::Json(422, json!({"message": "contact_id is not valid"})),
    );
    let delivery = sms(&server, &signer, "demo").await;
    assert_eq!(delivery.state, DeliveryState::Dead, "{delivery:#?}");
    assert_eq!(delivery.attempts.len(), 1, "a client error is not retried");
    let attempt = &delivery.attempts[0];
    assert_eq!(attempt.outcome, "fail", "{attempt:#?}");
    let error = attempt.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("api client error (status 422)")
            && error.contains("contact_id is not valid"),
        "{error}"
    );

    // A 403 reaches it as api.AuthError, which retries: the installation may be re-authorised.
    fake.on(
        Method::GET,
        "/opportunities/search",
        Reply::Json(
            403,
            json!({"message": "The token does not have access to this location"}),
        ),
    );
    let delivery = sms(&server, &signer, "PRICE").await;
    let first = &delivery.attempts[0];
    assert_eq!(first.outcome, "retry", "{delivery:#?}");
    assert!(
        first
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("api authorisation failed (status 403)"),
        "{first:#?}"
    );
    assert_eq!(delivery.state, DeliveryState::Dead, "after max_attempts");
    assert_eq!(delivery.attempts.len(), 5, "{delivery:#?}");
}
