//! Helpers of the kill tests, on one server (`crash.rs`) or on replicas sharing a database
//! (`replicas.rs`): a stream of signed webhooks, the config of a tagger that a kill interrupts
//! at most once, and the exactly-once check of what the fake API and the store end with.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{FakeApi, TestServer, signing::HighLevelSigner};

use crate::{
    common::{CONTACT_ID, contact_create, tagger_manifest, tagger_wasm},
    engine_support::post,
};

/// Unique signed ContactCreate webhooks posted until [`Stream::finish`].
pub struct Stream {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<Vec<String>>,
}

impl Stream {
    /// Starts `senders` tasks, each posting to `targets` in turn and pausing `pause` between
    /// posts. A target that is down (killed, restarting) refuses the connection; the sender
    /// goes on with the next post.
    pub fn start(
        targets: &[SocketAddr],
        signer: Arc<HighLevelSigner>,
        senders: usize,
        pause: Duration,
    ) -> Stream {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for sender in 0..senders {
            let (targets, signer, stopped) = (targets.to_vec(), signer.clone(), stopped.clone());
            tasks.spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                for target in targets.iter().cycle().skip(sender) {
                    if *stopped.borrow() {
                        break;
                    }
                    let (id, body) = contact_create();
                    if let Ok(200) = post(&client, *target, &signer, &body).await {
                        acked.push(id);
                    }
                    tokio::time::sleep(pause).await;
                }
                acked
            });
        }
        Stream { stop, tasks }
    }

    /// Stops the senders; the ids acknowledged with a 200.
    pub async fn finish(mut self) -> Vec<String> {
        let _ = self.stop.send(true);
        let mut acked = Vec::new();
        while let Some(ids) = self.tasks.join_next().await {
            acked.extend(ids.unwrap());
        }
        acked
    }
}

/// A tagger running one delivery at a time (so a kill interrupts at most one side effect) with
/// a short timeout (so leases lapse within seconds); on `store_url` when given, else SQLite.
pub fn one_at_a_time_tagger(
    fake: &FakeApi,
    signer: &HighLevelSigner,
    store_url: Option<&str>,
) -> (PathBuf, tempfile::TempDir) {
    let manifest =
        tagger_manifest().replace("timeout = \"10s\"", "timeout = \"2s\"\nconcurrency = 1");
    assert!(manifest.contains("concurrency = 1"), "{manifest}");
    let builder = TestServer::builder()
        .api("highlevel", fake)
        .highlevel(signer)
        .toml("[plugins]\nworkers = 4\npoll_interval = \"20ms\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n")
        .plugin("contact-tagger", &tagger_wasm(), &manifest);
    match store_url {
        Some(url) => builder.store_url(url).write(),
        None => builder.write(),
    }
}

/// After `kills` kills of the tagger's server(s): every `acked` event has exactly one
/// delivery in `list`, succeeded; the fake applied each side effect once; every call of a
/// delivery carries that delivery's one idempotency key; repeated calls <= kills.
pub fn assert_exactly_once(
    fake: &FakeApi,
    list: &[DeliveryRecord],
    acked: &[String],
    kills: usize,
) {
    assert!(
        acked.len() > 20,
        "the stream acknowledged only {} webhooks",
        acked.len()
    );
    let by_event: HashMap<&str, Vec<&DeliveryRecord>> =
        list.iter().fold(HashMap::new(), |mut map, d| {
            map.entry(d.event_id.as_str()).or_default().push(d);
            map
        });
    for id in acked {
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
}
