//! The Python and JavaScript SDK calls the example plugins do not make (items over pages, a
//! batch holding a request the SDK refuses, a bulk tag call, kv JSON and compare-and-swap, the
//! whole config table), through the real host: `tests/plugins/sdk-tour-{py,js}` do the same
//! tour, and each one's calls are told apart by the idempotency key of its delivery.

use axum::http::Method;
use serde_json::json;
use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{
    FakeApi, Reply,
    fake_api::Recorded,
    plugins::{ScriptedLang, scripted_plugin},
    signing::HighLevelSigner,
};

use crate::common::{FINAL, contact_create, server_with};

/// The tenant of the ContactCreate fixture.
const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

fn manifest(name: &str) -> String {
    format!(
        "name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\nmemory = \"32MiB\"\n\
         max_attempts = 1\nmax_api_calls = 8\n\n[capabilities.api.highlevel]\n\
         allow = [\"GET /contacts\", \"GET /contacts/*\", \"POST /contacts/bulk/tags/update/*\"]\n\n\
         [config]\ntag = \"toured\"\n"
    )
}

/// The calls made by `delivery`, in order.
fn calls_of(fake: &FakeApi, delivery: &DeliveryRecord) -> Vec<Recorded> {
    let prefix = format!("{}:", delivery.id);
    fake.requests()
        .into_iter()
        .filter(|r| {
            r.header("idempotency-key")
                .is_some_and(|k| k.starts_with(&prefix))
        })
        .collect()
}

#[tokio::test]
async fn python_and_js_sdks_page_batch_bulk_tag_and_use_kv_through_the_host() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    fake.on(
        Method::GET,
        "/contacts",
        Reply::Json(
            200,
            json!({"contacts": [{"id": "c1"}, {"id": "c2"}], "meta": {"total": 2}}),
        ),
    );
    for id in ["c1", "c2"] {
        fake.on(
            Method::GET,
            &format!("/contacts/{id}"),
            Reply::Json(200, json!({"contact": {"id": id}})),
        );
    }
    fake.on(
        Method::POST,
        "/contacts/bulk/tags/update/add",
        Reply::Json(200, json!({"succeeded": true})),
    );
    let plugins = wasmhook_tests::repo_root().join("tests/plugins");
    let py = scripted_plugin(ScriptedLang::Python, &plugins.join("sdk-tour-py"));
    let js = scripted_plugin(ScriptedLang::JavaScript, &plugins.join("sdk-tour-js"));
    let server = server_with(&signer, &fake, |b| {
        b.plugin("sdk-tour-py", &py, &manifest("sdk-tour-py"))
            .plugin("sdk-tour-js", &js, &manifest("sdk-tour-js"))
    })
    .await;

    let (webhook_id, body) = contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    for plugin in ["sdk-tour-py", "sdk-tour-js"] {
        let delivery = server.wait_final(&webhook_id, plugin, FINAL).await;
        assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");

        let calls = calls_of(&fake, &delivery);
        let mut seen: Vec<_> = calls
            .iter()
            .map(|c| (c.method.as_str(), c.path.as_str()))
            .collect();
        // The batch's two GETs run side by side: their order on the wire is not fixed.
        seen[1..3].sort();
        assert_eq!(
            seen,
            [
                ("GET", "/contacts"),
                ("GET", "/contacts/c1"),
                ("GET", "/contacts/c2"),
                ("POST", "/contacts/bulk/tags/update/add"),
            ],
            "{plugin}: the refused batch request was never sent"
        );
        assert!(
            calls[0].query.contains(&format!("locationId={LOCATION}"))
                && calls[0].query.contains("limit="),
            "{plugin}: the page request carries the tenant and the host's limit: {}",
            calls[0].query
        );
        assert_eq!(
            calls[3].json(),
            json!({"locationId": LOCATION, "ids": ["c1", "c2"], "tags": ["toured"]}),
            "{plugin}"
        );

        let line = delivery.attempts[0]
            .logs
            .iter()
            .find(|l| l.message == "tour done")
            .unwrap_or_else(|| panic!("{delivery:#?}"));
        let field = |name: &str| {
            line.fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{plugin}: no field {name}: {line:#?}"))
        };
        assert_eq!(field("items"), "c1,c2", "{plugin}");
        assert_eq!(field("fetched"), "c1,c2", "{plugin}");
        // The unserialisable body is reported in its place, as the SDK's own error.
        assert_eq!(field("errors"), "InvalidBody", "{plugin}");
        assert_eq!(
            field("swapped"),
            "True",
            "{plugin}: the first insert-if-absent wins"
        );
    }
}
