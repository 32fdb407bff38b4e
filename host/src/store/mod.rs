//! Durable state: events, deliveries (with their attempts), and the plugins' key-value data.
//!
//! One `Store` trait, implemented by each backend, plus `AnyStore`, the closed enum the rest of
//! the host holds. Invariants every backend keeps (checked by `conformance`):
//! - `ingest` writes the event and one delivery per subscriber in ONE durable transaction; a
//!   repeated (source, event id) returns `Duplicate` and writes nothing.
//! - `claim` hands a due delivery to one caller at a time, with a fresh lease token; a delivery
//!   whose lease expired is due again.
//! - `renew` and `complete` succeed only with the current lease token (`LeaseLost` otherwise),
//!   so a delivery is recorded as succeeded at most once.
//! - A running delivery whose lease expired before its worker reported back is "lost": the next
//!   `claim` records that attempt with outcome `lost`, then hands the delivery out again, or, if
//!   it was the last attempt, moves it to `dead` (so a handler that kills or hangs its worker
//!   every time still stops at `max_attempts`).
//! - Times are the store's own clock (milliseconds since the epoch).
//!
//! Durability: a successful `ingest` means the event is on disk, because the sender gets its 200
//! on that promise. The SQLite backend therefore runs with `synchronous=FULL`, and keeps that
//! affordable with one writer thread that commits every queued write in one transaction (one
//! fsync per batch, not per webhook); see `sqlite` for the details.

pub mod conformance;
pub mod sqlite;

use std::{future::Future, time::Duration};

use crate::{
    ids::{ApiName, DeliveryId, EventId, LeaseToken, PluginName, SourceName, TenantId},
    installations::{Gate, GatedOutcome, Installation, InstallationState},
};

/// A verified webhook, ready to store.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub source: SourceName,
    pub id: EventId,
    /// Event kind, e.g. `ContactCreate`; empty when the sender names none.
    pub kind: String,
    pub tenant: TenantId,
    pub received_at_ms: i64,
    /// The raw body exactly as signed.
    pub payload: Vec<u8>,
}

/// One delivery to create with an event.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub plugin: PluginName,
    /// Attempts before the delivery is dead (from the plugin's manifest).
    pub max_attempts: u32,
}

/// What `ingest` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored, with these deliveries (in the order of the `NewDelivery` list).
    Inserted { deliveries: Vec<DeliveryId> },
    /// The (source, id) pair was already stored; nothing was written.
    Duplicate,
}

/// A stored event as plugins see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub source: SourceName,
    pub id: EventId,
    pub kind: String,
    pub tenant: TenantId,
    pub received_at_ms: i64,
    pub payload: Vec<u8>,
}

/// A delivery handed to a worker by `claim`.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub delivery: DeliveryId,
    pub plugin: PluginName,
    /// The attempt about to run, 1-based.
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease: LeaseToken,
    pub event: StoredEvent,
}

/// A delivery's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt or its next retry.
    Pending,
    /// Claimed by a worker under a lease.
    Running,
    Succeeded,
    /// Out of attempts, or the plugin said retrying cannot help.
    Dead,
}

impl DeliveryState {
    /// The name stored and shown (`pending`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Running => "running",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Dead => "dead",
        }
    }
}

/// How an attempt ended, and what happens next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    Succeeded,
    /// Run again at this time (ms since the epoch).
    Retry {
        at_ms: i64,
    },
    Dead,
}

/// One plugin log line kept with its attempt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub at_ms: i64,
    /// `trace` .. `error`, or `stdout` / `stderr` for captured WASI output.
    pub level: String,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// The record of one attempt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// `succeeded`, `retry`, `fail`, `trap`, `timeout`, `memory`, ...
    pub outcome: String,
    pub error: Option<String>,
    pub logs: Vec<LogLine>,
}

/// A delivery with its attempts, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub plugin: PluginName,
    pub source: SourceName,
    pub event_id: EventId,
    pub tenant: TenantId,
    pub state: DeliveryState,
    /// Attempts started so far.
    pub attempts_made: u32,
    pub max_attempts: u32,
    /// When it is due next (pending) or its lease expires (running).
    pub due_at_ms: i64,
    pub attempts: Vec<AttemptRecord>,
}

/// Which deliveries to list. Empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub plugin: Option<PluginName>,
    pub tenant: Option<TenantId>,
    pub event_id: Option<EventId>,
    /// At most this many, newest first. 0 means the backend's default (100).
    pub limit: usize,
}

/// Where kv data lives: one namespace per (plugin, tenant).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvScope {
    pub plugin: PluginName,
    pub tenant: TenantId,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lease token is not the delivery's current one (it expired and was re-claimed, or the
    /// delivery was completed): the caller must not record anything.
    #[error("lease lost for delivery {0}")]
    LeaseLost(DeliveryId),
    /// Another process holds the store (SQLite is single-process).
    #[error(
        "the store {path} is in use by another process ({holder}); stop it or use PostgreSQL for several replicas"
    )]
    Locked { path: String, holder: String },
    #[error("store is shutting down")]
    Closed,
    /// The database was written by a newer wasmhook whose schema this binary does not know.
    #[error(
        "the store's schema is version {found}, newer than this wasmhook supports ({supported}); run a newer wasmhook"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The operations the host needs from durable storage.
pub trait Store: Send + Sync + 'static {
    /// Stores `event` and one pending delivery per entry of `deliveries`, durably, in one
    /// transaction, unless (source, id) is already stored.
    fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send;

    /// Claims up to `limit` due deliveries (pending and due, or running with an expired lease),
    /// oldest due first (then oldest created), for `lease`. Each gets a new lease token and its
    /// attempt count + 1, and comes with its event, payload included. An expired lease's attempt
    /// is recorded as `lost`; if it was the last one the delivery becomes `dead` instead.
    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// Extends a running delivery's lease to now + `lease`. `LeaseLost` if `token` is stale.
    fn renew(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        lease: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records an attempt and moves the delivery on. `LeaseLost` (and nothing written) if
    /// `token` is stale.
    fn complete(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        completion: Completion,
        attempt: AttemptRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A delivery with its attempts.
    fn delivery(
        &self,
        id: &DeliveryId,
    ) -> impl Future<Output = Result<Option<DeliveryRecord>, StoreError>> + Send;

    /// Deliveries matching `filter`, newest first (attempt lists left empty).
    fn deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> impl Future<Output = Result<Vec<DeliveryRecord>, StoreError>> + Send;

    /// A stored event.
    fn event(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// Number of stored events (for tests and status).
    fn event_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The unexpired value under `key`.
    fn kv_get(
        &self,
        scope: &KvScope,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Sets `key`, expiring at `expires_at_ms` when given.
    fn kv_set(
        &self,
        scope: &KvScope,
        key: &str,
        value: Vec<u8>,
        expires_at_ms: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes `key` (absent is fine).
    fn kv_delete(
        &self,
        scope: &KvScope,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// If the unexpired current value equals `expected` (None = absent), replaces it with
    /// `desired` (None = delete) and returns true; otherwise changes nothing and returns false.
    fn kv_compare_and_swap(
        &self,
        scope: &KvScope,
        key: &str,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        expires_at_ms: Option<i64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Total bytes of keys + values held in `scope` (for the kv quota).
    fn kv_usage(&self, scope: &KvScope) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether the store answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Like `ingest`, but first runs `installations::decide` on `gate` in the same transaction:
    /// a refused event writes nothing; an accepted one is stored with the installation change
    /// and link it implies. A stored (source, id) is `Duplicate` whatever the installation says.
    fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> impl Future<Output = Result<GatedOutcome, StoreError>> + Send;

    /// The installation of `tenant` under `api`.
    fn installation(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<Installation>, StoreError>> + Send;

    /// Every installation under `api`, by tenant.
    fn installations(
        &self,
        api: &ApiName,
    ) -> impl Future<Output = Result<Vec<Installation>, StoreError>> + Send;

    /// Sets an installation's state as of `at_ms` (creating it if needed); false, and nothing
    /// written, when the stored state is newer.
    fn set_installation_state(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        state: InstallationState,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that `company`'s installation covers `location`.
    fn link_location(
        &self,
        api: &ApiName,
        company: &TenantId,
        location: &TenantId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The company last linked to `location`.
    fn company_of(
        &self,
        api: &ApiName,
        location: &TenantId,
    ) -> impl Future<Output = Result<Option<TenantId>, StoreError>> + Send;
}

/// The store the host holds: one variant per backend.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
}

impl AnyStore {
    /// Opens the store `url` names, creating and migrating it as needed.
    pub async fn open(url: &crate::config::StoreUrl) -> Result<AnyStore, StoreError> {
        match url {
            crate::config::StoreUrl::Sqlite(path) => {
                Ok(AnyStore::Sqlite(sqlite::SqliteStore::open(path).await?))
            }
        }
    }

    /// Finishes queued writes and releases the store (for SQLite, its single-process lock).
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> Result<IngestOutcome, StoreError> {
        delegate!(self, s => s.ingest(event, deliveries).await)
    }
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
        delegate!(self, s => s.claim(limit, lease).await)
    }
    async fn renew(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        lease: Duration,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.renew(id, token, lease).await)
    }
    async fn complete(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        completion: Completion,
        attempt: AttemptRecord,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.complete(id, token, completion, attempt).await)
    }
    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        delegate!(self, s => s.delivery(id).await)
    }
    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        delegate!(self, s => s.deliveries(filter).await)
    }
    async fn event(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        delegate!(self, s => s.event(source, id).await)
    }
    async fn event_count(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.event_count().await)
    }
    async fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, s => s.kv_get(scope, key).await)
    }
    async fn kv_set(
        &self,
        scope: &KvScope,
        key: &str,
        value: Vec<u8>,
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.kv_set(scope, key, value, expires_at_ms).await)
    }
    async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError> {
        delegate!(self, s => s.kv_delete(scope, key).await)
    }
    async fn kv_compare_and_swap(
        &self,
        scope: &KvScope,
        key: &str,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.kv_compare_and_swap(scope, key, expected, desired, expires_at_ms).await)
    }
    async fn kv_usage(&self, scope: &KvScope) -> Result<u64, StoreError> {
        delegate!(self, s => s.kv_usage(scope).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping().await)
    }
    async fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> Result<GatedOutcome, StoreError> {
        delegate!(self, s => s.ingest_gated(event, deliveries, gate).await)
    }
    async fn installation(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<Installation>, StoreError> {
        delegate!(self, s => s.installation(api, tenant).await)
    }
    async fn installations(&self, api: &ApiName) -> Result<Vec<Installation>, StoreError> {
        delegate!(self, s => s.installations(api).await)
    }
    async fn set_installation_state(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        state: InstallationState,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.set_installation_state(api, tenant, state, at_ms).await)
    }
    async fn link_location(
        &self,
        api: &ApiName,
        company: &TenantId,
        location: &TenantId,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.link_location(api, company, location).await)
    }
    async fn company_of(
        &self,
        api: &ApiName,
        location: &TenantId,
    ) -> Result<Option<TenantId>, StoreError> {
        delegate!(self, s => s.company_of(api, location).await)
    }
}
