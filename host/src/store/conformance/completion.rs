//! Checks of `complete`: each outcome moves the delivery on and keeps the attempt.

use super::fixtures::*;
use crate::{
    ids::now_ms,
    store::{Completion, DeliveryState, Store},
};

pub async fn complete_succeeded_records_the_attempt<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["tagger"], 3).await;
    let got = claim(&store, 1, LONG_LEASE).await;
    let attempt = attempt_record(1, "succeeded", None);
    store
        .complete(
            &id[0],
            &got[0].lease,
            Completion::Succeeded,
            attempt.clone(),
        )
        .await
        .expect("complete");
    let d = record(&store, &id[0]).await;
    assert_eq!(d.state, DeliveryState::Succeeded);
    assert_eq!(d.attempts_made, 1);
    assert_eq!(
        d.attempts,
        vec![attempt],
        "the attempt and its logs read back intact"
    );
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "a succeeded delivery is never claimed again"
    );
}

/// `complete(Retry { at })` makes the delivery pending again, due at `at` and not before.
pub async fn retry_is_due_at_its_time_and_not_before<S: Store>(store: S) {
    let later = ingest_new(&store, "evt-later", &["tagger"], 3).await;
    let soon = ingest_new(&store, "evt-soon", &["tagger"], 3).await;
    let got = claim(&store, 10, LONG_LEASE).await;
    assert_eq!(got.len(), 2);
    let later_at = now_ms() + 60_000;
    for c in &got {
        let at_ms = if c.delivery == later[0] {
            later_at
        } else {
            now_ms() + 50
        };
        store
            .complete(
                &c.delivery,
                &c.lease,
                Completion::Retry { at_ms },
                attempt_record(1, "retry", Some("upstream said 503")),
            )
            .await
            .expect("complete with retry");
    }
    let d = record(&store, &later[0]).await;
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.due_at_ms, later_at, "due at the retry time");
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].outcome, "retry");
    assert_eq!(d.attempts[0].error.as_deref(), Some("upstream said 503"));

    let mut reclaimed = claim(&store, 10, LONG_LEASE).await;
    assert!(
        !ids(&reclaimed).contains(&later[0]),
        "a retry is not due before its time"
    );
    tokio::time::sleep(WAIT_OUT).await;
    reclaimed.extend(claim(&store, 10, LONG_LEASE).await);
    assert_eq!(
        ids(&reclaimed),
        soon,
        "a retry is due once its time has come"
    );
    assert_eq!(reclaimed[0].attempt, 2);
}

/// `complete(Dead)` ends the delivery for good and keeps the attempt.
pub async fn complete_dead_records_the_attempt<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["tagger"], 3).await;
    let got = claim(&store, 1, LONG_LEASE).await;
    let attempt = attempt_record(1, "fail", Some("contact has no email"));
    store
        .complete(&id[0], &got[0].lease, Completion::Dead, attempt.clone())
        .await
        .expect("complete");
    let d = record(&store, &id[0]).await;
    assert_eq!(d.state, DeliveryState::Dead);
    assert_eq!(d.attempts, vec![attempt]);
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "dead is final"
    );
}

/// A lease that expires on the last allowed attempt makes the delivery dead, not due again.
pub async fn expired_last_attempt_makes_the_delivery_dead<S: Store>(store: S) {
    let id = ingest_new(&store, "evt-1", &["tagger"], 1).await;
    let got = claim(&store, 1, SHORT_LEASE).await;
    assert_eq!(ids(&got), id);
    tokio::time::sleep(WAIT_OUT).await;
    assert!(
        claim(&store, 10, LONG_LEASE).await.is_empty(),
        "no attempts are left to hand out"
    );
    let d = record(&store, &id[0]).await;
    assert_eq!(d.state, DeliveryState::Dead);
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].outcome, "lost");
    assert_lease_lost(
        complete_first(&store, &id[0], &got[0].lease).await,
        &id[0],
        "completing after the lease was reaped",
    );
}
