//! Tests of the PostgreSQL store: the conformance suite on a fresh schema per check, plus what
//! only PostgreSQL has (migrations racing at start-up, claims from several stores at once).

use std::sync::Arc;

use tokio::sync::Mutex;

use super::{testing::TestSchema, *};
use crate::store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let schemas = Arc::new(Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let schemas = Arc::clone(&schemas);
        async move {
            let schema = TestSchema::create().await;
            let store = schema.open().await;
            schemas.lock().await.push(schema);
            store
        }
    })
    .await;
    for schema in schemas.lock().await.drain(..) {
        schema.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_migrate_once() {
    let schema = TestSchema::create().await;
    let url = schema.url();
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let store = PostgresStore::connect(&url, 2, StoreOptions::default()).unwrap();
            let applied = store.migrate().await.unwrap();
            (store, applied)
        })
    });
    let mut applied = Vec::new();
    let mut stores = Vec::new();
    for open in opens {
        let (store, versions) = open.await.unwrap();
        applied.extend(versions);
        stores.push(store);
    }
    assert_eq!(
        applied,
        (1..=schema::latest_version()).collect::<Vec<_>>(),
        "each migration is applied by exactly one of the racing stores"
    );
    assert!(
        stores[0].migrate().await.unwrap().is_empty(),
        "a second migrate is a no-op"
    );
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let schema = TestSchema::create().await;
    let store = schema.open().await;
    store
        .client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (999, 'future', 0)",
            &[],
        )
        .await
        .unwrap();
    match store.migrate().await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (999, schema::latest_version()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_schema_never_share_a_delivery() {
    use crate::ids::{EventId, PluginName, SourceName, TenantId, now_ms};
    let schema = TestSchema::create().await;
    let (a, b) = (schema.open().await, schema.open().await);
    for i in 0..60 {
        let event = NewEvent {
            source: SourceName::new("highlevel"),
            id: EventId::new(format!("e{i}")),
            kind: "ContactCreate".into(),
            tenant: TenantId::new("loc-1"),
            received_at_ms: now_ms(),
            payload: b"{}".to_vec(),
        };
        let store = if i % 2 == 0 { &a } else { &b };
        store
            .ingest(event, vec![NewDelivery::new(PluginName::new("p"), 3)])
            .await
            .unwrap();
    }
    let claimers = [a.clone(), b.clone(), a.clone(), b.clone()].map(|store| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(ClaimRequest::any(3, Duration::from_secs(60)))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.delivery));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let total = all.len();
    all.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (60, 60),
        "every delivery claimed exactly once"
    );
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_lease_is_held_on_the_database_clock_across_stores() {
    use crate::{
        ids::{ApiName, TenantId},
        store::{CredentialKind, CredentialRecord},
    };
    let schema = TestSchema::create().await;
    // Two pools on one schema: two replicas as far as the database can tell.
    let (a, b) = (schema.open().await, schema.open().await);
    let (api, tenant) = (ApiName::new("hl"), TenantId::new("loc-1"));
    let record = CredentialRecord {
        api: api.clone(),
        tenant: tenant.clone(),
        kind: CredentialKind::Oauth,
        key_id: "k1".into(),
        access: b"sealed-access".to_vec(),
        refresh: Some(b"sealed-refresh".to_vec()),
        previous: None,
        previous_until_ms: None,
        expires_at_ms: Some(0),
        issued_at_ms: 0,
        scopes: String::new(),
        user_type: None,
        company: None,
        refresh_lease_until_ms: None,
        version: 0,
    };
    assert!(a.put_credential(record, None).await.unwrap());
    let lease = Duration::from_secs(60);
    assert!(a.begin_refresh(&api, &tenant, 1, lease).await.unwrap());
    assert!(
        !b.begin_refresh(&api, &tenant, 1, lease).await.unwrap(),
        "the other store sees the lease held"
    );
    let until = b
        .credential(&api, &tenant)
        .await
        .unwrap()
        .unwrap()
        .refresh_lease_until_ms
        .expect("the lease is visible to the other store");
    let db_now: i64 = b
        .client()
        .await
        .unwrap()
        .query_one("SELECT wasmhook_now_ms()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        (0..=60_000).contains(&(until - db_now)) && until - db_now > 50_000,
        "the lease ends 60 s after the database's now, not {} ms after it",
        until - db_now
    );
    // Released by its holder, the other store takes it.
    a.end_refresh(&api, &tenant, 1).await.unwrap();
    assert!(b.begin_refresh(&api, &tenant, 1, lease).await.unwrap());
    schema.drop().await;
}
