//! Checks of the plugins' key-value data: values, CAS, expiry, usage, isolation.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::fixtures::*;
use crate::{ids::now_ms, store::Store};

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
