//! Checks of the operators' tools and of retention: replay, bulk replay with pacing, cancel,
//! purge, garbage collection, erasure, and data minimisation.

use serde_json::json;

use super::fixtures::*;
use crate::{
    ids::{PluginName, TenantId, now_ms},
    store::{
        Completion, DeliveryState, EraseRequest, Pacing, PurgeFilter, ReplayFilter,
        RetentionCutoffs, Store, StoreError,
    },
};

/// A dead delivery replays with a fresh attempt budget; its history stays; a pending one and
/// an unknown id are refused.
pub async fn replay_revives_a_dead_delivery_with_fresh_attempts<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["tagger"], 1).await;
    let got = claim(&store, 1, LONG_LEASE).await;
    finish(&store, &got[0], Completion::Dead).await;
    store.replay(&id[0]).await.expect("replay a dead delivery");
    let d = record(&store, &id[0]).await;
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(
        (d.attempts_made, d.max_attempts),
        (1, 2),
        "one more attempt"
    );
    assert_eq!(d.attempts.len(), 1, "the history is kept");
    assert!(d.note.is_some(), "the replay is noted");
    match store.replay(&id[0]).await {
        Err(StoreError::WrongState { state, .. }) => assert_eq!(state, "pending"),
        other => panic!("replaying a pending delivery: {other:?}"),
    }
    let again = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(again[0].attempt, 2, "attempt numbers continue");
    let missing = crate::ids::DeliveryId::new("nope");
    assert!(matches!(
        store.replay(&missing).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Bulk replay takes only the matching dead deliveries, oldest death first, in batches, with
/// due times spread by the pacing.
pub async fn replay_dead_filters_and_paces<S: Store>(store: S) {
    for i in 0..5 {
        ingest_new(&store, &format!("evt-{i}"), &["a", "b"], 1).await;
    }
    for c in claim(&store, 100, LONG_LEASE).await {
        finish(&store, &c, Completion::Dead).await;
    }
    let filter = ReplayFilter {
        plugin: Some(PluginName::new("a")),
        ..ReplayFilter::default()
    };
    let start = now_ms() + 60_000;
    let pacing = Pacing {
        first_due_ms: start,
        spacing_ms: 1000,
    };
    let first = store
        .replay_dead(filter.clone(), pacing, 3)
        .await
        .expect("replay");
    assert_eq!(first.len(), 3, "a batch of at most the limit");
    let rest = store
        .replay_dead(
            filter.clone(),
            Pacing {
                first_due_ms: start + 3000,
                ..pacing
            },
            3,
        )
        .await
        .expect("replay");
    assert_eq!(rest.len(), 2, "then the rest");
    assert!(
        store
            .replay_dead(filter, pacing, 3)
            .await
            .expect("replay")
            .is_empty()
    );
    let mut dues = Vec::new();
    for id in first.iter().chain(&rest) {
        let d = record(&store, id).await;
        assert_eq!(d.plugin.as_str(), "a");
        assert_eq!(d.state, DeliveryState::Pending);
        dues.push(d.due_at_ms - start);
    }
    assert_eq!(
        dues,
        vec![0, 1000, 2000, 3000, 4000],
        "paced one per second"
    );
    let b_dead = store
        .deliveries(crate::store::DeliveryFilter {
            plugin: Some(PluginName::new("b")),
            state: Some(DeliveryState::Dead),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        b_dead.len(),
        5,
        "another plugin's dead deliveries stay dead"
    );
}

/// Cancel deletes a pending delivery (and only a pending one).
pub async fn cancel_deletes_only_pending_deliveries<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["a", "b"], 3).await;
    store.cancel(&id[0]).await.expect("cancel pending");
    assert!(store.delivery(&id[0]).await.expect("read").is_none());
    let got = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(ids(&got), vec![id[1].clone()]);
    match store.cancel(&id[1]).await {
        Err(StoreError::WrongState { state, .. }) => assert_eq!(state, "running"),
        other => panic!("cancelling a running delivery: {other:?}"),
    }
}

/// Purge deletes dead deliveries matching the filter, with their attempts; others stay.
pub async fn purge_deletes_dead_deliveries<S: Store>(store: S) {
    ingest_new(&store, "evt-1", &["a", "b", "c"], 1).await;
    let got = claim(&store, 10, LONG_LEASE).await;
    for c in &got {
        let completion = if c.plugin.as_str() == "c" {
            Completion::Succeeded
        } else {
            Completion::Dead
        };
        finish(&store, c, completion).await;
    }
    let removed = store
        .purge_dead(
            PurgeFilter {
                plugin: Some(PluginName::new("a")),
                died_before_ms: None,
            },
            100,
        )
        .await
        .expect("purge");
    assert_eq!((removed.deliveries, removed.attempts), (1, 1));
    let removed = store
        .purge_dead(
            PurgeFilter {
                plugin: None,
                died_before_ms: Some(now_ms() - 60_000),
            },
            100,
        )
        .await
        .expect("purge");
    assert!(
        removed.is_empty(),
        "b died just now, not before a minute ago"
    );
    let removed = store
        .purge_dead(PurgeFilter::default(), 100)
        .await
        .expect("purge");
    assert_eq!(removed.deliveries, 1, "b");
    let left = all_deliveries(&store).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, DeliveryState::Succeeded);
    assert_eq!(
        store.event_count().await.expect("count"),
        1,
        "the event stays"
    );
}

/// Retention deletes old events whose deliveries all succeeded (and old dead deliveries), and
/// never an event with a delivery still pending; newer events stay and still dedup.
pub async fn retention_keeps_what_is_due_or_recent<S: Store>(store: S) {
    let done = ingest_new(&store, "old-done", &["a"], 1).await;
    let dead = ingest_new(&store, "old-dead", &["a"], 1).await;
    ingest_new(&store, "old-pending", &["b"], 1).await;
    for c in claim_slots(&store, 10, &[("a", 10)]).await {
        let completion = if c.delivery == done[0] {
            Completion::Succeeded
        } else {
            Completion::Dead
        };
        finish(&store, &c, completion).await;
    }
    // Everything so far counts as old; nothing dead is old enough yet.
    let cutoff = now_ms() + 1;
    let removed = store
        .collect_garbage(
            RetentionCutoffs {
                events_before_ms: cutoff,
                dead_before_ms: cutoff - 60_000,
            },
            100,
        )
        .await
        .expect("gc");
    assert_eq!(
        (removed.events, removed.deliveries, removed.attempts),
        (1, 1, 1),
        "only old-done with its delivery and attempt"
    );
    assert!(store.delivery(&dead[0]).await.expect("read").is_some());
    let removed = store
        .collect_garbage(
            RetentionCutoffs {
                events_before_ms: cutoff,
                dead_before_ms: cutoff,
            },
            100,
        )
        .await
        .expect("gc");
    assert_eq!(
        (removed.events, removed.deliveries),
        (1, 1),
        "the old dead delivery, then its event"
    );
    assert_eq!(
        store.event_count().await.expect("count"),
        1,
        "old-pending stays"
    );
    let again = store
        .ingest(new_event("old-pending", "loc-1"), subscribers(&["b"], 1))
        .await
        .expect("ingest");
    assert_eq!(
        again,
        crate::store::IngestOutcome::Duplicate,
        "a kept event still dedups"
    );
    let removed = store
        .collect_garbage(
            RetentionCutoffs {
                events_before_ms: 0,
                dead_before_ms: 0,
            },
            100,
        )
        .await
        .expect("gc");
    assert!(removed.is_empty(), "nothing is older than the epoch");
}

/// Erasing a tenant removes its events, deliveries, attempts and kv, and nothing of another
/// tenant; erasing a contact removes only the events naming it.
pub async fn erase_removes_a_tenant_or_a_contact<S: Store>(store: S) {
    let note = |contact: &str| json!({"type": "NoteCreate", "contactId": contact});
    ingest_json(&store, "t1-a", "t1", note("c-1"), subscribers(&["p"], 1)).await;
    ingest_json(&store, "t1-b", "t1", note("c-2"), subscribers(&["p"], 1)).await;
    ingest_json(&store, "t2-a", "t2", note("c-1"), subscribers(&["p"], 1)).await;
    for c in claim(&store, 10, LONG_LEASE).await {
        finish(&store, &c, Completion::Dead).await;
    }
    store
        .kv_set(&scope("p", "t1"), "k", b"v".to_vec(), None)
        .await
        .expect("kv");
    store
        .kv_set(&scope("p", "t2"), "k", b"v".to_vec(), None)
        .await
        .expect("kv");

    let removed = store
        .erase(EraseRequest {
            tenant: TenantId::new("t1"),
            contact: Some("c-1".into()),
        })
        .await
        .expect("erase contact");
    assert_eq!(
        (
            removed.events,
            removed.deliveries,
            removed.attempts,
            removed.kv_entries
        ),
        (1, 1, 1, 0),
        "only t1's event naming c-1"
    );
    let removed = store
        .erase(EraseRequest {
            tenant: TenantId::new("t1"),
            contact: None,
        })
        .await
        .expect("erase tenant");
    assert_eq!(
        (
            removed.events,
            removed.deliveries,
            removed.attempts,
            removed.kv_entries
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        store.event_count().await.expect("count"),
        1,
        "t2's event stays"
    );
    assert!(
        store
            .kv_get(&scope("p", "t2"), "k")
            .await
            .expect("kv")
            .is_some()
    );
    let removed = store
        .erase(EraseRequest {
            tenant: TenantId::new("t1"),
            contact: None,
        })
        .await
        .expect("erase again");
    assert!(removed.is_empty(), "nothing left to erase");
}

/// Once every delivery of an event succeeded, its payload is dropped and its hash kept; while
/// one is not done, the payload stays. A succeeded delivery without payload cannot replay.
pub async fn payload_is_dropped_once_every_delivery_succeeded<S: Store>(store: S) {
    let ids = ingest_new(&store, "evt-1", &["a", "b"], 1).await;
    let event = new_event("evt-1", "loc-1");
    let got = claim(&store, 10, LONG_LEASE).await;
    finish(&store, &got[0], Completion::Succeeded).await;
    let info = store
        .event_info(&event.source, &event.id)
        .await
        .expect("info")
        .expect("stored");
    assert_eq!(
        info.payload_len,
        event.payload.len() as u64,
        "b still needs it"
    );
    assert_eq!(info.payload_dropped_at_ms, None);
    finish(&store, &got[1], Completion::Succeeded).await;
    let info = store
        .event_info(&event.source, &event.id)
        .await
        .expect("info")
        .expect("the event is kept for dedup");
    assert_eq!(info.payload_len, 0, "dropped");
    assert!(info.payload_dropped_at_ms.is_some());
    use sha2::Digest;
    assert_eq!(
        info.payload_sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(&event.payload)).as_str()),
        "the hash of what was received stays"
    );
    assert!(matches!(
        store.replay(&ids[0]).await,
        Err(StoreError::PayloadDropped(_))
    ));
    // No subscriber: nothing will ever need the payload.
    store
        .ingest(new_event("lonely", "loc-1"), Vec::new())
        .await
        .expect("ingest");
    let info = store
        .event_info(&event.source, &crate::ids::EventId::new("lonely"))
        .await
        .expect("info")
        .expect("stored");
    assert_eq!(info.payload_len, 0);
}
