//! Token refresh across two `wasmhook serve` replicas on one PostgreSQL schema: an installation
//! whose access token has expired gets webhooks on both replicas at once, so both need a new
//! token while the (slow) refresh is in flight; the refresh lease in the shared row lets one of
//! them refresh and makes the other wait for what it writes.

use std::time::Duration;

use serde_json::json;
use wasmhook::store::{DeliveryState, postgres::testing::TestSchema};
use wasmhook_tests::{Admin, ChildServer, FakeOAuth, Installee, signing::HighLevelSigner};

use crate::tokens_support::{body, builder};

/// Webhooks posted to each replica.
const PER_REPLICA: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_needing_an_expired_token_refresh_it_once() {
    let schema = TestSchema::create().await;
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(2)).await;
    fake.code(
        "code-a",
        Installee {
            user_type: "Location".into(),
            location: Some("loc-a".into()),
            company: Some("co-1".into()),
        },
    );
    // No background refresh: the deliveries themselves find the token expired.
    let configs = [0, 1].map(|_| {
        builder(&signer, &fake, "check_interval = \"1h\"")
            .store_url(schema.url().expose())
            .write()
    });
    let replicas = [
        ChildServer::start(&configs[0].0, &[]).await,
        ChildServer::start(&configs[1].0, &[]).await,
    ];
    let callback = reqwest::get(replicas[0].url("/oauth/callback/fake?code=code-a"))
        .await
        .unwrap();
    assert_eq!(callback.status(), 200, "{}", callback.text().await.unwrap());
    let first = fake.issued()[0].clone();
    fake.set_lifetime(Duration::from_secs(3600));
    // The refresh stays in flight a second: the replica that does not hold the lease needs the
    // token meanwhile and must wait for the other's result instead of refreshing too.
    fake.slow_refreshes(Duration::from_secs(1));
    while fake.is_live(&first) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = reqwest::Client::new();
    let mut posts = tokio::task::JoinSet::new();
    let mut ids = Vec::new();
    for i in 0..2 * PER_REPLICA {
        let (id, body) = body("contact-create", "loc-a", json!({}));
        ids.push(id);
        let (client, public) = (client.clone(), replicas[i % 2].public);
        let signature = signer.sign_ed25519(&body);
        posts.spawn(async move {
            let headers = [("x-ghl-signature", signature)];
            wasmhook_tests::post_webhook(&client, public, "highlevel", &body, &headers)
                .await
                .status()
        });
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let admin = Admin::new(replicas[1].admin);
    for id in &ids {
        let done = admin
            .wait_final(id, "recorder", Duration::from_secs(30))
            .await;
        assert_eq!(done.state, DeliveryState::Succeeded, "{done:#?}");
    }

    let refreshes = fake.grants("refresh_token");
    assert_eq!(
        refreshes.len(),
        1,
        "one refresh across both replicas: {refreshes:#?}"
    );
    let issued = fake.issued();
    assert_eq!(issued.len(), 4, "the installed pair and the refreshed one");
    let new = &issued[2];
    let bearers: Vec<String> = fake
        .api_calls()
        .into_iter()
        .filter(|s| s.path == "/record")
        .filter_map(|s| s.bearer)
        .collect();
    assert_eq!(bearers.len(), ids.len(), "one call per delivery");
    assert!(
        bearers.iter().all(|b| b == new),
        "every call carried the refreshed token: {bearers:?}"
    );
    let refreshed_by: Vec<usize> = replicas
        .iter()
        .map(|r| r.log_text().matches("refreshing the access token").count())
        .collect();
    assert_eq!(
        refreshed_by.iter().sum::<usize>(),
        1,
        "one replica refreshed: {refreshed_by:?}"
    );
    for replica in replicas {
        replica.terminate(Duration::from_secs(30)).await;
    }
    schema.drop().await;
}
