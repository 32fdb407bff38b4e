//! The background retention collector: every `gc_interval`, deletes in small batches the events
//! (with their succeeded deliveries) older than `retention`, and dead deliveries older than
//! `dead_retention` (see [`Store::collect_garbage`] for what is never deleted).
//!
//! Batches are small and separated by a short pause, so the collector never holds the writer
//! for long: ingestion keeps its latency while a large backlog is cleared.

use std::time::Duration;

use tokio::sync::watch;

use super::{AnyStore, Removed, RetentionCutoffs, Store};
use crate::ids::now_ms;

/// Rows of each kind one collector command deletes.
pub const GC_BATCH: usize = 256;

/// Pause between two full batches, leaving the writer to ingestion in between.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// What the collector keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Events (and their succeeded deliveries) older than this go.
    pub retention: Duration,
    /// Dead deliveries older than this go.
    pub dead_retention: Duration,
    /// Time between passes.
    pub interval: Duration,
}

impl RetentionPolicy {
    /// The cutoffs of a pass at `now_ms`.
    pub fn cutoffs(&self, now_ms: i64) -> RetentionCutoffs {
        let ago =
            |d: Duration| now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        RetentionCutoffs {
            events_before_ms: ago(self.retention),
            dead_before_ms: ago(self.dead_retention),
        }
    }
}

/// One full pass: batches until a batch comes back short. Returns what it removed.
pub async fn collect_once(
    store: &AnyStore,
    policy: &RetentionPolicy,
) -> Result<Removed, super::StoreError> {
    let cutoffs = policy.cutoffs(now_ms());
    let mut total = Removed::default();
    loop {
        let removed = store.collect_garbage(cutoffs, GC_BATCH).await?;
        total.add(removed);
        let full = removed.events as usize >= GC_BATCH || removed.deliveries as usize >= GC_BATCH;
        if !full {
            return Ok(total);
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}

/// Runs passes every `policy.interval` until `stop` turns true.
pub async fn run(store: AnyStore, policy: RetentionPolicy, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(policy.interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match collect_once(&store, &policy).await {
            Ok(removed) if !removed.is_empty() => {
                metrics::counter!("wasmhook_retention_deleted_total", "kind" => "events")
                    .increment(removed.events);
                metrics::counter!("wasmhook_retention_deleted_total", "kind" => "deliveries")
                    .increment(removed.deliveries);
                tracing::info!(
                    events = removed.events,
                    deliveries = removed.deliveries,
                    attempts = removed.attempts,
                    "retention removed old rows"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed; will try again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_count_back_from_now() {
        let policy = RetentionPolicy {
            retention: Duration::from_secs(10),
            dead_retention: Duration::from_secs(30),
            interval: Duration::from_secs(1),
        };
        let c = policy.cutoffs(100_000);
        assert_eq!(c.events_before_ms, 90_000);
        assert_eq!(c.dead_before_ms, 70_000);
        let forever = RetentionPolicy {
            retention: Duration::MAX,
            ..policy
        };
        assert_eq!(forever.cutoffs(5).events_before_ms, 5 - i64::MAX);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_clears_a_backlog_larger_than_one_batch() {
        use crate::{
            ids::{EventId, SourceName, TenantId},
            store::{NewEvent, sqlite::SqliteStore},
        };
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
        for i in 0..(GC_BATCH + 10) {
            let event = NewEvent {
                source: SourceName::new("s"),
                id: EventId::new(format!("e{i}")),
                kind: "K".into(),
                tenant: TenantId::new("t"),
                received_at_ms: 1_000,
                payload: b"{}".to_vec(),
            };
            store.ingest(event, Vec::new()).await.unwrap();
        }
        let policy = RetentionPolicy {
            retention: Duration::from_secs(1),
            dead_retention: Duration::from_secs(1),
            interval: Duration::from_secs(1),
        };
        let removed = collect_once(&store, &policy).await.unwrap();
        assert_eq!(removed.events as usize, GC_BATCH + 10);
        assert_eq!(store.event_count().await.unwrap(), 0);
    }
}
