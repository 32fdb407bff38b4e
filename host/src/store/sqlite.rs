//! SQLite store (being written).
#![allow(unused_variables)]
use super::*;
use std::{path::Path, time::Duration};
/// SQLite store.
#[derive(Clone)]
pub struct SqliteStore;
impl SqliteStore {
    /// Opens it.
    pub async fn open(_path: &Path) -> Result<SqliteStore, StoreError> {
        Err(StoreError::Closed)
    }
    /// Close.
    pub async fn close(&self) {}
}
impl super::Store for SqliteStore {
    async fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> Result<IngestOutcome, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn renew(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        lease: Duration,
    ) -> Result<(), StoreError> {
        unimplemented!("sqlite store")
    }
    async fn complete(
        &self,
        id: &DeliveryId,
        token: &LeaseToken,
        completion: Completion,
        attempt: AttemptRecord,
    ) -> Result<(), StoreError> {
        unimplemented!("sqlite store")
    }
    async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn event(
        &self,
        source: &SourceName,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn event_count(&self) -> Result<u64, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn kv_set(
        &self,
        scope: &KvScope,
        key: &str,
        value: Vec<u8>,
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        unimplemented!("sqlite store")
    }
    async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<(), StoreError> {
        unimplemented!("sqlite store")
    }
    async fn kv_compare_and_swap(
        &self,
        scope: &KvScope,
        key: &str,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn kv_usage(&self, scope: &KvScope) -> Result<u64, StoreError> {
        unimplemented!("sqlite store")
    }
    async fn ping(&self) -> Result<(), StoreError> {
        unimplemented!("sqlite store")
    }
}
