//! The reference-data cache through the client: hits are not sent, the capability check comes
//! before the lookup, webhooks of the configured kinds invalidate, the TTL expires, and the byte
//! bound evicts.

use std::time::Duration;

use serde_json::json;

use super::{
    fake::{
        Fake, Reply, as_caller, client, config, ctx_with, fake_client, get, post, quick_schedule,
    },
    metrics::Recorded,
};
use crate::{
    api::{ApiClient, ApiError, ApiRequest, PathPattern},
    config::{CacheRule, default_cache_rules},
    ids::{ApiName, TenantId},
};

const RULES: &[&str] = &[
    "GET /opportunities/pipelines",
    "GET /users/*",
    "GET /contacts/*",
    "POST /contacts/search",
];

fn pipelines() -> ApiRequest {
    let mut req = get("/opportunities/pipelines");
    req.query = vec![("locationId".into(), "loc1".into())];
    req
}

async fn setup() -> (Fake, ApiClient) {
    let fake = Fake::with_handler(|seen| Reply::json(json!({"path": seen.uri}))).await;
    let client = client(config(fake.base(""), None), quick_schedule());
    (fake, client)
}

fn ctx() -> crate::api::CallContext {
    ctx_with(RULES, Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn a_second_get_within_the_ttl_is_not_sent() {
    let recorded = Recorded::default();
    let _metrics = recorded.install();
    let (fake, client) = setup().await;
    let first = client.get_cached(&ctx(), pipelines()).await.unwrap();
    // Another plugin of the same tenant shares the entry.
    let other_plugin = as_caller(ctx(), "loc1", "other-plugin");
    let second = client.get_cached(&other_plugin, pipelines()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.count(), 1);
    let count = |result| {
        recorded.get(
            "wasmhook_api_cache_total",
            &[("api", "hl"), ("result", result)],
        )
    };
    assert_eq!((count("miss"), count("hit")), (1.0, 1.0));

    // Another tenant, another query: their own entries.
    let mut other_tenant = pipelines();
    other_tenant.query = vec![("locationId".into(), "loc2".into())];
    client
        .get_cached(&as_caller(ctx(), "loc2", "tagger"), other_tenant)
        .await
        .unwrap();
    let mut other_query = pipelines();
    other_query.query.push(("x".into(), "1".into()));
    client.get_cached(&ctx(), other_query).await.unwrap();
    assert_eq!(fake.count(), 3);

    // Fresh for the rule's TTL (10 minutes by default), then fetched again.
    tokio::time::sleep(Duration::from_secs(599)).await;
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    assert_eq!(fake.count(), 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    assert_eq!(fake.count(), 4);
}

#[tokio::test]
async fn a_plugin_without_the_grant_is_denied_not_served() {
    let (fake, client) = setup().await;
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    let ungranted = ctx_with(&["GET /contacts/*"], Duration::from_secs(30));
    let err = client
        .get_cached(&ungranted, pipelines())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Denied(m) if m.contains("allow-list")),
        "{err:?}"
    );
    // Nor may a plugin read another tenant's entry by naming it.
    let err = client
        .get_cached(&as_caller(ctx(), "loc2", "tagger"), pipelines())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Denied(_)), "{err:?}");
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn the_configured_webhook_kind_invalidates_the_tenant_s_entries() {
    let (fake, client) = setup().await;
    let (hl, loc1) = (ApiName::new("hl"), TenantId::new("loc1"));
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    client.get_cached(&ctx(), get("/users/u1")).await.unwrap();
    assert_eq!(fake.count(), 2);

    // Unrelated kinds, other tenants and other APIs drop nothing.
    assert_eq!(client.invalidate(&hl, &loc1, "ContactCreate"), 0);
    assert_eq!(
        client.invalidate(&hl, &TenantId::new("loc2"), "OpportunityCreate"),
        0
    );
    assert_eq!(
        client.invalidate(&ApiName::new("other"), &loc1, "OpportunityCreate"),
        0
    );
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    assert_eq!(fake.count(), 2);

    assert_eq!(client.invalidate(&hl, &loc1, "OpportunityCreate"), 1);
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    assert_eq!(fake.count(), 3);
    // The users entry was another rule's: still cached.
    client.get_cached(&ctx(), get("/users/u1")).await.unwrap();
    assert_eq!(fake.count(), 3);

    client.forget_tenant(&hl, &loc1);
    client.get_cached(&ctx(), get("/users/u1")).await.unwrap();
    assert_eq!(fake.count(), 4);
}

#[tokio::test]
async fn filling_past_the_bound_evicts_the_least_recently_used() {
    let fake =
        Fake::with_handler(|seen| Reply::json(json!({"path": seen.uri, "pad": "x".repeat(600)})))
            .await;
    let mut cfg = config(fake.base(""), None);
    cfg.cache_max = 8 * 1024;
    let client = client(cfg, quick_schedule());
    for i in 0..12 {
        client
            .get_cached(&ctx(), get(&format!("/users/u{i}")))
            .await
            .unwrap();
    }
    assert_eq!(fake.count(), 12);
    // The most recent are still there; the first ones were evicted.
    client.get_cached(&ctx(), get("/users/u11")).await.unwrap();
    assert_eq!(fake.count(), 12);
    client.get_cached(&ctx(), get("/users/u0")).await.unwrap();
    assert_eq!(fake.count(), 13);
}

#[tokio::test]
async fn uncovered_paths_and_other_methods_are_not_cached() {
    let (fake, client) = setup().await;
    client
        .get_cached(&ctx(), get("/contacts/c1"))
        .await
        .unwrap();
    client
        .get_cached(&ctx(), get("/contacts/c1"))
        .await
        .unwrap();
    assert_eq!(fake.count(), 2, "no cache rule covers contacts");
    let err = client
        .get_cached(
            &ctx(),
            post("/contacts/search", json!({"locationId": "loc1"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Denied(m) if m.contains("only GET")),
        "{err:?}"
    );
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let (fake, client) = fake_client(vec![Reply::status(404)], quick_schedule()).await;
    assert!(client.get_cached(&ctx(), pipelines()).await.is_err());
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    client.get_cached(&ctx(), pipelines()).await.unwrap();
    assert_eq!(fake.count(), 2);
}

#[test]
fn the_default_rules_cover_the_guide_s_reference_data() {
    let rules = default_cache_rules();
    let covers = |path: &str| rules.iter().any(|r: &CacheRule| r.path.matches_path(path));
    for path in [
        "/opportunities/pipelines",
        "/calendars",
        "/locations/loc1/customFields",
        "/locations/loc1/customFields/f1",
        "/users",
        "/users/u1",
    ] {
        assert!(covers(path), "{path}");
    }
    assert!(!covers("/calendars/events"));
    assert!(
        PathPattern::parse("/users/*")
            .unwrap()
            .matches_path("/users/search")
    );
}
