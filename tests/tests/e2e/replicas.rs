//! Two `wasmhook serve` replicas on one PostgreSQL schema, as behind a load balancer: webhooks
//! are split between them, one of them is SIGKILLed mid-stream (at random moments, and right
//! after the fake API applied a side effect) and restarted, while the other keeps running.

use std::{sync::Arc, time::Duration};

use rand::Rng;
use wasmhook::store::postgres::testing::TestSchema;
use wasmhook_tests::{ChildServer, FakeApi, signing::HighLevelSigner};

use crate::{
    engine_support::*,
    kill_support::{Stream, assert_exactly_once, one_at_a_time_tagger},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_kills_deliver_each_event_once() {
    let schema = TestSchema::create().await;
    let signer = Arc::new(HighLevelSigner::new());
    let fake = FakeApi::start().await;
    let configs = [
        one_at_a_time_tagger(&fake, &signer, Some(schema.url().expose())),
        one_at_a_time_tagger(&fake, &signer, Some(schema.url().expose())),
    ];
    let mut replicas = [
        Some(ChildServer::start(&configs[0].0, &[]).await),
        Some(ChildServer::start(&configs[1].0, &[]).await),
    ];
    let mut acked = Vec::new();
    let mut kills = 0;
    for round in 0..4 {
        let targets = [0, 1].map(|i| replicas[i].as_ref().unwrap().public);
        let stream = Stream::start(&targets, signer.clone(), 2, Duration::from_millis(15));
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
    let survivor = replicas[1].as_ref().unwrap();
    let list = wait_deliveries(
        survivor.admin,
        Duration::from_secs(60),
        "every delivery final",
        |l| all_final(l) && l.len() >= acked.len(),
    )
    .await;
    assert_exactly_once(&fake, &list, &acked, kills);
    for replica in replicas.into_iter().flatten() {
        replica.terminate(Duration::from_secs(30)).await;
    }
    schema.drop().await;
}
