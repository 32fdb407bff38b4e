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

mod claim;
pub mod conformance;
pub mod credentials;
mod maintenance;
pub mod ordering;
pub mod postgres;
pub mod retention;
pub mod sqlite;

use std::{future::Future, time::Duration};

pub use claim::{ClaimRequest, PluginSlots};
pub use credentials::{API_WIDE, CredentialCursor, CredentialKind, CredentialRecord};
pub use maintenance::{
    EraseRequest, EventInfo, Pacing, PurgeFilter, Removed, ReplayFilter, RetentionCutoffs,
    payload_names_contact,
};

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
    /// The plugin's manifest `ordering_key`: a JSON pointer into the payload (e.g.
    /// `/contactId`). The store resolves it at ingest (see [`ordering`]); deliveries of this
    /// plugin with the same resolved value then run one at a time, in arrival order.
    pub ordering_key: Option<String>,
}

impl NewDelivery {
    /// A delivery to `plugin` with `max_attempts` attempts and no ordering.
    pub fn new(plugin: PluginName, max_attempts: u32) -> NewDelivery {
        NewDelivery {
            plugin,
            max_attempts,
            ordering_key: None,
        }
    }
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

/// What one plugin's deliveries did in a period (see [`Store::plugin_stats`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginStats {
    pub plugin: PluginName,
    /// Attempts that succeeded.
    pub delivered: u64,
    /// Attempts that failed (whether retried or not).
    pub failed: u64,
    /// Deliveries that went dead.
    pub dead: u64,
    /// 95th percentile of attempt durations, ms; None without attempts.
    pub p95_ms: Option<i64>,
}

/// The delivery queue at one moment (see [`Store::queue_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Pending deliveries (due now or later).
    pub pending: u64,
    /// Deliveries running under a lease.
    pub running: u64,
    /// How long the most overdue pending delivery has been due, in ms; 0 when none is due.
    pub oldest_due_age_ms: i64,
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
    /// When it is due next (pending), its lease expires (running), or it ended.
    pub due_at_ms: i64,
    /// The value of the plugin's `ordering_key` in this event, if it has one.
    #[serde(default)]
    pub ordering_key: Option<String>,
    /// Why a pending delivery waits without having spent an attempt (deferred because its
    /// plugin is not loaded or an API's daily quota ran out), or that an operator replayed it.
    #[serde(default)]
    pub note: Option<String>,
    pub attempts: Vec<AttemptRecord>,
}

/// Which deliveries to list. Empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub plugin: Option<PluginName>,
    pub tenant: Option<TenantId>,
    pub event_id: Option<EventId>,
    /// Only those created at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
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
    /// No delivery with this id.
    #[error("no delivery {0}")]
    NotFound(DeliveryId),
    /// The operation does not apply to the delivery in its current state (e.g. cancelling a
    /// running delivery, replaying a pending one).
    #[error("delivery {id} is {state}; {hint}")]
    WrongState {
        id: DeliveryId,
        state: &'static str,
        hint: &'static str,
    },
    /// The event's payload was dropped once every delivery succeeded (data minimisation), so
    /// the delivery cannot run again.
    #[error(
        "delivery {0} cannot be replayed: its event's payload was dropped after every delivery succeeded"
    )]
    PayloadDropped(DeliveryId),
    /// The database was written by a newer wasmhook whose schema this binary does not know.
    #[error(
        "the store's schema is version {found}, newer than this wasmhook supports ({supported}); run a newer wasmhook"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No pooled PostgreSQL connection could be had (the server is down or every connection
    /// stayed busy past the wait).
    #[error("postgres connection pool: {}", postgres::describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The store's settings cannot be used (the message names the setting; no password).
    #[error("store configuration: {0}")]
    Config(String),
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

    /// Claims due deliveries within `request` (see [`ClaimRequest`]): pending and due, oldest
    /// due first (then oldest created), skipping any whose ordering key has an earlier delivery
    /// of the same plugin still pending or running. Each gets a new lease token and its attempt
    /// count + 1, and comes with its event, payload included. First, running deliveries whose
    /// lease expired get their attempt recorded as `lost` and become pending again, or dead if
    /// it was the last one.
    fn claim(
        &self,
        request: ClaimRequest,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// Puts a running delivery back to pending, due at `at_ms`, WITHOUT spending an attempt
    /// (its plugin is not loaded, or an API's daily quota ran out), with `note` saying why.
    /// `LeaseLost` if `token` is stale.
    fn defer(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        at_ms: i64,
        note: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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

    /// Makes a dead or succeeded delivery pending again, due now, with as many attempts as
    /// it was created with. `WrongState` if it is pending or running, `PayloadDropped` if its
    /// event's payload is gone, `NotFound` if there is no such delivery.
    fn replay(&self, id: &DeliveryId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replays up to `limit` dead deliveries matching `filter`, oldest death first, with due
    /// times spread by `pacing`. Returns the ids revived (fewer than `limit`: none are left).
    fn replay_dead(
        &self,
        filter: ReplayFilter,
        pacing: Pacing,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeliveryId>, StoreError>> + Send;

    /// Deletes a pending delivery with its attempts. `WrongState` unless it is pending.
    fn cancel(&self, id: &DeliveryId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes up to `limit` dead deliveries matching `filter`, with their attempts.
    fn purge_dead(
        &self,
        filter: PurgeFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Removed, StoreError>> + Send;

    /// One retention pass of at most `limit` rows per kind (see [`RetentionCutoffs`]).
    fn collect_garbage(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> impl Future<Output = Result<Removed, StoreError>> + Send;

    /// Removes everything held about a tenant (events, deliveries, attempts, kv), or with a
    /// contact only the events naming it and their deliveries, in batches, and reports counts.
    fn erase(
        &self,
        request: EraseRequest,
    ) -> impl Future<Output = Result<Removed, StoreError>> + Send;

    /// What is kept of an event (payload excluded).
    fn event_info(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<EventInfo>, StoreError>> + Send;

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

    /// Per plugin, what its deliveries did since `since_ms` (for `wasmhook status`). Reads every
    /// attempt of the period: an operator's occasional read, not for hot paths.
    fn plugin_stats(
        &self,
        since_ms: i64,
    ) -> impl Future<Output = Result<Vec<PluginStats>, StoreError>> + Send;

    /// How many deliveries wait (pending or running) and how late the most overdue pending one
    /// is at `now_ms`: one indexed read, cheap enough to run every few seconds.
    fn queue_stats(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<QueueStats, StoreError>> + Send;

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

    /// The credential of `tenant` under `api` (sealed).
    fn credential(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<CredentialRecord>, StoreError>> + Send;

    /// Up to `limit` credentials after `after`, ordered by (api, tenant).
    fn credentials(
        &self,
        after: CredentialCursor,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CredentialRecord>, StoreError>> + Send;

    /// Inserts or replaces `record` (its `version` is ignored): only when the stored row is at
    /// `expected_version` if one is given (None: whatever is stored). The written row gets the
    /// next version and no refresh lease. Returns whether it was written.
    fn put_credential(
        &self,
        record: CredentialRecord,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes the refresh lease (the persisted in-flight marker) of a credential for `lease`,
    /// when it is at `version` and holds no unexpired lease. Both the expiry written and the
    /// check are on the store's clock (the database's, for a store replicas share), so
    /// replicas whose clocks disagree still see one holder. Returns whether it was taken.
    fn begin_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Releases the refresh lease of a credential still at `version` (the refresh failed).
    fn end_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the credential of `tenant` under `api`; returns how many rows went (0 or 1).
    fn delete_credential(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` uninstalled installations not yet erased whose UNINSTALL event has no
    /// pending or running delivery left, oldest first.
    fn uninstalls_to_erase(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(ApiName, TenantId)>, StoreError>> + Send;

    /// Records that an uninstalled installation was erased; false if it is not (or no longer)
    /// an unerased tombstone.
    fn mark_erased(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The locations linked to `company` under `api`.
    fn covered_locations(
        &self,
        api: &ApiName,
        company: &TenantId,
    ) -> impl Future<Output = Result<Vec<TenantId>, StoreError>> + Send;
}

/// Behaviour a backend is opened with (from `[storage]`). The default drops payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Keep payloads after every delivery succeeded. Default false: data minimisation drops
    /// them, keeping what dedup needs (HighLevel's guide asks to store only what is needed).
    pub keep_payloads: bool,
    /// PostgreSQL: connections kept open at most (`storage.pool_size`); None: 16. SQLite
    /// ignores it.
    pub pool_size: Option<usize>,
}

/// PostgreSQL connections when [`StoreOptions::pool_size`] is unset.
const DEFAULT_POOL_SIZE: usize = 16;

/// The store the host holds: one variant per backend.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl AnyStore {
    /// Opens the store `url` names, creating and migrating it as needed, with the default
    /// [`StoreOptions`].
    pub async fn open(url: &crate::config::StoreUrl) -> Result<AnyStore, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// Opens the store `url` names with `options`.
    pub async fn open_with(
        url: &crate::config::StoreUrl,
        options: StoreOptions,
    ) -> Result<AnyStore, StoreError> {
        match url {
            crate::config::StoreUrl::Sqlite(path) => Ok(AnyStore::Sqlite(
                sqlite::SqliteStore::open_with(path, options).await?,
            )),
            crate::config::StoreUrl::Postgres(url) => Ok(AnyStore::Postgres(
                postgres::PostgresStore::open(
                    url,
                    options.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
                    options,
                )
                .await?,
            )),
        }
    }

    /// Finishes queued writes and releases the store (for SQLite, its single-process lock).
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            AnyStore::Postgres($s) => $call,
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
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claimed>, StoreError> {
        delegate!(self, s => s.claim(request).await)
    }
    async fn defer(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        at_ms: i64,
        note: String,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.defer(id, token, at_ms, note).await)
    }
    async fn replay(&self, id: &DeliveryId) -> Result<(), StoreError> {
        delegate!(self, s => s.replay(id).await)
    }
    async fn replay_dead(
        &self,
        filter: ReplayFilter,
        pacing: Pacing,
        limit: usize,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        delegate!(self, s => s.replay_dead(filter, pacing, limit).await)
    }
    async fn cancel(&self, id: &DeliveryId) -> Result<(), StoreError> {
        delegate!(self, s => s.cancel(id).await)
    }
    async fn purge_dead(&self, filter: PurgeFilter, limit: usize) -> Result<Removed, StoreError> {
        delegate!(self, s => s.purge_dead(filter, limit).await)
    }
    async fn collect_garbage(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> Result<Removed, StoreError> {
        delegate!(self, s => s.collect_garbage(cutoffs, limit).await)
    }
    async fn erase(&self, request: EraseRequest) -> Result<Removed, StoreError> {
        delegate!(self, s => s.erase(request).await)
    }
    async fn event_info(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<EventInfo>, StoreError> {
        delegate!(self, s => s.event_info(source, id).await)
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
    async fn plugin_stats(&self, since_ms: i64) -> Result<Vec<PluginStats>, StoreError> {
        delegate!(self, s => s.plugin_stats(since_ms).await)
    }
    async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, StoreError> {
        delegate!(self, s => s.queue_stats(now_ms).await)
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
    async fn credential(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        delegate!(self, s => s.credential(api, tenant).await)
    }
    async fn credentials(
        &self,
        after: CredentialCursor,
        limit: usize,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        delegate!(self, s => s.credentials(after, limit).await)
    }
    async fn put_credential(
        &self,
        record: CredentialRecord,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.put_credential(record, expected_version).await)
    }
    async fn begin_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.begin_refresh(api, tenant, version, lease).await)
    }
    async fn end_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.end_refresh(api, tenant, version).await)
    }
    async fn delete_credential(&self, api: &ApiName, tenant: &TenantId) -> Result<u64, StoreError> {
        delegate!(self, s => s.delete_credential(api, tenant).await)
    }
    async fn uninstalls_to_erase(
        &self,
        limit: usize,
    ) -> Result<Vec<(ApiName, TenantId)>, StoreError> {
        delegate!(self, s => s.uninstalls_to_erase(limit).await)
    }
    async fn mark_erased(&self, api: &ApiName, tenant: &TenantId) -> Result<bool, StoreError> {
        delegate!(self, s => s.mark_erased(api, tenant).await)
    }
    async fn covered_locations(
        &self,
        api: &ApiName,
        company: &TenantId,
    ) -> Result<Vec<TenantId>, StoreError> {
        delegate!(self, s => s.covered_locations(api, company).await)
    }
}
