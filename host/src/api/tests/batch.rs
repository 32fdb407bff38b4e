//! Batches keep request order whatever order the answers come in, run a bounded number at once,
//! number each call, and a bulk endpoint is one ordinary call for many records.

use std::time::Duration;

use serde_json::json;

use super::fake::{Fake, Reply, client, config, ctx_with, fake_client, get, post, quick_schedule};
use crate::api::{ApiError, BATCH_CONCURRENCY};

const RULES: &[&str] = &["GET /contacts/*", "POST /contacts/bulk/tags/update/*"];

#[tokio::test(start_paused = true)]
async fn results_come_back_in_request_order_with_bounded_concurrency() {
    let fake = Fake::with_handler(|seen| {
        // Earlier requests answer later, so completion order is the reverse of request order.
        let n: u64 = seen
            .path()
            .trim_start_matches("/contacts/c")
            .parse()
            .unwrap();
        Reply::json(json!({"id": n})).delayed(Duration::from_millis(1000 - n * 100))
    })
    .await;
    let client = client(config(fake.base(""), None), quick_schedule());
    let ctx = ctx_with(RULES, Duration::from_secs(30));
    let mut requests: Vec<_> = (0..8).map(|i| get(&format!("/contacts/c{i}"))).collect();
    requests.insert(3, get("/admin/x"));
    let results = client.send_batch(&ctx, requests).await;

    assert_eq!(results.len(), 9);
    assert!(matches!(&results[3], Err(ApiError::Denied(m)) if m.contains("allow-list")));
    let ids: Vec<u64> = results
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, r)| {
            let body: serde_json::Value =
                serde_json::from_slice(&r.as_ref().unwrap().body).unwrap();
            body["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ids, (0..8).collect::<Vec<u64>>());
    assert_eq!(fake.max_in_flight(), BATCH_CONCURRENCY);

    // Request i of the batch is call number ctx.call_number + i (3 + i here).
    let mut keys: Vec<String> = fake
        .seen()
        .iter()
        .map(|s| s.headers["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut expected: Vec<String> = [3, 4, 5, 7, 8, 9, 10, 11]
        .iter()
        .map(|n| format!("evt1-tagger:{n}"))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let (fake, client) = fake_client(vec![], quick_schedule()).await;
    let results = client
        .send_batch(&ctx_with(RULES, Duration::from_secs(5)), vec![])
        .await;
    assert!(results.is_empty());
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn a_bulk_endpoint_tags_many_contacts_in_one_call() {
    let (fake, client) = fake_client(vec![], quick_schedule()).await;
    let ids: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let body = json!({"locationId": "loc1", "ids": ids, "tags": ["vip"]});
    client
        .send(
            &ctx_with(RULES, Duration::from_secs(5)),
            post("/contacts/bulk/tags/update/add", body.clone()),
        )
        .await
        .unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path(), "/contacts/bulk/tags/update/add");
    assert_eq!(seen[0].json(), body);
}
