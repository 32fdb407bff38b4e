//! Two `wasmhook serve` replicas on one PostgreSQL schema, as behind a load balancer: webhooks
//! are split between them, one of them is SIGKILLed mid-stream (at random moments, and right
//! after the fake API applied a side effect) and restarted, while the other keeps running.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use rand::Rng;
use wasmhook::store::{DeliveryRecord, DeliveryState, postgres::testing::TestSchema};
use wasmhook_tests::{ChildServer, FakeApi, TestServer, signing::HighLevelSigner};

use crate::{
    common::{CONTACT_ID, contact_create, tagger_manifest, tagger_wasm},
    engine_support::*,
};

/// Posts unique signed webhooks, alternating between the replicas, until stopped; returns the
/// ids acknowledged with a 200. A replica that is down refuses the connection; the sender goes
/// on with the other.
struct Stream {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<Vec<String>>,
}

impl Stream {
    fn start(targets: [SocketAddr; 2], signer: Arc<HighLevelSigner>) -> Stream {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for sender in 0..2 {
            let (signer, stopped) = (signer.clone(), stopped.clone());
            tasks.spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                let mut n = sender;
                while !*stopped.borrow() {
                    let (id, body) = contact_create();
                    if let Ok(200) = post(&client, targets[n % 2], &signer, &body).await {
                        acked.push(id);
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(15)).await;
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

/// One replica's config (its own folder, so its own compile cache) on the shared schema: a
/// tagger running one delivery at a time with a short timeout, so leases lapse within seconds.
fn replica_config(
    fake: &FakeApi,
    signer: &HighLevelSigner,
    schema: &TestSchema,
) -> (PathBuf, tempfile::TempDir) {
    let manifest =
        tagger_manifest().replace("timeout = \"10s\"", "timeout = \"2s\"\nconcurrency = 1");
    assert!(manifest.contains("concurrency = 1"), "{manifest}");
    TestServer::builder()
        .api("highlevel", fake)
        .highlevel(signer)
        .store_url(schema.url().expose())
        .toml("[plugins]\nworkers = 4\npoll_interval = \"20ms\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n")
        .plugin("contact-tagger", &tagger_wasm(), &manifest)
        .write()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_kills_deliver_each_event_once() {
    let schema = TestSchema::create().await;
    let signer = Arc::new(HighLevelSigner::new());
    let fake = FakeApi::start().await;
    let configs = [
        replica_config(&fake, &signer, &schema),
        replica_config(&fake, &signer, &schema),
    ];
    let mut replicas = [
        Some(ChildServer::start(&configs[0].0, &[]).await),
        Some(ChildServer::start(&configs[1].0, &[]).await),
    ];
    let mut acked = Vec::new();
    let mut kills = 0;
    for round in 0..4 {
        let targets = [0, 1].map(|i| replicas[i].as_ref().unwrap().public);
        let stream = Stream::start(targets, signer.clone());
        if round < 3 {
            let wait = rand::thread_rng().gen_range(300..1200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        } else {
            // Right when the fake applied the N-th side effect of this round: the replica that
            // made it may not have recorded that delivery's success yet.
            let target = fake.side_effects() + 5;
            fake.wait_until(Duration::from_secs(30), "the N-th side effect", |f| {
                f.side_effects() >= target
            })
            .await;
        }
        let victim = round % 2;
        replicas[victim].take().unwrap().kill().await;
        kills += 1;
        acked.extend(stream.finish().await);
        replicas[victim] = Some(ChildServer::start(&configs[victim].0, &[]).await);
    }
    assert!(
        acked.len() > 20,
        "the stream acknowledged only {} webhooks",
        acked.len()
    );

    let survivor = replicas[1].as_ref().unwrap();
    let list = wait_deliveries(
        survivor.admin,
        Duration::from_secs(60),
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
        assert_eq!(deliveries.len(), 1, "event {id}: one delivery per plugin");
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
        let (delivery, _) = key.rsplit_once(':').expect("key is <delivery>:<n>");
        keys_by_delivery
            .entry(delivery.to_owned())
            .or_default()
            .insert(key.clone());
    }
    for (delivery, keys) in &keys_by_delivery {
        assert_eq!(keys.len(), 1, "delivery {delivery}: repeats carry one key");
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
    for replica in replicas.into_iter().flatten() {
        replica.terminate(Duration::from_secs(30)).await;
    }
    schema.drop().await;
}
