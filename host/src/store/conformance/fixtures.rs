//! Shared fixtures of the conformance checks: sample events, subscribers and attempt records,
//! and helpers that fail the check with a message when the store misbehaves.

use std::time::Duration;

use crate::{
    ids::{DeliveryId, EventId, PluginName, SourceName, TenantId, now_ms},
    store::{
        AttemptRecord, ClaimRequest, Claimed, DeliveryFilter, DeliveryRecord, IngestOutcome,
        KvScope, LogLine, NewDelivery, NewEvent, Store, StoreError,
    },
};

/// A lease no check outlives.
pub(super) const LONG_LEASE: Duration = Duration::from_secs(60);
/// A lease the checks wait out.
pub(super) const SHORT_LEASE: Duration = Duration::from_millis(50);
/// How long the checks sleep to pass a `SHORT_LEASE` or a 50 ms deadline.
pub(super) const WAIT_OUT: Duration = Duration::from_millis(150);

pub(super) fn source() -> SourceName {
    SourceName::new("highlevel")
}

pub(super) fn new_event(id: &str, tenant: &str) -> NewEvent {
    let mut payload = format!("{{\"webhookId\":\"{id}\"}}\n").into_bytes();
    // Not valid UTF-8 on purpose: the payload is raw bytes and must come back unchanged.
    payload.extend_from_slice(&[0x00, 0xfe, 0xff]);
    NewEvent {
        source: source(),
        id: EventId::new(id),
        kind: "ContactCreate".into(),
        tenant: TenantId::new(tenant),
        received_at_ms: now_ms(),
        payload,
    }
}

pub(super) fn subscribers(plugins: &[&str], max_attempts: u32) -> Vec<NewDelivery> {
    plugins
        .iter()
        .map(|plugin| NewDelivery {
            plugin: PluginName::new(*plugin),
            max_attempts,
            ordering_key: None,
        })
        .collect()
}

pub(super) fn attempt_record(attempt: u32, outcome: &str, error: Option<&str>) -> AttemptRecord {
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

pub(super) fn scope(plugin: &str, tenant: &str) -> KvScope {
    KvScope {
        plugin: PluginName::new(plugin),
        tenant: TenantId::new(tenant),
    }
}

/// Ingests an event that must be new; returns its delivery ids.
pub(super) async fn ingest_new<S: Store>(
    store: &S,
    id: &str,
    plugins: &[&str],
    max: u32,
) -> Vec<DeliveryId> {
    match store
        .ingest(new_event(id, "loc-1"), subscribers(plugins, max))
        .await
    {
        Ok(IngestOutcome::Inserted { deliveries }) => deliveries,
        other => panic!("ingest of new event {id} returned {other:?}"),
    }
}

pub(super) async fn claim<S: Store>(store: &S, limit: usize, lease: Duration) -> Vec<Claimed> {
    store
        .claim(ClaimRequest::any(limit, lease))
        .await
        .unwrap_or_else(|err| panic!("claim({limit}) failed: {err}"))
}

pub(super) fn ids(claimed: &[Claimed]) -> Vec<DeliveryId> {
    claimed.iter().map(|c| c.delivery.clone()).collect()
}

pub(super) async fn all_deliveries<S: Store>(store: &S) -> Vec<DeliveryRecord> {
    store
        .deliveries(DeliveryFilter {
            limit: 10_000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("listing deliveries")
}

pub(super) async fn record<S: Store>(store: &S, id: &DeliveryId) -> DeliveryRecord {
    store
        .delivery(id)
        .await
        .expect("reading a delivery")
        .unwrap_or_else(|| panic!("delivery {id} is missing"))
}

pub(super) fn assert_lease_lost(result: Result<(), StoreError>, id: &DeliveryId, what: &str) {
    match result {
        Err(StoreError::LeaseLost(lost)) => assert_eq!(&lost, id, "{what}: LeaseLost names it"),
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    }
}

/// Ingests event `id` of `tenant` with a JSON `payload` to `deliveries`; returns their ids.
pub(super) async fn ingest_json<S: Store>(
    store: &S,
    id: &str,
    tenant: &str,
    payload: serde_json::Value,
    deliveries: Vec<NewDelivery>,
) -> Vec<DeliveryId> {
    let mut event = new_event(id, tenant);
    event.payload = payload.to_string().into_bytes();
    match store.ingest(event, deliveries).await {
        Ok(IngestOutcome::Inserted { deliveries }) => deliveries,
        other => panic!("ingest of new event {id} returned {other:?}"),
    }
}

/// A delivery to `plugin` ordered by the payload's `/contactId`.
pub(super) fn ordered(plugin: &str, max_attempts: u32) -> NewDelivery {
    NewDelivery {
        plugin: PluginName::new(plugin),
        max_attempts,
        ordering_key: Some("/contactId".into()),
    }
}

/// A claim of only these plugins' deliveries: (plugin, free slots), under `LONG_LEASE`.
pub(super) async fn claim_slots<S: Store>(
    store: &S,
    limit: usize,
    slots: &[(&str, usize)],
) -> Vec<Claimed> {
    let slots = slots
        .iter()
        .map(|(plugin, free)| crate::store::PluginSlots {
            plugin: PluginName::new(*plugin),
            free: *free,
            lease: LONG_LEASE,
        })
        .collect();
    store
        .claim(ClaimRequest::per_plugin(limit, slots))
        .await
        .expect("claim with slots")
}

/// Completes `id`'s first attempt as succeeded under `lease`; the store's answer, so a test
/// can expect either acceptance or `LeaseLost`.
pub(super) async fn complete_first<S: Store>(
    store: &S,
    id: &DeliveryId,
    lease: &crate::store::LeaseToken,
) -> Result<(), crate::store::StoreError> {
    store
        .complete(
            id,
            lease,
            crate::store::Completion::Succeeded,
            attempt_record(1, "succeeded", None),
        )
        .await
}

/// Completes `claimed` with `completion` and a matching attempt record.
pub(super) async fn finish<S: Store>(
    store: &S,
    claimed: &Claimed,
    completion: crate::store::Completion,
) {
    let outcome = match completion {
        crate::store::Completion::Succeeded => "succeeded",
        crate::store::Completion::Retry { .. } => "retry",
        crate::store::Completion::Dead => "fail",
    };
    store
        .complete(
            &claimed.delivery,
            &claimed.lease,
            completion,
            attempt_record(claimed.attempt, outcome, None),
        )
        .await
        .expect("complete");
}
