//! The store conformance suite: the behaviour every [`Store`] backend must show, written only
//! against the trait so that SQLite and PostgreSQL run the same checks.
//!
//! Call [`run_all`] with a function that returns a fresh, empty store, or one check at a time
//! (each is a `pub async fn` taking a fresh store) so a failure names the broken behaviour. The
//! checks panic with a message on failure, like any test. They need a multi-threaded tokio
//! runtime (they spawn concurrent callers) and take about a second in all: lease and expiry
//! checks sleep for short real times, and each such check pairs a short deadline (asserted to
//! pass) with a long one (asserted not to), so a slow machine cannot make them flaky.
//!
//! Compiled into the library (not `#[cfg(test)]`) so that the end-to-end test crate can run it.

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration};

use tokio::task::JoinSet;

use super::{
    AttemptRecord, Claimed, Completion, DeliveryFilter, DeliveryState, IngestOutcome, KvScope,
    LogLine, NewDelivery, NewEvent, Store, StoreError,
};
use crate::ids::{DeliveryId, EventId, LeaseToken, PluginName, SourceName, TenantId, now_ms};

/// A lease no check outlives.
const LONG_LEASE: Duration = Duration::from_secs(60);
/// A lease the checks wait out.
const SHORT_LEASE: Duration = Duration::from_millis(50);
/// How long the checks sleep to pass a `SHORT_LEASE` or a 50 ms deadline.
const WAIT_OUT: Duration = Duration::from_millis(150);

/// Runs every check, each on a store returned by `fresh` (it must be new and empty).
pub async fn run_all<S, F, Fut>(fresh: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    ingest_stores_event_and_deliveries(fresh().await).await;
    duplicate_ingest_writes_nothing(fresh().await).await;
    event_without_subscribers_is_stored(fresh().await).await;
    concurrent_ingests_insert_each_event_once(fresh().await).await;
    claim_takes_oldest_due_first_with_its_event(fresh().await).await;
    concurrent_claimers_never_share_a_delivery(fresh().await).await;
    lease_hides_a_claimed_delivery_until_it_expires(fresh().await).await;
    renew_extends_the_lease(fresh().await).await;
    stale_token_is_lease_lost_and_writes_nothing(fresh().await).await;
    complete_succeeded_records_the_attempt(fresh().await).await;
    retry_is_due_at_its_time_and_not_before(fresh().await).await;
    complete_dead_records_the_attempt(fresh().await).await;
    expired_last_attempt_makes_the_delivery_dead(fresh().await).await;
    deliveries_lists_newest_first_and_filters(fresh().await).await;
    kv_get_set_delete(fresh().await).await;
    kv_compare_and_swap(fresh().await).await;
    kv_values_expire(fresh().await).await;
    kv_usage_counts_key_and_value_bytes(fresh().await).await;
    kv_scopes_are_isolated(fresh().await).await;
    ping_answers(fresh().await).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn source() -> SourceName {
    SourceName::new("highlevel")
}

fn new_event(id: &str, tenant: &str) -> NewEvent {
    NewEvent {
        source: source(),
        id: EventId::new(id),
        kind: "ContactCreate".into(),
        tenant: TenantId::new(tenant),
        received_at_ms: now_ms(),
        // Not valid UTF-8 on purpose: the payload is raw bytes and must come back unchanged.
        payload: format!("{{\"webhookId\":\"{id}\"}}\n\0\u{fe}").into_bytes(),
    }
}

fn subscribers(plugins: &[&str], max_attempts: u32) -> Vec<NewDelivery> {
    plugins
        .iter()
        .map(|plugin| NewDelivery {
            plugin: PluginName::new(*plugin),
            max_attempts,
        })
        .collect()
}

fn attempt_record(attempt: u32, outcome: &str, error: Option<&str>) -> AttemptRecord {
    let now = now_ms();
    AttemptRecord {
        attempt,
        started_at_ms: now - 5,
        finished_at_ms: now,
        outcome: outcome.into(),
        error: error.map(str::to_owned),
        logs: vec![
            LogLine {
                at_ms: now - 4,
                level: "info".into(),
                message: "tagging contact".into(),
                fields: vec![
                    ("contact".into(), "c-1".into()),
                    ("tag".into(), "vip".into()),
                ],
            },
            LogLine {
                at_ms: now - 1,
                level: "stdout".into(),
                message: "done ✓".into(),
                fields: Vec::new(),
            },
        ],
    }
}

fn scope(plugin: &str, tenant: &str) -> KvScope {
    KvScope {
        plugin: PluginName::new(plugin),
        tenant: TenantId::new(tenant),
    }
}

/// Ingests an event that must be new; returns its delivery ids.
async fn ingest_new<S: Store>(store: &S, id: &str, plugins: &[&str], max: u32) -> Vec<DeliveryId> {
    match store
        .ingest(new_event(id, "loc-1"), subscribers(plugins, max))
        .await
    {
        Ok(IngestOutcome::Inserted { deliveries }) => deliveries,
        other => panic!("ingest of new event {id} returned {other:?}"),
    }
}

async fn claim<S: Store>(store: &S, limit: usize, lease: Duration) -> Vec<Claimed> {
    store
        .claim(limit, lease)
        .await
        .unwrap_or_else(|err| panic!("claim({limit}) failed: {err}"))
}

fn ids(claimed: &[Claimed]) -> Vec<DeliveryId> {
    claimed.iter().map(|c| c.delivery.clone()).collect()
}

async fn all_deliveries<S: Store>(store: &S) -> Vec<super::DeliveryRecord> {
    store
        .deliveries(DeliveryFilter {
            limit: 10_000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("listing deliveries")
}

async fn record<S: Store>(store: &S, id: &DeliveryId) -> super::DeliveryRecord {
    store
        .delivery(id)
        .await
        .expect("reading a delivery")
        .unwrap_or_else(|| panic!("delivery {id} is missing"))
}

fn assert_lease_lost(result: Result<(), StoreError>, id: &DeliveryId, what: &str) {
    match result {
        Err(StoreError::LeaseLost(lost)) => assert_eq!(&lost, id, "{what}: LeaseLost names it"),
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest

/// `ingest` stores the event and one pending delivery per subscriber, which read back intact.
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

// ---------------------------------------------------------------------------------------------
// Claim and leases

/// `claim` hands out the oldest due delivery first, with its event, and counts the attempt.
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
                let got = store.claim(3, LONG_LEASE).await.expect("claim");
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
        store
            .complete(
                id,
                &first[0].lease,
                Completion::Succeeded,
                attempt_record(1, "succeeded", None),
            )
            .await,
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
        store
            .complete(
                claimed_id,
                &stranger,
                Completion::Succeeded,
                attempt_record(1, "succeeded", None),
            )
            .await,
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
        store
            .complete(
                &unknown,
                &stranger,
                Completion::Succeeded,
                attempt_record(1, "succeeded", None),
            )
            .await,
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

    store
        .complete(
            claimed_id,
            &got[0].lease,
            Completion::Succeeded,
            attempt_record(1, "succeeded", None),
        )
        .await
        .expect("the holder completes");
    assert_lease_lost(
        store
            .complete(
                claimed_id,
                &got[0].lease,
                Completion::Succeeded,
                attempt_record(1, "succeeded", None),
            )
            .await,
        claimed_id,
        "completing twice",
    );
    assert_eq!(
        record(&store, claimed_id).await.attempts.len(),
        1,
        "recorded once"
    );
}

// ---------------------------------------------------------------------------------------------
// Completion

/// `complete(Succeeded)` ends the delivery and keeps the attempt with its logs.
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
        store
            .complete(
                &id[0],
                &got[0].lease,
                Completion::Succeeded,
                attempt_record(1, "succeeded", None),
            )
            .await,
        &id[0],
        "completing after the lease was reaped",
    );
}

// ---------------------------------------------------------------------------------------------
// Listing

/// `deliveries` lists newest first, without attempts, and each filter narrows the list.
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

// ---------------------------------------------------------------------------------------------
// Key-value data

/// get / set / overwrite / delete of one key.
pub async fn kv_get_set_delete<S: Store>(store: S) {
    let s = scope("tagger", "loc-1");
    assert_eq!(store.kv_get(&s, "k").await.expect("get"), None);
    store
        .kv_set(&s, "k", b"one".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(
        store.kv_get(&s, "k").await.expect("get"),
        Some(b"one".to_vec())
    );
    store
        .kv_set(&s, "k", b"two".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(
        store.kv_get(&s, "k").await.expect("get"),
        Some(b"two".to_vec())
    );
    store
        .kv_set(&s, "empty", Vec::new(), None)
        .await
        .expect("set");
    assert_eq!(
        store.kv_get(&s, "empty").await.expect("get"),
        Some(Vec::new()),
        "an empty value is present, not absent"
    );
    store.kv_delete(&s, "k").await.expect("delete");
    assert_eq!(store.kv_get(&s, "k").await.expect("get"), None);
    store
        .kv_delete(&s, "k")
        .await
        .expect("deleting an absent key is fine");
}

/// compare-and-swap replaces only when the current value is the expected one.
pub async fn kv_compare_and_swap<S: Store>(store: S) {
    let s = scope("tagger", "loc-1");
    let cas = |expected: Option<&[u8]>, desired: Option<&[u8]>| {
        let (store, s) = (&store, &s);
        let (expected, desired) = (expected.map(<[u8]>::to_vec), desired.map(<[u8]>::to_vec));
        async move {
            store
                .kv_compare_and_swap(s, "k", expected, desired, None)
                .await
                .expect("cas")
        }
    };
    assert!(cas(None, Some(b"v1")).await, "absent == None: creates");
    assert_eq!(
        store.kv_get(&s, "k").await.expect("get"),
        Some(b"v1".to_vec())
    );
    assert!(!cas(None, Some(b"v2")).await, "present != None");
    assert!(
        !cas(Some(b"other"), Some(b"v2")).await,
        "a wrong expected value"
    );
    assert_eq!(
        store.kv_get(&s, "k").await.expect("get"),
        Some(b"v1".to_vec()),
        "unchanged"
    );
    assert!(
        cas(Some(b"v1"), Some(b"v2")).await,
        "the expected value swaps"
    );
    assert_eq!(
        store.kv_get(&s, "k").await.expect("get"),
        Some(b"v2".to_vec())
    );
    assert!(cas(Some(b"v2"), None).await, "desired None deletes");
    assert_eq!(store.kv_get(&s, "k").await.expect("get"), None);
    assert!(!cas(Some(b"v2"), Some(b"v3")).await, "absent != Some");

    let counter = Arc::new(store);
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let store = Arc::clone(&counter);
        tasks.spawn(async move {
            let s = scope("tagger", "loc-1");
            loop {
                let current = store.kv_get(&s, "n").await.expect("get");
                let n = current
                    .as_deref()
                    .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
                let next = (n + 1).to_le_bytes().to_vec();
                if store
                    .kv_compare_and_swap(&s, "n", current, Some(next), None)
                    .await
                    .expect("cas")
                {
                    return;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("incrementer");
    }
    assert_eq!(
        counter.kv_get(&s, "n").await.expect("get"),
        Some(8u32.to_le_bytes().to_vec()),
        "concurrent CAS increments never lose an update"
    );
}

/// Values past their expiry behave as absent: for get, for CAS and for usage.
pub async fn kv_values_expire<S: Store>(store: S) {
    let s = scope("tagger", "loc-1");
    store
        .kv_set(&s, "lasting", b"v".to_vec(), Some(now_ms() + 60_000))
        .await
        .expect("set");
    store
        .kv_set(&s, "expired", b"v".to_vec(), Some(now_ms() - 1))
        .await
        .expect("set");
    store
        .kv_set(&s, "brief", b"v".to_vec(), Some(now_ms() + 50))
        .await
        .expect("set");
    assert_eq!(
        store.kv_get(&s, "lasting").await.expect("get"),
        Some(b"v".to_vec())
    );
    assert_eq!(
        store.kv_get(&s, "expired").await.expect("get"),
        None,
        "already expired"
    );
    tokio::time::sleep(WAIT_OUT).await;
    assert_eq!(
        store.kv_get(&s, "brief").await.expect("get"),
        None,
        "expired by now"
    );
    assert_eq!(
        store.kv_get(&s, "lasting").await.expect("get"),
        Some(b"v".to_vec())
    );
    assert_eq!(
        store.kv_usage(&s).await.expect("usage"),
        ("lasting".len() + 1) as u64,
        "expired values do not count"
    );
    assert!(
        store
            .kv_compare_and_swap(&s, "brief", None, Some(b"new".to_vec()), None)
            .await
            .expect("cas"),
        "an expired value compares as absent"
    );
    assert!(
        !store
            .kv_compare_and_swap(&s, "expired", Some(b"v".to_vec()), None, None)
            .await
            .expect("cas"),
        "an expired value does not match its old bytes"
    );
    assert_eq!(
        store.kv_get(&s, "brief").await.expect("get"),
        Some(b"new".to_vec())
    );
    store
        .kv_set(&s, "lasting", b"v".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(
        store.kv_get(&s, "lasting").await.expect("get"),
        Some(b"v".to_vec()),
        "setting without expiry clears the old one"
    );
}

/// Usage is the sum of key bytes (UTF-8) and value bytes in the scope.
pub async fn kv_usage_counts_key_and_value_bytes<S: Store>(store: S) {
    let s = scope("tagger", "loc-1");
    assert_eq!(store.kv_usage(&s).await.expect("usage"), 0);
    store
        .kv_set(&s, "ab", b"xyz".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(store.kv_usage(&s).await.expect("usage"), 5);
    store
        .kv_set(&s, "é", b"1".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(
        store.kv_usage(&s).await.expect("usage"),
        8,
        "keys count in bytes"
    );
    store
        .kv_set(&s, "ab", b"x".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(
        store.kv_usage(&s).await.expect("usage"),
        6,
        "an overwrite replaces"
    );
    store.kv_delete(&s, "é").await.expect("delete");
    assert_eq!(store.kv_usage(&s).await.expect("usage"), 3);
}

/// Each (plugin, tenant) pair is its own namespace.
pub async fn kv_scopes_are_isolated<S: Store>(store: S) {
    let mine = scope("tagger", "loc-1");
    let other_plugin = scope("notifier", "loc-1");
    let other_tenant = scope("tagger", "loc-2");
    store
        .kv_set(&mine, "k", b"mine".to_vec(), None)
        .await
        .expect("set");
    assert_eq!(store.kv_get(&other_plugin, "k").await.expect("get"), None);
    assert_eq!(store.kv_get(&other_tenant, "k").await.expect("get"), None);
    assert_eq!(store.kv_usage(&other_plugin).await.expect("usage"), 0);
    assert!(
        store
            .kv_compare_and_swap(&other_tenant, "k", None, Some(b"theirs".to_vec()), None)
            .await
            .expect("cas"),
        "another tenant's key is absent for this scope"
    );
    store
        .kv_set(&other_plugin, "k", b"plugin".to_vec(), None)
        .await
        .expect("set");
    store.kv_delete(&other_plugin, "k").await.expect("delete");
    assert_eq!(
        store.kv_get(&mine, "k").await.expect("get"),
        Some(b"mine".to_vec())
    );
    assert_eq!(
        store.kv_get(&other_tenant, "k").await.expect("get"),
        Some(b"theirs".to_vec())
    );
    assert_eq!(store.kv_usage(&mine).await.expect("usage"), 5);
    assert_eq!(store.kv_usage(&other_tenant).await.expect("usage"), 7);
}

/// `ping` answers on a healthy store.
pub async fn ping_answers<S: Store>(store: S) {
    store.ping().await.expect("ping");
}
