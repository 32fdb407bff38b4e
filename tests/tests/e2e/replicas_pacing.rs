//! Shared pacing through two `wasmhook serve` replicas on one PostgreSQL schema: 300 webhooks
//! of one tenant, split between the replicas, each make one API call to a fake that enforces
//! 100 requests per 10 s the way HighLevel does. The budget the replicas share in the database
//! keeps them under it together: no 429, and every call made once. Takes ~21 s by nature (three
//! windows of 10 s plus the pacer's send margin).

use std::{sync::Arc, time::Duration};

use wasmhook::store::{DeliveryState, postgres::testing::TestSchema};
use wasmhook_tests::{ChildServer, FakeApi, TestServer, signing::HighLevelSigner};

use crate::{
    common::{contact_create, hostile_wasm},
    engine_support::*,
};

const WEBHOOKS: usize = 300;
const SENDERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_rate_budget_and_never_see_a_429() {
    let schema = TestSchema::create().await;
    let signer = Arc::new(HighLevelSigner::new());
    let fake = FakeApi::start().await;
    fake.limit_rate(100, Duration::from_secs(10));
    let configs = [0, 1].map(|_| {
        TestServer::builder()
            .api_with(
                "fake",
                &fake,
                "rate_limit = { requests = 100, per = \"10s\" }",
            )
            .highlevel(&signer)
            .toml("[plugins]\nworkers = 16\npoll_interval = \"50ms\"\n")
            .plugin(
                "recorder",
                &hostile_wasm(),
                // Long enough to wait out two full windows for a slot.
                &manifest(
                    "recorder",
                    "record",
                    "concurrency = 16\ntimeout = \"60s\"\nmax_attempts = 3",
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

    // Every webhook is of the fixture's one location: one budget for all of them.
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..SENDERS {
        let (signer, targets) = (signer.clone(), replicas.each_ref().map(|r| r.public));
        senders.spawn(async move {
            let client = reqwest::Client::new();
            for i in (sender..WEBHOOKS).step_by(SENDERS) {
                let (_, body) = contact_create();
                let status = post(&client, targets[i % 2], &signer, &body).await.unwrap();
                assert_eq!(status, 200);
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }
    let list = wait_deliveries(
        replicas[0].admin,
        Duration::from_secs(90),
        "every delivery final",
        |l| l.len() == WEBHOOKS && all_final(l),
    )
    .await;
    assert!(
        list.iter().all(|d| d.state == DeliveryState::Succeeded),
        "{list:#?}"
    );
    assert_eq!(fake.limited(), 0, "no request went over the API's limit");
    assert_eq!(fake.requests_to("/record").len(), WEBHOOKS);
    assert_eq!(fake.side_effects(), WEBHOOKS, "every call made once");
    for replica in replicas {
        replica.terminate(Duration::from_secs(30)).await;
    }
    schema.drop().await;
}
