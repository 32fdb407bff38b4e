//! Checks of installations: the gated ingest (decide + store in one step), state changes that
//! never go back in time, and company -> location links.

use super::fixtures::*;
use crate::{
    ids::{ApiName, EventId, TenantId},
    installations::{Facts, Gate, GatedOutcome, InstallationState, Refusal},
    sources::Lifecycle,
    store::Store,
};

fn api() -> ApiName {
    ApiName::new("highlevel")
}

fn gate(lifecycle: Lifecycle, tenant: &str, company: Option<&str>, at_ms: i64) -> Gate {
    Gate {
        api: api(),
        require: true,
        facts: Facts {
            lifecycle,
            tenant: TenantId::new(tenant),
            company: company.map(TenantId::new),
            at_ms,
        },
    }
}

async fn gated<S: Store>(store: &S, id: &str, gate: Gate) -> GatedOutcome {
    let tenant = gate.facts.tenant.as_str().to_string();
    store
        .ingest_gated(new_event(id, &tenant), subscribers(&["tagger"], 3), gate)
        .await
        .expect("gated ingest")
}

async fn state<S: Store>(store: &S, tenant: &str) -> Option<InstallationState> {
    store
        .installation(&api(), &TenantId::new(tenant))
        .await
        .expect("read installation")
        .map(|i| i.state)
}

pub async fn an_unknown_tenant_is_refused_and_nothing_is_written<S: Store>(store: S) {
    let outcome = gated(&store, "evt-1", gate(Lifecycle::Other, "loc-1", None, 100)).await;
    assert_eq!(outcome, GatedOutcome::Refused(Refusal::NotInstalled));
    assert_eq!(
        store.event_count().await.expect("count"),
        0,
        "nothing stored"
    );
    assert_eq!(
        state(&store, "loc-1").await,
        None,
        "no installation invented"
    );
    let deliveries = store
        .deliveries(Default::default())
        .await
        .expect("list deliveries");
    assert!(deliveries.is_empty());
}

pub async fn install_accepts_and_uninstall_refuses_again<S: Store>(store: S) {
    let install = gated(
        &store,
        "install-1",
        gate(Lifecycle::Install, "loc-1", None, 100),
    )
    .await;
    assert!(
        matches!(install, GatedOutcome::Inserted { ref deliveries } if deliveries.len() == 1),
        "{install:?}"
    );
    assert_eq!(
        state(&store, "loc-1").await,
        Some(InstallationState::Pending)
    );
    let record = store
        .installation(&api(), &TenantId::new("loc-1"))
        .await
        .expect("read")
        .expect("created");
    assert_eq!(record.state_at_ms, 100);
    assert!(record.created_at_ms > 0 && record.updated_at_ms >= record.created_at_ms);

    let event = gated(&store, "evt-1", gate(Lifecycle::Other, "loc-1", None, 150)).await;
    assert!(matches!(event, GatedOutcome::Inserted { .. }), "{event:?}");

    let uninstall = gated(
        &store,
        "uninstall-1",
        gate(Lifecycle::Uninstall, "loc-1", None, 200),
    )
    .await;
    assert!(
        matches!(uninstall, GatedOutcome::Inserted { .. }),
        "{uninstall:?}"
    );
    assert_eq!(
        state(&store, "loc-1").await,
        Some(InstallationState::Uninstalled)
    );

    let after = gated(&store, "evt-2", gate(Lifecycle::Other, "loc-1", None, 250)).await;
    assert_eq!(after, GatedOutcome::Refused(Refusal::Uninstalled));
    assert!(
        store
            .event(&source(), &EventId::new("evt-2"))
            .await
            .expect("read")
            .is_none(),
        "a refused event is not stored"
    );
    assert_eq!(store.event_count().await.expect("count"), 3);

    // A redelivery of an event accepted before the UNINSTALL is still a duplicate, not a 403.
    let again = gated(&store, "evt-1", gate(Lifecycle::Other, "loc-1", None, 150)).await;
    assert_eq!(again, GatedOutcome::Duplicate);

    // An INSTALL retried from before the UNINSTALL does not revive it.
    let stale = gated(
        &store,
        "install-0",
        gate(Lifecycle::Install, "loc-1", None, 50),
    )
    .await;
    assert_eq!(stale, GatedOutcome::Refused(Refusal::Superseded));
    assert_eq!(
        state(&store, "loc-1").await,
        Some(InstallationState::Uninstalled)
    );

    // A new INSTALL does.
    let reinstall = gated(
        &store,
        "install-2",
        gate(Lifecycle::Install, "loc-1", None, 300),
    )
    .await;
    assert!(matches!(reinstall, GatedOutcome::Inserted { .. }));
    assert_eq!(
        state(&store, "loc-1").await,
        Some(InstallationState::Pending)
    );
}

pub async fn state_changes_never_go_back_in_time<S: Store>(store: S) {
    let (api, tenant) = (api(), TenantId::new("loc-9"));
    assert!(
        store
            .set_installation_state(&api, &tenant, InstallationState::Pending, 100)
            .await
            .expect("set")
    );
    assert!(
        store
            .set_installation_state(&api, &tenant, InstallationState::Active, 200)
            .await
            .expect("set")
    );
    assert!(
        !store
            .set_installation_state(&api, &tenant, InstallationState::Uninstalled, 150)
            .await
            .expect("set"),
        "an older change is not applied"
    );
    assert_eq!(
        state(&store, "loc-9").await,
        Some(InstallationState::Active)
    );
    assert!(
        store
            .set_installation_state(&api, &tenant, InstallationState::NeedsReauth, 200)
            .await
            .expect("set")
    );
    assert_eq!(
        state(&store, "loc-9").await,
        Some(InstallationState::NeedsReauth)
    );
    // Installations are per API.
    assert!(
        store
            .installation(&ApiName::new("other"), &tenant)
            .await
            .expect("read")
            .is_none()
    );
    let listed = store.installations(&api).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tenant, tenant);
}

pub async fn a_company_installation_covers_linked_locations<S: Store>(store: S) {
    let agency = gated(
        &store,
        "install-co",
        gate(Lifecycle::Install, "co-1", None, 100),
    )
    .await;
    assert!(matches!(agency, GatedOutcome::Inserted { .. }));
    // The location is unknown, and not yet linked.
    let refused = gated(&store, "evt-0", gate(Lifecycle::Other, "loc-1", None, 110)).await;
    assert_eq!(refused, GatedOutcome::Refused(Refusal::NotInstalled));
    // An event naming both ids is accepted through the company, and records the link.
    let both = gated(
        &store,
        "evt-1",
        gate(Lifecycle::Other, "loc-1", Some("co-1"), 120),
    )
    .await;
    assert!(matches!(both, GatedOutcome::Inserted { .. }), "{both:?}");
    assert_eq!(
        store
            .company_of(&api(), &TenantId::new("loc-1"))
            .await
            .expect("read"),
        Some(TenantId::new("co-1"))
    );
    // From then on, events naming only the location are covered.
    let linked = gated(&store, "evt-2", gate(Lifecycle::Other, "loc-1", None, 130)).await;
    assert!(
        matches!(linked, GatedOutcome::Inserted { .. }),
        "{linked:?}"
    );
    // Links can be recorded directly too (the installed-locations endpoint).
    store
        .link_location(&api(), &TenantId::new("co-1"), &TenantId::new("loc-2"))
        .await
        .expect("link");
    store
        .link_location(&api(), &TenantId::new("co-1"), &TenantId::new("loc-2"))
        .await
        .expect("linking twice is fine");
    let direct = gated(&store, "evt-3", gate(Lifecycle::Other, "loc-2", None, 140)).await;
    assert!(matches!(direct, GatedOutcome::Inserted { .. }));
    // The company's UNINSTALL ends the coverage.
    let gone = gated(
        &store,
        "uninstall-co",
        gate(Lifecycle::Uninstall, "co-1", None, 200),
    )
    .await;
    assert!(matches!(gone, GatedOutcome::Inserted { .. }));
    let after = gated(&store, "evt-4", gate(Lifecycle::Other, "loc-2", None, 210)).await;
    assert_eq!(after, GatedOutcome::Refused(Refusal::NotInstalled));
}

pub async fn concurrent_installs_store_the_event_once<S: Store>(store: S) {
    let store = std::sync::Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            gated(
                &*store,
                "install-1",
                gate(Lifecycle::Install, "loc-7", None, 100),
            )
            .await
        });
    }
    let mut inserted = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task") {
            GatedOutcome::Inserted { .. } => inserted += 1,
            GatedOutcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(inserted, 1, "exactly one insert");
    assert_eq!(
        state(&*store, "loc-7").await,
        Some(InstallationState::Pending)
    );
}
