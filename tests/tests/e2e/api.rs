//! The API client's 0.1.1 calls end to end: the example pipeline-sync plugin reads pipelines
//! through the cache, searches contacts with filters page by page, and tags them all in one bulk
//! call, through the real server and the fake API.

use axum::http::Method;
use serde_json::json;
use wasmhook::store::DeliveryState;
use wasmhook_tests::{
    API_TOKEN, APP_ID, FakeApi, fake_api::Reply, fixtures, plugins::rust_plugin,
    signing::HighLevelSigner,
};

use crate::common::{FINAL, server_with};

/// The ids in the opportunity-status-update fixture.
const PIPELINE: &str = "VDm7RPYC2GLUvdpKmBfC";
const STAGE: &str = "e93ba61a-53b3-45e7-985a-c7732dbcdb69";
const OWNER: &str = "bNl8QNGXhIQJLv8eeASQ";
const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

fn pipeline_sync_manifest() -> String {
    std::fs::read_to_string(
        wasmhook_tests::repo_root().join("example-plugins/pipeline-sync/pipeline-sync.toml"),
    )
    .unwrap()
}

/// Scripts the location's pipelines: `PIPELINE` with the stages "Lead" and `STAGE` "Proposal".
fn serve_pipelines(fake: &FakeApi) {
    fake.on(
        Method::GET,
        "/opportunities/pipelines",
        Reply::Json(
            200,
            json!({"pipelines": [{"id": PIPELINE, "name": "Sales",
                "stages": [{"id": "other", "name": "Lead"}, {"id": STAGE, "name": "Proposal"}]}]}),
        ),
    );
}

fn opportunity_update() -> (String, Vec<u8>) {
    let id = format!("wh-{}", rand::random::<u64>());
    (
        id.clone(),
        fixtures::highlevel_signed_body("opportunity-status-update", APP_ID, &id),
    )
}

#[tokio::test]
async fn pipeline_sync_reads_pipelines_once_searches_with_filters_and_tags_in_one_bulk_call() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    serve_pipelines(&fake);
    let contacts = ["c1", "c2", "c3", "c4"];
    fake.on(
        Method::POST,
        "/contacts/search",
        Reply::Json(
            200,
            json!({"contacts": contacts.iter().map(|id| json!({"id": id, "email": "x@y.z"}))
                .collect::<Vec<_>>(), "total": contacts.len()}),
        ),
    );
    let wasm = rust_plugin("pipeline-sync");
    let server = server_with(&signer, &fake, |b| {
        b.plugin("pipeline-sync", &wasm, &pipeline_sync_manifest())
    })
    .await;

    // Two events, one after the other: the second finds the pipelines in the cache.
    let mut delivery_ids = Vec::new();
    for _ in 0..2 {
        let (webhook_id, body) = opportunity_update();
        let response = server.post_highlevel(&signer, &body).await;
        assert_eq!(response.status(), 200);
        let delivery = server.wait_final(&webhook_id, "pipeline-sync", FINAL).await;
        assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
        delivery_ids.push(delivery.id);
    }

    let reads = fake.requests_to("/opportunities/pipelines");
    assert_eq!(
        reads.len(),
        1,
        "one cached pipelines read for two events: {reads:#?}"
    );

    let searches = fake.requests_to("/contacts/search");
    assert_eq!(
        searches.len(),
        2,
        "one short search page per event: {searches:#?}"
    );
    let search = searches[0].json();
    assert_eq!(search["locationId"], LOCATION);
    assert_eq!(
        search["filters"],
        json!([{"field": "assignedTo", "operator": "eq", "value": OWNER}])
    );
    assert_eq!(search["page"], 1, "the host numbers search pages");

    let bulk = fake.requests_to("/contacts/bulk/tags/update/add");
    assert_eq!(bulk.len(), 2, "ONE bulk call per event: {bulk:#?}");
    for (call, delivery_id) in bulk.iter().zip(&delivery_ids) {
        assert_eq!(
            call.json(),
            json!({"locationId": LOCATION, "ids": contacts, "tags": ["stage:Proposal"]})
        );
        // Each call of a delivery has its own number: the search was 2 (or 1 after a cache
        // hit, which still counts), so the bulk call is 3.
        assert_eq!(
            call.header("idempotency-key"),
            Some(format!("{delivery_id}:3").as_str())
        );
    }
    for call in fake.requests() {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {API_TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn a_plugin_built_against_the_frozen_0_1_0_contract_still_runs() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let wasm = rust_plugin("frozen-v010");
    let manifest = "name = \"frozen-v010\"\nevents = [\"highlevel:ContactCreate\"]\n\
                    max_attempts = 1\nmax_api_calls = 1\n\n\
                    [capabilities.api.fake]\nallow = [\"GET /allowed/*\"]\n";
    let server = server_with(&signer, &fake, |b| b.plugin("frozen-v010", &wasm, manifest)).await;
    let (webhook_id, body) = crate::common::contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    let delivery = server.wait_final(&webhook_id, "frozen-v010", FINAL).await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    assert_eq!(fake.requests_to("/allowed/frozen").len(), 1);
}

/// The pipelines read through the cache is sent again after a webhook of a kind that
/// invalidates it (`OpportunityCreate` in the shipped cache rules) arrives for the tenant, and
/// only then: another kind for the tenant, or the same kind for another tenant, keeps it.
#[tokio::test]
async fn an_invalidating_webhook_makes_the_next_cached_read_go_upstream() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    serve_pipelines(&fake);
    fake.on(
        Method::POST,
        "/contacts/search",
        Reply::Json(200, json!({"contacts": [], "total": 0})),
    );
    let wasm = rust_plugin("pipeline-sync");
    let server = server_with(&signer, &fake, |b| {
        b.plugin("pipeline-sync", &wasm, &pipeline_sync_manifest())
    })
    .await;
    let reads_for = |location: &str| {
        fake.requests_to("/opportunities/pipelines")
            .iter()
            .filter(|r| r.query.contains(&format!("locationId={location}")))
            .count()
    };
    let deliver = |kind: &'static str, location: &'static str| {
        let (server, signer) = (&server, &signer);
        async move {
            let id = format!("wh-{}", rand::random::<u64>());
            let (fixture, plugin) = match kind {
                "ContactCreate" => ("contact-create", "contact-tagger"),
                _ => ("opportunity-status-update", "pipeline-sync"),
            };
            let body = fixtures::highlevel_body_with(
                fixture,
                APP_ID,
                &id,
                json!({"type": kind, "locationId": location}),
            );
            assert_eq!(server.post_highlevel(signer, &body).await.status(), 200);
            let delivery = server.wait_final(&id, plugin, FINAL).await;
            assert_eq!(
                delivery.state,
                DeliveryState::Succeeded,
                "{kind}: {delivery:#?}"
            );
        }
    };
    const OTHER: &str = "otherLocation0000001";

    deliver("OpportunityStatusUpdate", LOCATION).await;
    assert_eq!(reads_for(LOCATION), 1);
    // Neither another kind for the tenant nor the invalidating kind for another tenant drops it.
    deliver("ContactCreate", LOCATION).await;
    deliver("OpportunityCreate", OTHER).await;
    deliver("OpportunityStatusUpdate", LOCATION).await;
    assert_eq!(reads_for(LOCATION), 1, "still cached");
    assert_eq!(reads_for(OTHER), 1);

    // An opportunity created for the tenant drops its pipelines: read again, then cached again.
    deliver("OpportunityCreate", LOCATION).await;
    assert_eq!(
        reads_for(LOCATION),
        2,
        "re-fetched after the invalidating webhook"
    );
    deliver("OpportunityStatusUpdate", LOCATION).await;
    assert_eq!(reads_for(LOCATION), 2, "cached again");
}
