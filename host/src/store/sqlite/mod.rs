//! The embedded SQLite store (`sqlite://path`), the default backend.
//!
//! Layout: [`SqliteStore`] is a cheap handle (clone it freely) on one writer thread and a pool
//! of read connections.
//! - Writes go over a channel to the writer thread (`writer`), which owns the only write
//!   connection and commits whatever is queued in one transaction ("group commit").
//! - Reads run on a small pool of connections on tokio's blocking threads (`reads`).
//! - `open` takes an exclusive lock on `<db path>.lock` (`lock`) for the store's lifetime:
//!   SQLite is single-process here, and a second process is refused with the holder's name.
//!
//! Why `synchronous=FULL`: a 200 to a webhook sender promises the event is on disk. In WAL mode
//! `NORMAL` only fsyncs at checkpoints, so a power cut can lose the last commits after they were
//! acknowledged; `FULL` fsyncs the WAL at every commit.
//!
//! Why one writer thread with group commit: SQLite allows one writer at a time anyway; writers on
//! several connections would queue on its file lock with `SQLITE_BUSY` and back-off sleeps, and
//! each would pay its own fsync. One thread that drains the queue and commits it as one
//! transaction pays one fsync for the whole batch, so `FULL` costs one disk flush per batch
//! rather than per webhook, and the throughput grows with the load instead of collapsing.
//!
//! Lifetime: when the last clone is dropped, the writer finishes the queued work, closes its
//! connection and releases the lock before the drop returns; [`SqliteStore::close`] does the
//! same explicitly from async code.

mod claim;
mod credentials;
mod installations;
mod lock;
mod maintenance;
mod reads;
mod rows;
mod schema;
mod writer;
mod writes;

#[cfg(test)]
mod tests;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

pub use writer::ConnectionSettings;

use sha2::{Digest, Sha256};

use self::{
    credentials::CredentialOp,
    lock::ProcessLock,
    reads::ReadPool,
    rows::duration_ms,
    writer::{Message, Op, Output},
    writes::PreparedIngest,
};
use super::{
    AttemptRecord, ClaimRequest, Claimed, Completion, DeliveryFilter, DeliveryRecord, EraseRequest,
    EventInfo, IngestOutcome, KvScope, NewDelivery, NewEvent, Pacing, PluginStats, PurgeFilter,
    QueueStats, Removed, ReplayFilter, RetentionCutoffs, Store, StoreError, StoreOptions,
    StoredEvent,
    credentials::{CredentialCursor, CredentialRecord},
    ordering,
};
use crate::{
    ids::{ApiName, DeliveryId, EventId, LeaseToken, SourceName, TenantId, now_ms},
    installations::{Gate, GatedOutcome, Installation, InstallationState},
};

/// Events (or kv entries) one erase command deletes, and events one contact scan reads: small
/// enough that an erase never holds the writer (and so ingestion) for more than milliseconds.
const ERASE_BATCH: usize = 256;

/// Read connections. Reads are short point lookups; a few cover two cores with room for a slow
/// listing, and each idle connection costs only its page cache.
const READ_CONNECTIONS: usize = 4;

/// The SQLite store. Clones share one writer thread and one read pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` only while dropping (taking it is what tells the writer to finish).
    writer: Option<mpsc::Sender<Message>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    reads: Arc<ReadPool>,
    options: StoreOptions,
}

impl SqliteStore {
    /// Opens (creating it and its parent folder if needed) the database at `path`, brings its
    /// schema up to date, and starts the writer thread. Fails with `Locked` if another process
    /// (or another `SqliteStore` in this one) holds the database.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, StoreOptions::default()).await
    }

    /// Like [`SqliteStore::open`], with `options`.
    pub async fn open_with(path: &Path, options: StoreOptions) -> Result<SqliteStore, StoreError> {
        let path = path.to_owned();
        match tokio::task::spawn_blocking(move || SqliteStore::open_blocking(path, options)).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn open_blocking(path: PathBuf, options: StoreOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let lock = ProcessLock::acquire(&path)?;
        let conn = schema::open_writer(&path)?;
        let reads = Arc::new(ReadPool::new(path.clone(), READ_CONNECTIONS));
        reads.warm()?;
        let (sender, queue) = mpsc::channel(writer::QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, queue, lock, options))?;
        tracing::debug!(path = %path.display(), "opened the SQLite store");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Some(sender),
                thread: Mutex::new(Some(thread)),
                reads,
                options,
            }),
        })
    }

    /// An ingest ready for the writer. Hashing and resolving ordering keys happen here, on the
    /// caller's task, so the single writer thread only runs SQL.
    fn prepare_ingest(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> PreparedIngest {
        let payload_sha256 = hex::encode(Sha256::digest(&event.payload));
        let pointers: Vec<Option<&str>> = deliveries
            .iter()
            .map(|d| d.ordering_key.as_deref())
            .collect();
        let keys = ordering::resolve(&event.payload, &pointers);
        let drop_payload = deliveries.is_empty() && !self.inner.options.keep_payloads;
        let deliveries = deliveries
            .into_iter()
            .zip(keys)
            .map(|(d, key)| (d.plugin, d.max_attempts, key))
            .collect();
        PreparedIngest {
            event,
            payload_sha256,
            deliveries,
            drop_payload,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Finishes the queued writes, stops the writer thread, closes the read pool and releases
    /// the process lock. Every later call on any clone fails with `Closed`. Idempotent.
    pub async fn close(&self) {
        self.inner.reads.close();
        if let Some(sender) = &self.inner.writer {
            // An error means the writer already stopped: nothing left to flush.
            let _ = sender.send(Message::Close).await;
        }
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the SQLite writer thread panicked"),
                Err(err) => tracing::error!(error = %err, "waiting for the SQLite writer failed"),
            }
        }
    }

    /// The settings in effect on the write connection (WAL, synchronous, ...), for `status` and
    /// tests.
    pub async fn settings(&self) -> Result<ConnectionSettings, StoreError> {
        self.write(Op::Settings).await?.into_settings()
    }

    /// Sends `op` to the writer and waits until its batch is committed.
    async fn write(&self, op: Op) -> Result<Output, StoreError> {
        let sender = self.inner.writer.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Message::Run { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.reads.run(read).await
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping the sender ends the writer's queue: it runs what is queued, then exits.
        self.writer.take();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Waiting here blocks the dropping thread for at most one batch, and it is what lets a
        // caller reopen the same path right after dropping the store (the lock is free by then).
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

impl Store for SqliteStore {
    async fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> Result<IngestOutcome, StoreError> {
        self.write(Op::Ingest(self.prepare_ingest(event, deliveries)))
            .await?
            .into_ingested()
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claimed>, StoreError> {
        self.write(Op::Claim(request)).await?.into_claimed()
    }

    async fn defer(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        at_ms: i64,
        note: String,
    ) -> Result<(), StoreError> {
        self.write(Op::Defer {
            id: id.clone(),
            token: token.clone(),
            at_ms,
            note,
        })
        .await?
        .into_done()
    }

    async fn replay(&self, id: &DeliveryId) -> Result<(), StoreError> {
        self.write(Op::Replay { id: id.clone() }).await?.into_done()
    }

    async fn replay_dead(
        &self,
        filter: ReplayFilter,
        pacing: Pacing,
        limit: usize,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        self.write(Op::ReplayDead {
            filter,
            pacing,
            limit,
        })
        .await?
        .into_ids()
    }

    async fn cancel(&self, id: &DeliveryId) -> Result<(), StoreError> {
        self.write(Op::Cancel { id: id.clone() }).await?.into_done()
    }

    async fn purge_dead(&self, filter: PurgeFilter, limit: usize) -> Result<Removed, StoreError> {
        self.write(Op::PurgeDead { filter, limit })
            .await?
            .into_removed()
    }

    async fn collect_garbage(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> Result<Removed, StoreError> {
        self.write(Op::CollectGarbage { cutoffs, limit })
            .await?
            .into_removed()
    }

    async fn erase(&self, request: EraseRequest) -> Result<Removed, StoreError> {
        let mut total = Removed::default();
        match request.contact {
            None => loop {
                // Events first, then kv entries; an empty batch means both are gone.
                let removed = self
                    .write(Op::EraseTenantBatch {
                        tenant: request.tenant.clone(),
                        limit: ERASE_BATCH,
                    })
                    .await?
                    .into_removed()?;
                if removed.is_empty() {
                    break;
                }
                total.add(removed);
            },
            Some(contact) => {
                // Matching needs the payloads: scan them on the read pool, delete on the writer.
                // An event naming the contact that arrives during the scan may be missed; erase
                // is a point-in-time operation and can simply be run again.
                let mut after = None;
                loop {
                    let (tenant, contact) = (request.tenant.clone(), contact.clone());
                    let (keys, last) = self
                        .read(move |conn| {
                            reads::events_naming_contact(
                                conn,
                                &tenant,
                                &contact,
                                after,
                                ERASE_BATCH,
                            )
                        })
                        .await?;
                    if !keys.is_empty() {
                        total.add(self.write(Op::EraseEvents { keys }).await?.into_removed()?);
                    }
                    match last {
                        Some(last) => after = Some(last),
                        None => break,
                    }
                }
            }
        }
        Ok(total)
    }

    async fn event_info(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<EventInfo>, StoreError> {
        let (source, id) = (source.clone(), id.clone());
        self.read(move |conn| reads::event_info(conn, &source, &id))
            .await
    }

    async fn renew(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.write(Op::Renew {
            id: id.clone(),
            token: token.clone(),
            lease,
        })
        .await?
        .into_done()
    }

    async fn complete(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        completion: Completion,
        attempt: AttemptRecord,
    ) -> Result<(), StoreError> {
        self.write(Op::Complete {
            id: id.clone(),
            token: token.clone(),
            completion,
            attempt,
        })
        .await?
        .into_done()
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reads::delivery(conn, &id)).await
    }

    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read(move |conn| reads::deliveries(conn, &filter))
            .await
    }

    async fn event(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let (source, id) = (source.clone(), id.clone());
        self.read(move |conn| reads::event(conn, &source, &id))
            .await
    }

    async fn event_count(&self) -> Result<u64, StoreError> {
        self.read(reads::event_count).await
    }

    async fn plugin_stats(&self, since_ms: i64) -> Result<Vec<PluginStats>, StoreError> {
        self.read(move |conn| reads::plugin_stats(conn, since_ms))
            .await
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, StoreError> {
        self.read(move |conn| reads::queue_stats(conn, now_ms))
            .await
    }

    async fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (scope, key) = (scope.clone(), key.to_owned());
        self.read(move |conn| reads::kv_get(conn, &scope, &key, now_ms()))
            .await
    }

    async fn kv_set(
        &self,
        scope: &KvScope,
        key: &str,
        value: Vec<u8>,
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write(Op::KvSet {
            scope: scope.clone(),
            key: key.to_owned(),
            value,
            expires_at_ms,
        })
        .await?
        .into_done()
    }

    async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError> {
        self.write(Op::KvDelete {
            scope: scope.clone(),
            key: key.to_owned(),
        })
        .await?
        .into_done()
    }

    async fn kv_compare_and_swap(
        &self,
        scope: &KvScope,
        key: &str,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.write(Op::KvCompareAndSwap {
            scope: scope.clone(),
            key: key.to_owned(),
            expected,
            desired,
            expires_at_ms,
        })
        .await?
        .into_swapped()
    }

    async fn kv_usage(&self, scope: &KvScope) -> Result<u64, StoreError> {
        let scope = scope.clone();
        self.read(move |conn| reads::kv_usage(conn, &scope, now_ms()))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(reads::ping).await
    }

    // Installations: bodies in `installations.rs`.
    async fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> Result<GatedOutcome, StoreError> {
        self.ingest_gated_sqlite(event, deliveries, gate).await
    }

    async fn installation(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<Installation>, StoreError> {
        let (api, tenant) = (api.clone(), tenant.clone());
        self.read(move |conn| installations::installation(conn, &api, &tenant))
            .await
    }

    async fn installations(&self, api: &ApiName) -> Result<Vec<Installation>, StoreError> {
        let api = api.clone();
        self.read(move |conn| installations::list(conn, &api)).await
    }

    async fn set_installation_state(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        state: InstallationState,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        self.set_installation_state_sqlite(api, tenant, state, at_ms)
            .await
    }

    async fn link_location(
        &self,
        api: &ApiName,
        company: &TenantId,
        location: &TenantId,
    ) -> Result<(), StoreError> {
        self.link_location_sqlite(api, company, location).await
    }

    async fn company_of(
        &self,
        api: &ApiName,
        location: &TenantId,
    ) -> Result<Option<TenantId>, StoreError> {
        let (api, location) = (api.clone(), location.clone());
        self.read(move |conn| installations::company_of(conn, &api, &location))
            .await
    }

    // Credentials: bodies in `credentials.rs`.
    async fn credential(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let (api, tenant) = (api.clone(), tenant.clone());
        self.read(move |conn| credentials::credential(conn, &api, &tenant))
            .await
    }

    async fn credentials(
        &self,
        after: CredentialCursor,
        limit: usize,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        self.read(move |conn| credentials::page(conn, &after, limit))
            .await
    }

    async fn put_credential(
        &self,
        record: CredentialRecord,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        let op = CredentialOp::Put {
            record,
            expected_version,
        };
        Ok(self.write_credentials(op).await? > 0)
    }

    async fn begin_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        // One process owns a SQLite file, so its clock is the store's clock.
        let now = now_ms();
        let op = CredentialOp::BeginRefresh {
            api: api.clone(),
            tenant: tenant.clone(),
            version,
            now_ms: now,
            lease_until_ms: now.saturating_add(duration_ms(lease)),
        };
        Ok(self.write_credentials(op).await? > 0)
    }

    async fn end_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
    ) -> Result<(), StoreError> {
        let op = CredentialOp::EndRefresh {
            api: api.clone(),
            tenant: tenant.clone(),
            version,
        };
        self.write_credentials(op).await.map(drop)
    }

    async fn delete_credential(&self, api: &ApiName, tenant: &TenantId) -> Result<u64, StoreError> {
        let op = CredentialOp::Delete {
            api: api.clone(),
            tenant: tenant.clone(),
        };
        self.write_credentials(op).await
    }

    async fn uninstalls_to_erase(
        &self,
        limit: usize,
    ) -> Result<Vec<(ApiName, TenantId)>, StoreError> {
        self.read(move |conn| credentials::uninstalls_to_erase(conn, limit))
            .await
    }

    async fn mark_erased(&self, api: &ApiName, tenant: &TenantId) -> Result<bool, StoreError> {
        let op = CredentialOp::MarkErased {
            api: api.clone(),
            tenant: tenant.clone(),
        };
        Ok(self.write_credentials(op).await? > 0)
    }

    async fn covered_locations(
        &self,
        api: &ApiName,
        company: &TenantId,
    ) -> Result<Vec<TenantId>, StoreError> {
        let (api, company) = (api.clone(), company.clone());
        self.read(move |conn| credentials::covered_locations(conn, &api, &company))
            .await
    }
}
