//! Crashes and signals against the real binary (`ChildServer`): SIGKILL at random moments and
//! right after the fake API applied a side effect, a worker killed mid-delivery, a delivery
//! that outlives a lease renewal period, and SIGTERM under load.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use rand::Rng;
use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{ChildServer, FakeApi, TestServer, signing::HighLevelSigner};

use crate::{
    common::{CONTACT_ID, contact_create, hostile_wasm, tagger_manifest, tagger_wasm},
    engine_support::*,
};

/// Posts unique signed ContactCreate webhooks from `senders` tasks (each pausing `pause`
/// between posts) until stopped; returns the ids acknowledged with a 200.
struct Stream {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<Vec<String>>,
}

impl Stream {
    fn start(
        public: std::net::SocketAddr,
        signer: Arc<HighLevelSigner>,
        senders: usize,
        pause: Duration,
    ) -> Stream {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..senders {
            let (signer, stopped) = (signer.clone(), stopped.clone());
            tasks.spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                while !*stopped.borrow() {
                    let (id, body) = contact_create();
                    match post(&client, public, &signer, &body).await {
                        Ok(200) => acked.push(id),
                        Ok(_) => {}
                        // The server is gone (killed): nothing more to send to it.
                        Err(_) => break,
                    }
                    tokio::time::sleep(pause).await;
                }
                acked
            });
        }
        Stream { stop, tasks }
    }

    async fn finish(mut self) -> Vec<String> {
        let _ = self.stop.send(true);
        let mut acked = Vec::new();
        while let Some(ids) = self.tasks.join_next().await {
            acked.extend(ids.unwrap());
        }
        acked
    }
}

/// The config of a tagger that runs one delivery at a time (so a kill interrupts at most one
/// side effect) with a short timeout (so leases lapse within seconds).
fn crash_config(
    fake: &FakeApi,
    signer: &HighLevelSigner,
) -> (std::path::PathBuf, tempfile::TempDir) {
    let manifest =
        tagger_manifest().replace("timeout = \"10s\"", "timeout = \"2s\"\nconcurrency = 1");
    assert!(manifest.contains("concurrency = 1"), "{manifest}");
    TestServer::builder()
        .api("highlevel", fake)
        .highlevel(signer)
        .toml("[plugins]\nworkers = 4\npoll_interval = \"20ms\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n")
        .plugin("contact-tagger", &tagger_wasm(), &manifest)
        .write()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_and_at_a_side_effect_loses_and_repeats_nothing() {
    let signer = Arc::new(HighLevelSigner::new());
    let fake = FakeApi::start().await;
    let (config, _dir) = crash_config(&fake, &signer);
    let mut acked = Vec::new();
    let mut kills = 0;
    for round in 0..4 {
        let child = ChildServer::start(&config, &[]).await;
        let stream = Stream::start(child.public, signer.clone(), 2, Duration::from_millis(15));
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
    assert!(
        acked.len() > 20,
        "the stream acknowledged only {} webhooks",
        acked.len()
    );

    let child = ChildServer::start(&config, &[]).await;
    let list = wait_deliveries(
        child.admin,
        Duration::from_secs(45),
        "every delivery final",
        |l| all_final(l) && l.len() >= acked.len(),
    )
    .await;
    let by_event: HashMap<&str, Vec<&DeliveryRecord>> =
        list.iter().fold(HashMap::new(), |mut map, d| {
            map.entry(d.event_id.as_str()).or_default().push(d);
            map
        });
    for id in &acked {
        let deliveries = by_event.get(id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            deliveries.len(),
            1,
            "event {id}: one delivery per subscribed plugin"
        );
        assert_eq!(
            deliveries[0].state,
            DeliveryState::Succeeded,
            "{:#?}",
            deliveries[0]
        );
    }

    let calls = fake.requests_to(&format!("/contacts/{CONTACT_ID}/tags"));
    let mut keys_by_delivery: HashMap<String, HashSet<String>> = HashMap::new();
    for call in &calls {
        let key = call
            .header("idempotency-key")
            .expect("every call carries a key")
            .to_owned();
        let (delivery, number) = key.rsplit_once(':').expect("key is <delivery>:<n>");
        assert_eq!(number, "1", "one call per delivery");
        keys_by_delivery
            .entry(delivery.to_owned())
            .or_default()
            .insert(key.clone());
    }
    for (delivery, keys) in &keys_by_delivery {
        assert_eq!(
            keys.len(),
            1,
            "delivery {delivery}: every repeat carries the same key"
        );
    }
    let known: HashSet<&str> = list.iter().map(|d| d.id.as_str()).collect();
    assert!(keys_by_delivery.keys().all(|d| known.contains(d.as_str())));
    for d in list.iter().filter(|d| d.state == DeliveryState::Succeeded) {
        assert!(
            keys_by_delivery.contains_key(d.id.as_str()),
            "{} made its call",
            d.id
        );
    }
    assert_eq!(
        fake.side_effects(),
        keys_by_delivery.len(),
        "the fake applied each side effect once"
    );
    assert_eq!(calls.len(), fake.side_effects() + fake.replays());
    assert!(
        fake.replays() <= kills,
        "{} repeated calls after {kills} kills",
        fake.replays()
    );
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
    let stream = Stream::start(child.public, signer.clone(), 2, Duration::from_millis(30));
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
