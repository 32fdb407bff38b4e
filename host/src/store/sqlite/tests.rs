//! Tests of the SQLite store: the conformance suite, plus what only SQLite has (the file, the
//! process lock, the pragmas, the writer's batches).

use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;

use super::*;
use crate::{
    ids::{PluginName, TenantId},
    store::{DeliveryState, conformance},
};

fn event(id: &str) -> NewEvent {
    NewEvent {
        source: SourceName::new("highlevel"),
        id: EventId::new(id),
        kind: "ContactCreate".into(),
        tenant: TenantId::new("loc-1"),
        received_at_ms: now_ms(),
        payload: format!("{{\"webhookId\":\"{id}\"}}").into_bytes(),
    }
}

fn tagger() -> Vec<NewDelivery> {
    vec![NewDelivery {
        plugin: PluginName::new("tagger"),
        max_attempts: 3,
        ordering_key: None,
    }]
}

fn attempt(n: u32) -> AttemptRecord {
    AttemptRecord {
        attempt: n,
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
        outcome: "succeeded".into(),
        error: None,
        logs: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let counter = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = root.join(format!(
            "store-{}.db",
            counter.fetch_add(1, Ordering::Relaxed)
        ));
        async move { SqliteStore::open(&path).await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folders/wasmhook.db");
    let scope = KvScope {
        plugin: PluginName::new("tagger"),
        tenant: TenantId::new("loc-1"),
    };
    let delivery = {
        let store = SqliteStore::open(&path).await.unwrap();
        let IngestOutcome::Inserted { deliveries } =
            store.ingest(event("evt-1"), tagger()).await.unwrap()
        else {
            panic!("not inserted")
        };
        let claimed = store
            .claim(ClaimRequest::any(1, Duration::from_secs(60)))
            .await
            .unwrap();
        store
            .complete(
                &deliveries[0],
                &claimed[0].lease,
                Completion::Succeeded,
                attempt(1),
            )
            .await
            .unwrap();
        store
            .kv_set(&scope, "k", b"kept".to_vec(), None)
            .await
            .unwrap();
        deliveries[0].clone()
        // dropped here: the writer finishes and the lock is released before the drop returns
    };
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.event_count().await.unwrap(), 1);
    let record = store.delivery(&delivery).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Succeeded);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].attempt, 1);
    assert_eq!(record.attempts[0].outcome, "succeeded");
    assert_eq!(
        store.kv_get(&scope, "k").await.unwrap(),
        Some(b"kept".to_vec())
    );
    assert_eq!(
        store.ingest(event("evt-1"), tagger()).await.unwrap(),
        IngestOutcome::Duplicate,
        "deduplication survives a restart"
    );
}

#[tokio::test]
async fn a_second_open_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhook.db");
    let first = SqliteStore::open(&path).await.unwrap();
    match SqliteStore::open(&path).await {
        Err(StoreError::Locked {
            path: locked,
            holder,
        }) => {
            assert_eq!(locked, path.display().to_string());
            assert!(
                holder.starts_with(&format!("pid {} on ", std::process::id())),
                "holder: {holder}"
            );
            let message = StoreError::Locked {
                path: locked,
                holder: holder.clone(),
            }
            .to_string();
            assert!(
                message.contains(&holder),
                "the error names the holder: {message}"
            );
        }
        Err(other) => panic!("expected Locked, got {other:?}"),
        Ok(_) => panic!("a second open of a locked store succeeded"),
    }
    first.ping().await.expect("the first store is unaffected");
    drop(first);
    SqliteStore::open(&path)
        .await
        .expect("the lock is released with the store");
}

#[tokio::test]
async fn durability_pragmas_are_in_effect() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("wasmhook.db"))
        .await
        .unwrap();
    let settings = store.settings().await.unwrap();
    assert_eq!(
        settings,
        ConnectionSettings {
            journal_mode: "wal".into(),
            synchronous: 2,
            secure_delete: true,
            foreign_keys: true,
        }
    );
    // WAL is a property of the file: a fresh connection sees it too.
    let other = Connection::open(store.path()).unwrap();
    let mode: String = other
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = other
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, schema::latest_version());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_queued_writes_then_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhook.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = store.clone();
        writers.spawn(async move { store.ingest(event(&format!("evt-{i}")), tagger()).await });
    }
    tokio::task::yield_now().await;
    store.close().await;
    let mut acknowledged = 0;
    while let Some(result) = writers.join_next().await {
        match result.unwrap() {
            Ok(IngestOutcome::Inserted { .. }) => acknowledged += 1,
            Ok(IngestOutcome::Duplicate) => panic!("no duplicates were sent"),
            Err(StoreError::Closed) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(
        store.ingest(event("late"), tagger()).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.event_count().await, Err(StoreError::Closed)));
    store.close().await; // idempotent

    let reopened = SqliteStore::open(&path)
        .await
        .expect("close released the lock");
    assert_eq!(
        reopened.event_count().await.unwrap(),
        acknowledged,
        "every acknowledged ingest is stored, and nothing else"
    );
}

/// An ingest as the writer sees it, of event `id` to `plugin`.
fn prepared(id: &str, plugin: &str) -> writes::PreparedIngest {
    writes::PreparedIngest {
        event: event(id),
        payload_sha256: String::new(),
        deliveries: vec![(PluginName::new(plugin), 3, None)],
        drop_payload: false,
    }
}

/// One batch: the failing command rolls back alone, the others commit and get their answers.
#[test]
fn a_failing_command_rolls_back_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhook.db");
    let conn = schema::open_writer(&path).unwrap();
    let mut batch = Vec::new();
    let mut answers = Vec::new();
    let mut push = |op: Op| {
        let (reply, answer) = oneshot::channel();
        batch.push((op, reply));
        answers.push(answer);
    };
    push(Op::Ingest(prepared("evt-1", "tagger")));
    // Fails at its delivery row (the trigger below rejects it) after its event row went in, so
    // only the savepoint's rollback can undo that event while keeping the other commands' rows.
    push(Op::Ingest(prepared("evt-2", "rejected")));
    push(Op::Ingest(prepared("evt-3", "tagger")));
    conn.execute_batch(
        "CREATE TEMP TRIGGER reject AFTER INSERT ON deliveries WHEN new.plugin = 'rejected'
         BEGIN SELECT RAISE(ABORT, 'rejected by test'); END;",
    )
    .unwrap();
    writer::run_batch(&conn, &mut batch, &StoreOptions::default());

    let results: Vec<_> = answers
        .into_iter()
        .map(|mut a| a.try_recv().expect("every command got an answer"))
        .collect();
    assert!(matches!(
        results[0],
        Ok(Output::Ingested(IngestOutcome::Inserted { .. }))
    ));
    assert!(
        matches!(&results[1], Err(StoreError::Sqlite(e)) if e.to_string().contains("rejected by test")),
        "{:?}",
        results[1]
    );
    assert!(matches!(
        results[2],
        Ok(Output::Ingested(IngestOutcome::Inserted { .. }))
    ));
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["evt-1", "evt-3"]);
    assert!(conn.is_autocommit(), "the batch's transaction is closed");
}

/// A command that fails after partly writing leaves no trace (the complete's UPDATE is undone
/// when its attempt row cannot be inserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_done_completion_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("wasmhook.db"))
        .await
        .unwrap();
    store.ingest(event("evt-1"), tagger()).await.unwrap();
    let first = store
        .claim(ClaimRequest::any(1, Duration::from_millis(20)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Re-claiming records attempt 1 as lost; the new holder then reports the wrong number, 1.
    let second = store
        .claim(ClaimRequest::any(1, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(second[0].delivery, first[0].delivery);
    let result = store
        .complete(
            &second[0].delivery,
            &second[0].lease,
            Completion::Succeeded,
            attempt(1),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Sqlite(_))), "{result:?}");
    let record = store.delivery(&second[0].delivery).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        DeliveryState::Running,
        "the UPDATE was rolled back"
    );
    store
        .complete(
            &second[0].delivery,
            &second[0].lease,
            Completion::Succeeded,
            attempt(2),
        )
        .await
        .expect("the lease is still held and works");
}
