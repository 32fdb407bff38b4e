//! Crashes and signals against the real binary (`ChildServer`): SIGKILL at random moments and
//! right after the fake API applied a side effect, a worker killed mid-delivery, a delivery
//! that outlives a lease renewal period, and SIGTERM under load.

use std::{collections::HashSet, sync::Arc, time::Duration};

use rand::Rng;
use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{ChildServer, FakeApi, TestServer, signing::HighLevelSigner};

use crate::{
    common::{contact_create, hostile_wasm},
    engine_support::*,
    kill_support::{Stream, assert_exactly_once, one_at_a_time_tagger},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_and_at_a_side_effect_loses_and_repeats_nothing() {
    let signer = Arc::new(HighLevelSigner::new());
    let fake = FakeApi::start().await;
    let (config, _dir) = one_at_a_time_tagger(&fake, &signer, None);
    let mut acked = Vec::new();
    let mut kills = 0;
    for round in 0..4 {
        let child = ChildServer::start(&config, &[]).await;
        let stream = Stream::start(
            &[child.public],
            signer.clone(),
            2,
            Duration::from_millis(15),
        );
        if round < 3 {
            let wait = rand::thread_rng().gen_range(300..1200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        } else {
            // Exactly when the fake has applied the N-th side effect of this round: the host
            // has not recorded that delivery's success yet.
            let target = fake.side_effects() + 5;
            fake.wait_until(Duration::from_secs(30), "the N-th side effect", |f| {
                f.side_effects() >= target
            })
            .await;
        }
        child.kill().await;
        kills += 1;
        acked.extend(stream.finish().await);
    }
    let child = ChildServer::start(&config, &[]).await;
    let list = wait_deliveries(
        child.admin,
        Duration::from_secs(45),
        "every delivery final",
        |l| all_final(l) && l.len() >= acked.len(),
    )
    .await;
    assert_exactly_once(&fake, &list, &acked, kills);
    child.terminate(Duration::from_secs(30)).await;
}

/// A manifest of the hostile plugin sleeping `ms` then calling the fake.
fn slow_config(
    fake: &FakeApi,
    signer: &HighLevelSigner,
    ms: u64,
    timeout: &str,
) -> (std::path::PathBuf, tempfile::TempDir) {
    TestServer::builder()
        .api("fake", fake)
        .highlevel(signer)
        .toml("[plugins]\nworkers = 8\npoll_interval = \"20ms\"\n")
        .plugin(
            "slow",
            &hostile_wasm(),
            &manifest(
                "slow",
                "slow",
                &format!("timeout = \"{timeout}\""),
                &format!("ms = \"{ms}\""),
            ),
        )
        .write()
}

async fn one_delivery(
    admin: std::net::SocketAddr,
    timeout: Duration,
    state: DeliveryState,
) -> DeliveryRecord {
    let list = wait_deliveries(admin, timeout, "the delivery's state", |l| {
        l.len() == 1 && l[0].state == state
    })
    .await;
    admin_get(admin, &format!("/admin/deliveries/{}", list[0].id)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_worker_died_runs_again_after_its_lease_lapses() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let (config, _dir) = slow_config(&fake, &signer, 1500, "3s");
    let child = ChildServer::start(&config, &[]).await;
    let (id, body) = contact_create();
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, child.public, &signer, &body).await.unwrap(),
        200
    );
    one_delivery(child.admin, Duration::from_secs(20), DeliveryState::Running).await;
    child.kill().await;

    let child = ChildServer::start(&config, &[]).await;
    let done = one_delivery(
        child.admin,
        Duration::from_secs(30),
        DeliveryState::Succeeded,
    )
    .await;
    let outcomes: Vec<&str> = done.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["lost", "succeeded"], "{done:#?}");
    assert_eq!(fake.requests_to(&format!("/slow/{id}")).len(), 1);
    child.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_delivery_keeps_its_lease_and_runs_once() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    // Lease = 10 s + 5 s margin, renewed every 5 s: a 6 s run needs one renewal.
    let (config, _dir) = slow_config(&fake, &signer, 6000, "10s");
    let server = InProcess::start(&config).await;
    let (id, body) = contact_create();
    let client = reqwest::Client::new();
    assert_eq!(
        post(&client, server.public, &signer, &body).await.unwrap(),
        200
    );
    let first = one_delivery(
        server.admin,
        Duration::from_secs(20),
        DeliveryState::Running,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let list = all_deliveries(server.admin).await;
    if list[0].state == DeliveryState::Running {
        assert!(
            list[0].due_at_ms > first.due_at_ms,
            "the lease was renewed while running"
        );
    }
    let done = one_delivery(
        server.admin,
        Duration::from_secs(20),
        DeliveryState::Succeeded,
    )
    .await;
    assert_eq!(done.attempts.len(), 1, "{done:#?}");
    assert_eq!(
        fake.requests_to(&format!("/slow/{id}")).len(),
        1,
        "run once"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_and_lets_running_deliveries_finish() {
    let signer = Arc::new(HighLevelSigner::new());
    let fake = FakeApi::start().await;
    let (config, _dir) = slow_config(&fake, &signer, 700, "5s");
    let child = ChildServer::start(&config, &[]).await;
    let stream = Stream::start(
        &[child.public],
        signer.clone(),
        2,
        Duration::from_millis(30),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = child.terminate(Duration::from_secs(40)).await;
    assert!(status.success(), "wasmhook exited with {status}");
    let acked = stream.finish().await;
    assert!(!acked.is_empty());

    let child = ChildServer::start(&config, &[]).await;
    let list = wait_deliveries(
        child.admin,
        Duration::from_secs(60),
        "every delivery final",
        |l| all_final(l) && l.len() >= acked.len(),
    )
    .await;
    let succeeded: HashSet<&str> = list
        .iter()
        .filter(|d| d.state == DeliveryState::Succeeded)
        .map(|d| d.event_id.as_str())
        .collect();
    for id in &acked {
        assert!(
            succeeded.contains(id.as_str()),
            "acknowledged event {id} was delivered"
        );
    }
    for d in &list {
        let record: DeliveryRecord =
            admin_get(child.admin, &format!("/admin/deliveries/{}", d.id)).await;
        assert!(
            record.attempts.iter().all(|a| a.outcome == "succeeded"),
            "nothing was cut off by the shutdown: {record:#?}"
        );
    }
    child.terminate(Duration::from_secs(30)).await;
}
