//! Checks of `ingest`: events and their deliveries are stored once, even under concurrency.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::fixtures::*;
use crate::{
    ids::{DeliveryId, EventId, SourceName, now_ms},
    store::{DeliveryState, IngestOutcome, Store},
};

pub async fn ingest_stores_event_and_deliveries<S: Store>(store: S) {
    let before = now_ms();
    let event = new_event("evt-1", "loc-1");
    let outcome = store
        .ingest(event.clone(), subscribers(&["tagger", "notifier"], 4))
        .await
        .expect("ingest");
    let IngestOutcome::Inserted { deliveries } = outcome else {
        panic!("a new event must be inserted, got {outcome:?}");
    };
    assert_eq!(deliveries.len(), 2, "one delivery per subscriber");
    assert_ne!(deliveries[0], deliveries[1], "delivery ids are unique");

    let stored = store
        .event(&event.source, &event.id)
        .await
        .expect("read event")
        .expect("the event is stored");
    assert_eq!(stored.source, event.source);
    assert_eq!(stored.id, event.id);
    assert_eq!(stored.kind, event.kind);
    assert_eq!(stored.tenant, event.tenant);
    assert_eq!(stored.received_at_ms, event.received_at_ms);
    assert_eq!(
        stored.payload, event.payload,
        "the payload comes back byte for byte"
    );
    assert_eq!(store.event_count().await.expect("count"), 1);
    assert!(
        store
            .event(&SourceName::new("github"), &event.id)
            .await
            .expect("read event")
            .is_none(),
        "events are keyed by source and id"
    );

    for (id, plugin) in deliveries.iter().zip(["tagger", "notifier"]) {
        let d = record(&store, id).await;
        assert_eq!(d.id, *id);
        assert_eq!(
            d.plugin.as_str(),
            plugin,
            "deliveries follow the subscriber order"
        );
        assert_eq!(d.source, event.source);
        assert_eq!(d.event_id, event.id);
        assert_eq!(d.tenant, event.tenant);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts_made, 0);
        assert_eq!(d.max_attempts, 4);
        assert!(
            d.due_at_ms >= before - 1000 && d.due_at_ms <= now_ms(),
            "due at once"
        );
        assert!(d.attempts.is_empty());
    }
    assert_eq!(all_deliveries(&store).await.len(), 2);
    assert!(
        store
            .delivery(&DeliveryId::new("no-such-delivery"))
            .await
            .expect("read")
            .is_none()
    );
}

/// A repeated (source, id) answers `Duplicate` and changes nothing; another source may reuse it.
pub async fn duplicate_ingest_writes_nothing<S: Store>(store: S) {
    ingest_new(&store, "evt-1", &["tagger"], 3).await;
    let mut again = new_event("evt-1", "loc-2");
    again.payload = b"a different body".to_vec();
    let outcome = store
        .ingest(again, subscribers(&["tagger", "other"], 3))
        .await
        .expect("duplicate ingest");
    assert_eq!(outcome, IngestOutcome::Duplicate);
    assert_eq!(
        store.event_count().await.expect("count"),
        1,
        "no second event"
    );
    assert_eq!(all_deliveries(&store).await.len(), 1, "no new deliveries");
    let stored = store
        .event(&source(), &EventId::new("evt-1"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.tenant.as_str(), "loc-1", "the first copy is kept");
    assert_eq!(stored.payload, new_event("evt-1", "loc-1").payload);

    let mut other_source = new_event("evt-1", "loc-1");
    other_source.source = SourceName::new("stripe");
    let outcome = store
        .ingest(other_source, subscribers(&["tagger"], 3))
        .await
        .expect("ingest");
    assert!(
        matches!(outcome, IngestOutcome::Inserted { .. }),
        "the same id from another source is another event, got {outcome:?}"
    );
}

/// An event nobody subscribes to is still stored (and still deduplicated).
pub async fn event_without_subscribers_is_stored<S: Store>(store: S) {
    let outcome = store
        .ingest(new_event("lonely", "loc-1"), Vec::new())
        .await
        .expect("ingest");
    assert_eq!(
        outcome,
        IngestOutcome::Inserted {
            deliveries: Vec::new()
        }
    );
    assert_eq!(store.event_count().await.expect("count"), 1);
    assert!(all_deliveries(&store).await.is_empty());
    let again = store
        .ingest(new_event("lonely", "loc-1"), Vec::new())
        .await
        .expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate);
}

/// 100 concurrent ingests of 50 ids (each sent twice) insert exactly 50 events.
pub async fn concurrent_ingests_insert_each_event_once<S: Store>(store: S) {
    let store = Arc::new(store);
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let id = format!("evt-{}", i % 50);
            store
                .ingest(new_event(&id, "loc-1"), subscribers(&["tagger"], 3))
                .await
        });
    }
    let (mut inserted, mut duplicates) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.expect("task").expect("ingest") {
            IngestOutcome::Inserted { deliveries } => {
                assert_eq!(deliveries.len(), 1);
                inserted += 1;
            }
            IngestOutcome::Duplicate => duplicates += 1,
        }
    }
    assert_eq!(inserted, 50, "each distinct id is inserted once");
    assert_eq!(duplicates, 50, "each repeat is a duplicate");
    assert_eq!(store.event_count().await.expect("count"), 50);
    assert_eq!(all_deliveries(&*store).await.len(), 50);
}
