//! Checks of `claim`, `renew` and lease fencing.

use std::{collections::HashSet, sync::Arc};

use tokio::task::JoinSet;

use super::fixtures::*;
use crate::{
    ids::{DeliveryId, LeaseToken, now_ms},
    store::{ClaimRequest, Completion, DeliveryState, Store},
};

pub async fn claim_takes_oldest_due_first_with_its_event<S: Store>(store: S) {
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "nothing to claim yet"
    );
    let first = ingest_new(&store, "evt-a", &["tagger"], 3).await;
    let second = ingest_new(&store, "evt-b", &["tagger"], 3).await;
    let third = ingest_new(&store, "evt-c", &["tagger"], 3).await;
    assert!(
        claim(&store, 0, LONG_LEASE).await.is_empty(),
        "limit 0 claims nothing"
    );

    let got = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(ids(&got), first, "the oldest first");
    let c = &got[0];
    assert_eq!(c.plugin.as_str(), "tagger");
    assert_eq!(c.attempt, 1, "attempts are 1-based");
    assert_eq!(c.max_attempts, 3);
    let expected = new_event("evt-a", "loc-1");
    assert_eq!(c.event.source, expected.source);
    assert_eq!(c.event.id, expected.id);
    assert_eq!(c.event.kind, expected.kind);
    assert_eq!(c.event.tenant, expected.tenant);
    assert_eq!(
        c.event.payload, expected.payload,
        "the claim carries the payload"
    );

    let d = record(&store, &c.delivery).await;
    assert_eq!(d.state, DeliveryState::Running);
    assert_eq!(d.attempts_made, 1);
    assert!(
        d.due_at_ms >= now_ms() + 50_000,
        "a running delivery's due time is its lease expiry"
    );

    let rest = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        ids(&rest),
        [second, third].concat(),
        "then the others, in order"
    );
    let tokens: HashSet<_> = got.iter().chain(&rest).map(|c| c.lease.clone()).collect();
    assert_eq!(tokens.len(), 3, "every claim gets its own lease token");
}

/// Several concurrent claimers split the due deliveries: each goes to exactly one of them.
pub async fn concurrent_claimers_never_share_a_delivery<S: Store>(store: S) {
    let mut expected = HashSet::new();
    for i in 0..40 {
        expected.extend(ingest_new(&store, &format!("evt-{i}"), &["tagger"], 3).await);
    }
    let store = Arc::new(store);
    let mut claimers = JoinSet::new();
    for _ in 0..4 {
        let store = Arc::clone(&store);
        claimers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(ClaimRequest::any(3, LONG_LEASE))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| (c.delivery, c.attempt)));
            }
        });
    }
    let mut seen = HashSet::new();
    while let Some(mine) = claimers.join_next().await {
        for (id, attempt) in mine.expect("claimer") {
            assert_eq!(attempt, 1);
            assert!(seen.insert(id.clone()), "delivery {id} was claimed twice");
        }
    }
    assert_eq!(seen, expected, "every due delivery was claimed");
}

/// A claimed delivery is not claimed again while its lease runs, and is once it expired; the
/// expired attempt is recorded as lost and its token no longer works.
pub async fn lease_hides_a_claimed_delivery_until_it_expires<S: Store>(store: S) {
    let held = ingest_new(&store, "evt-held", &["tagger"], 3).await;
    assert_eq!(ids(&claim(&store, 10, LONG_LEASE).await), held);
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "a delivery under lease is not claimed again"
    );

    let lapsing = ingest_new(&store, "evt-lapsing", &["tagger"], 3).await;
    let first = claim(&store, 10, SHORT_LEASE).await;
    assert_eq!(ids(&first), lapsing);
    tokio::time::sleep(WAIT_OUT).await;
    let second = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(
        ids(&second),
        lapsing,
        "the expired lease is claimed again (and only it)"
    );
    assert_eq!(second[0].attempt, 2, "the re-claim is the next attempt");
    assert_ne!(second[0].lease, first[0].lease, "with a new token");

    let id = &lapsing[0];
    assert_lease_lost(
        complete_first(&store, id, &first[0].lease).await,
        id,
        "completing with the expired token",
    );
    assert_lease_lost(
        store.renew(id, &first[0].lease, LONG_LEASE).await,
        id,
        "renewing with the expired token",
    );
    store
        .complete(
            id,
            &second[0].lease,
            Completion::Succeeded,
            attempt_record(2, "succeeded", None),
        )
        .await
        .expect("the current holder completes");
    let d = record(&store, id).await;
    assert_eq!(d.state, DeliveryState::Succeeded);
    let outcomes: Vec<_> = d
        .attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [(1, "lost"), (2, "succeeded")],
        "the lost attempt is on record"
    );
}

/// `renew` moves the lease expiry forward, so the delivery stays claimed past the first lease.
pub async fn renew_extends_the_lease<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["tagger"], 3).await;
    let got = claim(&store, 1, SHORT_LEASE).await;
    assert_eq!(ids(&got), id);
    // Renewing works even if the short lease ran out already: nobody claimed it in between.
    store
        .renew(&id[0], &got[0].lease, LONG_LEASE)
        .await
        .expect("renew with the current token");
    tokio::time::sleep(WAIT_OUT).await;
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "a renewed lease is not claimed again"
    );
    let d = record(&store, &id[0]).await;
    assert_eq!(d.state, DeliveryState::Running);
    assert!(
        d.due_at_ms >= now_ms() + 50_000,
        "the expiry moved to now + lease"
    );
    assert_eq!(d.attempts_made, 1, "renewing is not a new attempt");
}

/// `renew` and `complete` with a token that is not the current one fail with `LeaseLost` and
/// record nothing; so does completing twice.
pub async fn stale_token_is_lease_lost_and_writes_nothing<S: Store>(store: S) {
    let ids_ = ingest_new(&store, "evt-1", &["tagger", "other"], 3).await;
    let (claimed_id, pending_id) = (&ids_[0], &ids_[1]);
    let got = claim(&store, 1, LONG_LEASE).await;
    assert_eq!(&got[0].delivery, claimed_id);
    let stranger = LeaseToken::generate();

    assert_lease_lost(
        complete_first(&store, claimed_id, &stranger).await,
        claimed_id,
        "completing with a wrong token",
    );
    assert_lease_lost(
        store.renew(claimed_id, &stranger, LONG_LEASE).await,
        claimed_id,
        "renewing with a wrong token",
    );
    assert_lease_lost(
        store
            .complete(
                pending_id,
                &stranger,
                Completion::Dead,
                attempt_record(1, "fail", Some("x")),
            )
            .await,
        pending_id,
        "completing a delivery nobody claimed",
    );
    let unknown = DeliveryId::new("no-such-delivery");
    assert_lease_lost(
        complete_first(&store, &unknown, &stranger).await,
        &unknown,
        "completing an unknown delivery",
    );

    let d = record(&store, claimed_id).await;
    assert_eq!(
        d.state,
        DeliveryState::Running,
        "the stale completion changed nothing"
    );
    assert_eq!(d.attempts_made, 1);
    assert!(d.attempts.is_empty(), "no attempt was recorded");
    let p = record(&store, pending_id).await;
    assert_eq!(p.state, DeliveryState::Pending);
    assert!(p.attempts.is_empty());

    complete_first(&store, claimed_id, &got[0].lease)
        .await
        .expect("the holder completes");
    assert_lease_lost(
        complete_first(&store, claimed_id, &got[0].lease).await,
        claimed_id,
        "completing twice",
    );
    assert_eq!(
        record(&store, claimed_id).await.attempts.len(),
        1,
        "recorded once"
    );
}
