//! Checks of `deliveries`: order, limit and filters.

use super::fixtures::*;
use crate::{
    ids::{EventId, PluginName, TenantId, now_ms},
    store::{Completion, DeliveryFilter, DeliveryState, IngestOutcome, Store},
};

pub async fn deliveries_lists_newest_first_and_filters<S: Store>(store: S) {
    let e1 = ingest_new(&store, "evt-1", &["alpha", "beta"], 3).await;
    let e2 = match store
        .ingest(new_event("evt-2", "loc-2"), subscribers(&["alpha"], 3))
        .await
    {
        Ok(IngestOutcome::Inserted { deliveries }) => deliveries,
        other => panic!("ingest: {other:?}"),
    };
    let e3 = ingest_new(&store, "evt-3", &["alpha"], 3).await;

    let list = |filter: DeliveryFilter| {
        let store = &store;
        async move {
            store
                .deliveries(filter)
                .await
                .expect("list")
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    let newest_first = vec![e3[0].clone(), e2[0].clone(), e1[1].clone(), e1[0].clone()];
    assert_eq!(
        list(DeliveryFilter::default()).await,
        newest_first,
        "newest first"
    );
    assert_eq!(
        list(DeliveryFilter {
            limit: 2,
            ..Default::default()
        })
        .await,
        newest_first[..2],
        "limit keeps the newest"
    );
    assert_eq!(
        list(DeliveryFilter {
            plugin: Some(PluginName::new("beta")),
            ..Default::default()
        })
        .await,
        vec![e1[1].clone()]
    );
    assert_eq!(
        list(DeliveryFilter {
            tenant: Some(TenantId::new("loc-2")),
            ..Default::default()
        })
        .await,
        e2
    );
    assert_eq!(
        list(DeliveryFilter {
            event_id: Some(EventId::new("evt-1")),
            ..Default::default()
        })
        .await,
        vec![e1[1].clone(), e1[0].clone()]
    );

    let got = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(ids(&got), vec![e1[0].clone()]);
    store
        .complete(
            &got[0].delivery,
            &got[0].lease,
            Completion::Retry {
                at_ms: now_ms() + 60_000,
            },
            attempt_record(1, "retry", None),
        )
        .await
        .expect("complete");
    let claimed = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(ids(&claimed), vec![e1[1].clone()]);
    assert_eq!(
        list(DeliveryFilter {
            state: Some(DeliveryState::Running),
            ..Default::default()
        })
        .await,
        vec![e1[1].clone()]
    );
    assert_eq!(
        list(DeliveryFilter {
            state: Some(DeliveryState::Pending),
            plugin: Some(PluginName::new("alpha")),
            tenant: Some(TenantId::new("loc-1")),
            ..Default::default()
        })
        .await,
        vec![e3[0].clone(), e1[0].clone()],
        "filters combine"
    );
    let listed = store
        .deliveries(DeliveryFilter {
            event_id: Some(EventId::new("evt-1")),
            state: Some(DeliveryState::Pending),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].attempts.is_empty(), "listings leave attempts out");
    assert_eq!(
        record(&store, &e1[0]).await.attempts.len(),
        1,
        "but they exist"
    );
}
