//! Ordering keys across two `wasmhook serve` replicas on one PostgreSQL schema: webhooks of the
//! same key are posted to both replicas in turn, and the fake API (slow to answer, so an overlap
//! would show) sees each key's calls one at a time and in webhook order.

use std::{collections::HashMap, time::Duration};

use axum::http::Method;
use wasmhook::store::{DeliveryState, postgres::testing::TestSchema};
use wasmhook_tests::{ChildServer, FakeApi, Reply, TestServer, signing::HighLevelSigner};

use crate::{common::hostile_wasm, engine_support::*};

const KEYS: usize = 4;
const PER_KEY: usize = 6;
/// How long the fake takes to answer each call: a same-key call arriving sooner after the
/// previous one would have overlapped it.
const ANSWER: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_deliveries_split_across_replicas_run_one_at_a_time_in_order() {
    let schema = TestSchema::create().await;
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    fake.on(
        Method::POST,
        "/record",
        Reply::Delayed(ANSWER, Box::new(Reply::Json(200, serde_json::json!({})))),
    );
    let configs = [0, 1].map(|_| {
        TestServer::builder()
            .api("fake", &fake)
            .highlevel(&signer)
            .toml("[plugins]\nworkers = 8\npoll_interval = \"20ms\"\n")
            .plugin(
                "recorder",
                &hostile_wasm(),
                &manifest(
                    "recorder",
                    "record",
                    "ordering_key = \"/id\"\nconcurrency = 8\ntimeout = \"10s\"",
                    "",
                ),
            )
            .store_url(schema.url().expose())
            .write()
    });
    let replicas = [
        ChildServer::start(&configs[0].0, &[]).await,
        ChildServer::start(&configs[1].0, &[]).await,
    ];

    // One post at a time, so webhook order is the order of the 200s. Each key's webhooks
    // alternate between the replicas; different keys interleave.
    let client = reqwest::Client::new();
    let mut key_of = HashMap::new();
    let mut posted: Vec<Vec<String>> = vec![Vec::new(); KEYS];
    for i in 0..KEYS * PER_KEY {
        let (key, n) = (i % KEYS, i / KEYS);
        let id = format!("ord-{key}-{n}");
        let replica = &replicas[n % 2];
        let body = contact_body(&id, &format!("contact-{key}"));
        assert_eq!(
            post(&client, replica.public, &signer, &body).await.unwrap(),
            200
        );
        key_of.insert(id.clone(), key);
        posted[key].push(id);
    }
    wait_deliveries(
        replicas[0].admin,
        Duration::from_secs(60),
        "every delivery succeeded",
        |l| l.len() == KEYS * PER_KEY && l.iter().all(|d| d.state == DeliveryState::Succeeded),
    )
    .await;

    let mut called: Vec<Vec<(String, std::time::Instant)>> = vec![Vec::new(); KEYS];
    for call in fake.requests_to("/record") {
        let event = call.json()["event"].as_str().unwrap().to_owned();
        called[key_of[&event]].push((event, call.at));
    }
    for key in 0..KEYS {
        let order: Vec<&String> = called[key].iter().map(|(event, _)| event).collect();
        assert_eq!(
            order,
            posted[key].iter().collect::<Vec<_>>(),
            "key {key}: one call per webhook, in webhook order"
        );
        for pair in called[key].windows(2) {
            let gap = pair[1].1.duration_since(pair[0].1);
            assert!(
                gap >= ANSWER,
                "key {key}: {} arrived {gap:?} after {} started, before it was answered",
                pair[1].0,
                pair[0].0
            );
        }
    }
    for replica in replicas {
        replica.terminate(Duration::from_secs(30)).await;
    }
    schema.drop().await;
}
