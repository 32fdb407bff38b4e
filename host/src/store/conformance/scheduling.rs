//! Checks of what decides WHICH deliveries a claim hands out: per-plugin slots, ordering keys,
//! and deferral without spending an attempt.

use serde_json::json;

use super::fixtures::*;
use crate::{
    ids::{PluginName, now_ms},
    store::{Completion, DeliveryState, NewDelivery, Store},
};

/// A claim never gives a plugin more than its free slots, and serves the other plugins from
/// the room left, so one busy plugin cannot take every worker.
pub async fn claim_respects_each_plugins_free_slots<S: Store>(store: S) {
    for i in 0..6 {
        ingest_new(&store, &format!("evt-{i}"), &["slow", "fast"], 3).await;
    }
    let got = claim_slots(&store, 10, &[("slow", 2), ("fast", 5)]).await;
    let slow = got.iter().filter(|c| c.plugin.as_str() == "slow").count();
    let fast = got.iter().filter(|c| c.plugin.as_str() == "fast").count();
    assert_eq!((slow, fast), (2, 5), "each plugin within its slots");
    let got = claim_slots(&store, 3, &[("slow", 0), ("fast", 5)]).await;
    assert_eq!(got.len(), 1, "only the last fast one is left for fast");
    assert!(got.iter().all(|c| c.plugin.as_str() == "fast"));
    let got = claim_slots(&store, 1, &[("slow", 4)]).await;
    assert_eq!(got.len(), 1, "the global limit caps the claim");
    let got = claim_slots(&store, 10, &[("other", 4)]).await;
    assert!(
        got.is_empty(),
        "unlisted plugins' deliveries are left alone"
    );
}

/// Same-key deliveries of a plugin run one at a time in arrival order; other keys, other
/// plugins and unordered deliveries are not held back; a retry holds the key until it ends;
/// dead and succeeded release it.
pub async fn same_key_deliveries_run_one_at_a_time_in_order<S: Store>(store: S) {
    let payload = |contact: &str| json!({"contactId": contact});
    let a1 = ingest_json(&store, "a1", "loc-1", payload("A"), vec![ordered("p", 2)]).await;
    let a2 = ingest_json(&store, "a2", "loc-1", payload("A"), vec![ordered("p", 2)]).await;
    let b1 = ingest_json(&store, "b1", "loc-1", payload("B"), vec![ordered("p", 2)]).await;
    let a3 = ingest_json(
        &store,
        "a3",
        "loc-1",
        payload("A"),
        vec![ordered("p", 2), NewDelivery::new(PluginName::new("q"), 2)],
    )
    .await;
    let nokey = ingest_json(&store, "n", "loc-1", json!({}), vec![ordered("p", 2)]).await;
    assert_eq!(
        record(&store, &a1[0]).await.ordering_key.as_deref(),
        Some("A"),
        "the key is resolved at ingest"
    );
    assert_eq!(record(&store, &nokey[0]).await.ordering_key, None);

    let first = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        ids(&first),
        vec![
            a1[0].clone(),
            b1[0].clone(),
            a3[1].clone(),
            nokey[0].clone()
        ],
        "the first of each key, another plugin's and the unordered one; not a2 or a3"
    );
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "A is held while a1 runs"
    );

    // a1 fails and waits for its retry: A stays held until the retry runs.
    finish(
        &store,
        &first[0],
        Completion::Retry {
            at_ms: now_ms() + 400,
        },
    )
    .await;
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "a pending retry of a1 still holds A"
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let a1_again = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(ids(&a1_again), a1, "a1's retry comes first, in order");
    // a1 dies at its last attempt: A is released and a2 (not a3) goes next.
    finish(&store, &a1_again[0], Completion::Dead).await;
    let next = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(ids(&next), a2, "a dead a1 releases A to a2");
    finish(&store, &next[0], Completion::Succeeded).await;
    let next = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        ids(&next),
        vec![a3[0].clone()],
        "a succeeded a2 releases A to a3"
    );
}

/// `defer` puts a running delivery back without spending its attempt, with a note, due at the
/// given time; a stale token writes nothing.
pub async fn defer_does_not_spend_an_attempt<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["tagger"], 1).await;
    let got = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(got[0].attempt, 1);
    store
        .defer(&id[0], &got[0].lease, now_ms() + 100, "quota".into())
        .await
        .expect("defer");
    let d = record(&store, &id[0]).await;
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.attempts_made, 0, "the attempt was given back");
    assert_eq!(d.note.as_deref(), Some("quota"));
    assert!(d.attempts.is_empty(), "no attempt row for a deferral");
    assert!(claim(&store, 1, LONG_LEASE).await.is_empty(), "not due yet");
    assert_lease_lost(
        store
            .defer(&id[0], &got[0].lease, now_ms(), "again".into())
            .await,
        &id[0],
        "defer after the delivery went back",
    );
    tokio::time::sleep(WAIT_OUT).await;
    let again = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(again[0].attempt, 1, "the same attempt number runs again");
    assert_eq!(again[0].max_attempts, 1);
    assert_eq!(
        record(&store, &id[0]).await.note,
        None,
        "a claim clears the note"
    );
}
