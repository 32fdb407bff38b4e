//! The PostgreSQL store (`postgres://...`), for several `wasmhook serve` replicas on one
//! database.
//!
//! Layout: [`PostgresStore`] is a cheap handle (clone it freely) on a pool of connections
//! (deadpool over tokio-postgres, sized by `storage.pool_size`). Every operation is one
//! transaction on one pooled connection; there is no writer task, because PostgreSQL takes
//! concurrent writers itself and its own group commit shares WAL flushes between them.
//!
//! How the invariants of [`Store`] hold across processes:
//! - Ingest: `INSERT ... ON CONFLICT DO NOTHING RETURNING` on the events' primary key, and the
//!   deliveries in the same transaction: a duplicate (even a concurrent one) writes nothing.
//! - Claims: `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any replica never take the
//!   same row, and leases are compared with the database's clock (`wasmhook_now_ms()`), never a
//!   replica's.
//! - Renew, complete, defer: fenced by the lease token in the UPDATE's WHERE clause.
//! - Ordering keys: the claim query skips a delivery while an earlier one (lower `seq`) with
//!   the same plugin and key is pending or running, as seen by committed data; see `claim`.
//! - Installations: lifecycle events and state changes take a per-tenant advisory lock
//!   exclusively, other events take it shared, so no UNINSTALL lands between an event's check
//!   and its insert (see `installations`).
//! - Refresh single flight: `begin_refresh` is one conditional UPDATE under the row lock.
//! - Retention: one replica at a time, under a transaction-level advisory lock.
//!
//! Durability: PostgreSQL's `synchronous_commit` (on by default) makes a COMMIT durable before
//! it returns, which is what a 200 to the sender promises. TLS to the database is not offered:
//! run it on a private network or a local socket.

mod claim;
mod credentials;
mod ingest;
mod installations;
mod kv;
mod maintenance;
pub mod pacing;
mod reads;
mod schema;
pub mod testing;
mod writes;

#[cfg(test)]
mod tests;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::{
    AttemptRecord, ClaimRequest, Claimed, Completion, DeliveryFilter, DeliveryRecord, EraseRequest,
    EventInfo, IngestOutcome, KvScope, NewDelivery, NewEvent, Pacing, PluginStats, PurgeFilter,
    QueueStats, Removed, ReplayFilter, RetentionCutoffs, Store, StoreError, StoreOptions,
    StoredEvent,
    credentials::{CredentialCursor, CredentialRecord},
};
use crate::{
    config::PostgresUrl,
    ids::{ApiName, DeliveryId, EventId, LeaseToken, SourceName, TenantId},
    installations::{Gate, GatedOutcome, Installation, InstallationState},
};

/// How long a caller waits for a pooled connection before the operation fails: long enough to
/// ride out a burst, short enough that a webhook sender hears a 500 (and retries) instead of
/// timing out.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How long a new connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store. Clones share one connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    options: StoreOptions,
}

impl PostgresStore {
    /// Connects to `url` with at most `pool_size` connections and brings the schema up to date
    /// (safe when several replicas start at once).
    pub async fn open(
        url: &PostgresUrl,
        pool_size: usize,
        options: StoreOptions,
    ) -> Result<PostgresStore, StoreError> {
        let store = Self::connect(url, pool_size, options)?;
        store.migrate().await?;
        tracing::debug!(url = %url, pool_size, "opened the PostgreSQL store");
        Ok(store)
    }

    /// Applies the migrations the database at `url` lacks (`wasmhook migrate`); returns their
    /// versions.
    pub async fn migrate_url(url: &PostgresUrl) -> Result<Vec<i64>, StoreError> {
        let store = Self::connect(url, 1, StoreOptions::default())?;
        let applied = store.migrate().await;
        store.close().await;
        applied
    }

    /// A pool on `url` without touching the schema (connections open on first use).
    fn connect(
        url: &PostgresUrl,
        pool_size: usize,
        options: StoreOptions,
    ) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|err| StoreError::Config(format!("`{url}`: {err}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("wasmhook");
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                // Checks a connection with a cheap query before handing it out again, so a
                // database restart costs failed checks, not failed operations.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|err| StoreError::Config(format!("building the connection pool: {err}")))?;
        Ok(PostgresStore { pool, options })
    }

    /// Applies the migrations this database lacks; returns their versions (empty: up to date).
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        schema::migrate(&mut client).await
    }

    /// Closes the pool: later operations fail with `Closed`. Idempotent.
    pub async fn close(&self) {
        self.pool.close();
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(self.pool.get().await?)
    }
}

impl std::fmt::Debug for PostgresStore {
    /// The pool's state only: the URL (and its password) stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("pool_size", &status.max_size)
            .field("connections", &status.size)
            .finish_non_exhaustive()
    }
}

/// A driver error with the server's own message (the driver's `Display` says only "db error").
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} {}: {}{}",
            db.severity(),
            db.code().code(),
            db.message(),
            db.hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default()
        ),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// A pool error, with the server's message when a connection was refused.
pub fn describe_pool(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(backend) => {
            format!("cannot open a connection: {}", describe(backend))
        }
        other => other.to_string(),
    }
}

/// A stored count as an attempt number.
fn u32_of(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A `limit` as a query parameter.
fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A duration in whole milliseconds, saturating.
fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Store for PostgresStore {
    async fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> Result<IngestOutcome, StoreError> {
        let mut client = self.client().await?;
        ingest::ingest(&mut client, event, deliveries, &self.options).await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claimed>, StoreError> {
        let mut client = self.client().await?;
        claim::claim(&mut client, &request).await
    }

    async fn defer(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        at_ms: i64,
        note: String,
    ) -> Result<(), StoreError> {
        writes::defer(&self.client().await?, id, token, at_ms, &note).await
    }

    async fn replay(&self, id: &DeliveryId) -> Result<(), StoreError> {
        maintenance::replay(&mut self.client().await?, id).await
    }

    async fn replay_dead(
        &self,
        filter: ReplayFilter,
        pacing: Pacing,
        limit: usize,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        maintenance::replay_dead(&mut self.client().await?, &filter, pacing, limit).await
    }

    async fn cancel(&self, id: &DeliveryId) -> Result<(), StoreError> {
        maintenance::cancel(&mut self.client().await?, id, &self.options).await
    }

    async fn purge_dead(&self, filter: PurgeFilter, limit: usize) -> Result<Removed, StoreError> {
        maintenance::purge_dead(&mut self.client().await?, &filter, limit, &self.options).await
    }

    async fn collect_garbage(
        &self,
        cutoffs: RetentionCutoffs,
        limit: usize,
    ) -> Result<Removed, StoreError> {
        maintenance::collect_garbage(&mut self.client().await?, cutoffs, limit).await
    }

    async fn erase(&self, request: EraseRequest) -> Result<Removed, StoreError> {
        maintenance::erase(&mut self.client().await?, &request).await
    }

    async fn event_info(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<EventInfo>, StoreError> {
        reads::event_info(&self.client().await?, source, id).await
    }

    async fn renew(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        lease: Duration,
    ) -> Result<(), StoreError> {
        writes::renew(&self.client().await?, id, token, lease).await
    }

    async fn complete(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        completion: Completion,
        attempt: AttemptRecord,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        writes::complete(&mut client, id, token, &completion, &attempt, &self.options).await
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        reads::delivery(&mut self.client().await?, id).await
    }

    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        reads::deliveries(&self.client().await?, &filter).await
    }

    async fn event(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        reads::event(&self.client().await?, source, id).await
    }

    async fn event_count(&self) -> Result<u64, StoreError> {
        reads::event_count(&self.client().await?).await
    }

    async fn plugin_stats(&self, since_ms: i64) -> Result<Vec<PluginStats>, StoreError> {
        reads::plugin_stats(&self.client().await?, since_ms).await
    }

    async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, StoreError> {
        reads::queue_stats(&self.client().await?, now_ms).await
    }

    async fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        kv::get(&self.client().await?, scope, key).await
    }

    async fn kv_set(
        &self,
        scope: &KvScope,
        key: &str,
        value: Vec<u8>,
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        kv::set(&mut self.client().await?, scope, key, &value, expires_at_ms).await
    }

    async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError> {
        kv::delete(&self.client().await?, scope, key).await
    }

    async fn kv_compare_and_swap(
        &self,
        scope: &KvScope,
        key: &str,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        kv::compare_and_swap(
            &mut self.client().await?,
            scope,
            key,
            expected.as_deref(),
            desired.as_deref(),
            expires_at_ms,
        )
        .await
    }

    async fn kv_usage(&self, scope: &KvScope) -> Result<u64, StoreError> {
        kv::usage(&self.client().await?, scope).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> Result<GatedOutcome, StoreError> {
        let mut client = self.client().await?;
        installations::ingest_gated(&mut client, event, deliveries, &gate, &self.options).await
    }

    async fn installation(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<Installation>, StoreError> {
        installations::installation(&self.client().await?, api, tenant).await
    }

    async fn installations(&self, api: &ApiName) -> Result<Vec<Installation>, StoreError> {
        installations::list(&self.client().await?, api).await
    }

    async fn set_installation_state(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        state: InstallationState,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        installations::set_installation_state(&mut self.client().await?, api, tenant, state, at_ms)
            .await
    }

    async fn link_location(
        &self,
        api: &ApiName,
        company: &TenantId,
        location: &TenantId,
    ) -> Result<(), StoreError> {
        installations::link(&self.client().await?, api, company, location).await
    }

    async fn company_of(
        &self,
        api: &ApiName,
        location: &TenantId,
    ) -> Result<Option<TenantId>, StoreError> {
        installations::company_of(&self.client().await?, api, location).await
    }

    async fn credential(
        &self,
        api: &ApiName,
        tenant: &TenantId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        credentials::credential(&self.client().await?, api, tenant).await
    }

    async fn credentials(
        &self,
        after: CredentialCursor,
        limit: usize,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        credentials::page(&self.client().await?, &after, limit).await
    }

    async fn put_credential(
        &self,
        record: CredentialRecord,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        credentials::put(&mut self.client().await?, &record, expected_version).await
    }

    async fn begin_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        credentials::begin_refresh(&self.client().await?, api, tenant, version, lease).await
    }

    async fn end_refresh(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        version: i64,
    ) -> Result<(), StoreError> {
        credentials::end_refresh(&self.client().await?, api, tenant, version).await
    }

    async fn delete_credential(&self, api: &ApiName, tenant: &TenantId) -> Result<u64, StoreError> {
        credentials::delete(&self.client().await?, api, tenant).await
    }

    async fn uninstalls_to_erase(
        &self,
        limit: usize,
    ) -> Result<Vec<(ApiName, TenantId)>, StoreError> {
        credentials::uninstalls_to_erase(&self.client().await?, limit).await
    }

    async fn mark_erased(&self, api: &ApiName, tenant: &TenantId) -> Result<bool, StoreError> {
        credentials::mark_erased(&self.client().await?, api, tenant).await
    }

    async fn covered_locations(
        &self,
        api: &ApiName,
        company: &TenantId,
    ) -> Result<Vec<TenantId>, StoreError> {
        credentials::covered_locations(&self.client().await?, api, company).await
    }
}
