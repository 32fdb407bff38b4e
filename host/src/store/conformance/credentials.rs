//! Checks of stored credentials: compare-and-swap writes, the refresh lease (the persisted
//! in-flight marker), and which tombstones are ready to erase.

use std::time::Duration;

use super::fixtures::*;
use crate::{
    ids::{ApiName, TenantId, now_ms},
    installations::{Facts, Gate, GatedOutcome},
    sources::Lifecycle,
    store::{Completion, CredentialKind, CredentialRecord, Store},
};

/// A refresh lease no check outlives.
const HOUR: Duration = Duration::from_secs(3_600);
const HOUR_MS: i64 = 3_600_000;

fn record(tenant: &str, access: &[u8]) -> CredentialRecord {
    CredentialRecord {
        api: ApiName::new("hl"),
        tenant: TenantId::new(tenant),
        kind: CredentialKind::Oauth,
        key_id: "k1".into(),
        access: access.to_vec(),
        refresh: Some(b"sealed-refresh".to_vec()),
        previous: None,
        previous_until_ms: None,
        expires_at_ms: Some(5_000),
        issued_at_ms: 1_000,
        scopes: "contacts.readonly".into(),
        user_type: Some("Location".into()),
        company: None,
        refresh_lease_until_ms: None,
        version: 0,
    }
}

pub async fn credentials_swap_only_at_the_expected_version<S: Store>(store: S) {
    let (api, tenant) = (ApiName::new("hl"), TenantId::new("loc-1"));
    assert!(
        store
            .put_credential(record("loc-1", b"a1"), None)
            .await
            .unwrap()
    );
    let first = store.credential(&api, &tenant).await.unwrap().unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.access, b"a1");
    assert_eq!(first.user_type.as_deref(), Some("Location"));
    // A write against a version that moved on changes nothing.
    assert!(
        !store
            .put_credential(record("loc-1", b"x"), Some(7))
            .await
            .unwrap()
    );
    assert!(
        store
            .put_credential(record("loc-1", b"a2"), Some(1))
            .await
            .unwrap()
    );
    let second = store.credential(&api, &tenant).await.unwrap().unwrap();
    assert_eq!((second.version, second.access.as_slice()), (2, &b"a2"[..]));
    store
        .put_credential(record("loc-2", b"b"), None)
        .await
        .unwrap();
    let page = store.credentials(None, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    let rest = store
        .credentials(Some((page[0].api.clone(), page[0].tenant.clone())), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].tenant.as_str(), "loc-2");
    assert_eq!(store.delete_credential(&api, &tenant).await.unwrap(), 1);
    assert!(store.credential(&api, &tenant).await.unwrap().is_none());
}

pub async fn the_refresh_lease_admits_one_holder_until_it_expires<S: Store>(store: S) {
    let (api, tenant) = (ApiName::new("hl"), TenantId::new("loc-1"));
    store
        .put_credential(record("loc-1", b"a1"), None)
        .await
        .unwrap();
    let v = 1;
    // A zero lease has ended as soon as it is written: a holder that crashed at once.
    assert!(
        store
            .begin_refresh(&api, &tenant, v, Duration::ZERO)
            .await
            .unwrap()
    );
    // Expired: the next one takes it over.
    assert!(store.begin_refresh(&api, &tenant, v, HOUR).await.unwrap());
    // Held: nobody else gets it before it expires, whatever the version.
    assert!(!store.begin_refresh(&api, &tenant, v, HOUR).await.unwrap());
    assert!(
        !store
            .begin_refresh(&api, &tenant, v, Duration::ZERO)
            .await
            .unwrap()
    );
    let held = store.credential(&api, &tenant).await.unwrap().unwrap();
    let until = held.refresh_lease_until_ms.expect("the lease is recorded");
    // The store's clock is this machine's in the tests (SQLite, or a local PostgreSQL).
    let left = until - now_ms();
    assert!(
        (HOUR_MS - 60_000..=HOUR_MS).contains(&left),
        "the lease ends an hour after it was taken, not {left} ms from now"
    );
    // A failed refresh releases it; a stale version cannot take it.
    store.end_refresh(&api, &tenant, v).await.unwrap();
    assert!(
        !store
            .begin_refresh(&api, &tenant, v + 1, HOUR)
            .await
            .unwrap()
    );
    assert!(store.begin_refresh(&api, &tenant, v, HOUR).await.unwrap());
    // Writing the new pair clears the lease and moves the version on.
    assert!(
        store
            .put_credential(record("loc-1", b"a2"), Some(v))
            .await
            .unwrap()
    );
    let written = store.credential(&api, &tenant).await.unwrap().unwrap();
    assert_eq!((written.version, written.refresh_lease_until_ms), (2, None));
    assert!(!store.begin_refresh(&api, &tenant, v, HOUR).await.unwrap());
}

pub async fn a_tombstone_is_erasable_once_its_uninstall_deliveries_are_done<S: Store>(store: S) {
    let api = ApiName::new("hl");
    let gate = |lifecycle, tenant: &str, company: Option<&str>, at_ms| Gate {
        api: api.clone(),
        require: true,
        facts: Facts {
            lifecycle,
            tenant: TenantId::new(tenant),
            company: company.map(TenantId::new),
            at_ms,
        },
    };
    for (id, lifecycle, at) in [
        ("i-1", Lifecycle::Install, 100),
        ("u-1", Lifecycle::Uninstall, 200),
    ] {
        let outcome = store
            .ingest_gated(
                new_event(id, "co-1"),
                subscribers(&["cleaner"], 3),
                gate(lifecycle, "co-1", None, at),
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, GatedOutcome::Inserted { .. }),
            "{outcome:?}"
        );
    }
    store
        .link_location(&api, &TenantId::new("co-1"), &TenantId::new("loc-9"))
        .await
        .unwrap();
    assert_eq!(
        store
            .covered_locations(&api, &TenantId::new("co-1"))
            .await
            .unwrap(),
        vec![TenantId::new("loc-9")]
    );
    // The UNINSTALL's delivery (and the INSTALL's) still pending: not yet.
    assert!(store.uninstalls_to_erase(10).await.unwrap().is_empty());
    for claimed in claim(&store, 10, LONG_LEASE).await {
        store
            .complete(
                &claimed.delivery,
                &claimed.lease,
                Completion::Succeeded,
                attempt_record(claimed.attempt, "succeeded", None),
            )
            .await
            .unwrap();
    }
    let ready = store.uninstalls_to_erase(10).await.unwrap();
    assert_eq!(ready, vec![(api.clone(), TenantId::new("co-1"))]);
    assert!(
        store
            .mark_erased(&api, &TenantId::new("co-1"))
            .await
            .unwrap()
    );
    assert!(store.uninstalls_to_erase(10).await.unwrap().is_empty());
    assert!(
        !store
            .mark_erased(&api, &TenantId::new("co-1"))
            .await
            .unwrap()
    );
}
