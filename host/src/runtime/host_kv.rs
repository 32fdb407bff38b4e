//! The `kv` import: a small key-value store scoped to (plugin, tenant).
//!
//! Isolation: the scope is taken from the delivery (the plugin's name and the event's tenant);
//! nothing in the WIT lets a plugin name another scope, so plugins and tenants never see each
//! other's data.
//!
//! Limits, checked before the store is touched: keys are 1..=[`MAX_KEY_BYTES`] bytes, values at
//! most [`MAX_VALUE_BYTES`], and a scope holds at most [`MAX_SCOPE_BYTES`] of keys + values.
//! The quota is checked against `kv_usage` before each write; two deliveries of the same
//! (plugin, tenant) writing at once may overshoot it by one value each, which is acceptable for
//! a guard against runaway growth (making it exact would serialise all writes of a scope).
//! Store failures reach the plugin as `unavailable` (retrying the delivery may help), with the
//! details only in the host's log.

use super::{
    bindings::kv::{Host, KvError},
    state::State,
};
use crate::{
    ids::now_ms,
    store::{AnyStore, KvScope, Store, StoreError},
};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Keys + values one (plugin, tenant) scope may hold, in bytes.
pub const MAX_SCOPE_BYTES: u64 = 1024 * 1024;

impl Host for State {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        check_key(&key)?;
        let scope = self.kv_scope();
        self.services
            .store
            .kv_get(&scope, &key)
            .await
            .map_err(|e| self.unavailable("get", e))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), KvError> {
        check_key(&key)?;
        check_value(&value)?;
        let scope = self.kv_scope();
        quota(&self.services.store, &scope, &key, value.len())
            .await
            .map_err(|f| self.failed(f))?;
        self.services
            .store
            .kv_set(&scope, &key, value, expires_at(ttl_ms))
            .await
            .map_err(|e| self.unavailable("set", e))
    }

    async fn delete(&mut self, key: String) -> Result<(), KvError> {
        check_key(&key)?;
        let scope = self.kv_scope();
        self.services
            .store
            .kv_delete(&scope, &key)
            .await
            .map_err(|e| self.unavailable("delete", e))
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, KvError> {
        check_key(&key)?;
        let scope = self.kv_scope();
        if let Some(value) = &desired {
            check_value(value)?;
            quota(&self.services.store, &scope, &key, value.len())
                .await
                .map_err(|f| self.failed(f))?;
        }
        self.services
            .store
            .kv_compare_and_swap(&scope, &key, expected, desired, expires_at(ttl_ms))
            .await
            .map_err(|e| self.unavailable("compare-and-swap", e))
    }
}

impl State {
    fn kv_scope(&self) -> KvScope {
        KvScope {
            plugin: self.tags.plugin.clone(),
            tenant: self.tags.tenant.clone(),
        }
    }

    fn failed(&self, failure: Failure) -> KvError {
        match failure {
            Failure::Refused(e) => e,
            Failure::Store(op, e) => self.unavailable(op, e),
        }
    }

    /// Logs a store failure with the delivery's ids and gives the plugin a generic error.
    fn unavailable(&self, op: &str, error: StoreError) -> KvError {
        tracing::warn!(
            plugin = %self.tags.plugin,
            event_id = %self.tags.event_id,
            delivery_id = %self.tags.delivery_id,
            tenant = %self.tags.tenant,
            error = %error,
            "kv {op} failed"
        );
        KvError::Unavailable(format!("the key-value store could not {op}; retry later"))
    }
}

/// Why a write was not attempted.
enum Failure {
    /// A limit refused it.
    Refused(KvError),
    /// The store failed during the check (operation, error).
    Store(&'static str, StoreError),
}

/// Refuses a write of `value_len` bytes under `key` that would take `scope` past its quota.
/// The value the write replaces is not counted twice.
///
/// A free function over the store (not a `State` method): the state is not `Sync`, so a shared
/// borrow of it cannot be held across an await in a `Send` future.
async fn quota(
    store: &AnyStore,
    scope: &KvScope,
    key: &str,
    value_len: usize,
) -> Result<(), Failure> {
    let usage = store
        .kv_usage(scope)
        .await
        .map_err(|e| Failure::Store("measure usage", e))?;
    let replaced = match store.kv_get(scope, key).await {
        Ok(Some(old)) => (key.len() + old.len()) as u64,
        Ok(None) => 0,
        Err(e) => return Err(Failure::Store("get", e)),
    };
    check_quota(usage, replaced, (key.len() + value_len) as u64).map_err(Failure::Refused)
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "the key is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge(format!(
            "the value is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(())
}

/// `usage` bytes are held, `replaced` of them are freed by the write, `added` are written.
fn check_quota(usage: u64, replaced: u64, added: u64) -> Result<(), KvError> {
    let after = usage.saturating_sub(replaced).saturating_add(added);
    if after > MAX_SCOPE_BYTES {
        return Err(KvError::QuotaExceeded(format!(
            "this (plugin, tenant) would hold {after} bytes; at most {MAX_SCOPE_BYTES} are \
             allowed: delete keys or set a TTL"
        )));
    }
    Ok(())
}

/// When a value written now with `ttl_ms` expires (ms since the epoch). A TTL of 0 expires at
/// once; a TTL too large to represent never expires.
fn expires_at(ttl_ms: Option<u64>) -> Option<i64> {
    let ttl = i64::try_from(ttl_ms?).ok()?;
    now_ms().checked_add(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_1_to_256_bytes() {
        assert!(matches!(check_key(""), Err(KvError::InvalidKey(_))));
        assert!(check_key("k").is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        match check_key(&"k".repeat(MAX_KEY_BYTES + 1)) {
            Err(KvError::InvalidKey(why)) => assert!(why.contains("257 bytes")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn values_are_capped() {
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(matches!(
            check_value(&vec![0; MAX_VALUE_BYTES + 1]),
            Err(KvError::TooLarge(_))
        ));
    }

    #[test]
    fn the_quota_counts_a_replaced_value_once() {
        // Full scope: a new key does not fit, but overwriting a key with a same-size value does.
        assert!(matches!(
            check_quota(MAX_SCOPE_BYTES, 0, 10),
            Err(KvError::QuotaExceeded(_))
        ));
        assert!(check_quota(MAX_SCOPE_BYTES, 10, 10).is_ok());
        assert!(check_quota(MAX_SCOPE_BYTES - 10, 0, 10).is_ok());
    }

    #[test]
    fn ttl_becomes_an_absolute_expiry() {
        let before = now_ms();
        let at = expires_at(Some(60_000)).unwrap();
        assert!(at >= before + 60_000 && at <= now_ms() + 60_000);
        assert_eq!(expires_at(None), None);
        assert_eq!(expires_at(Some(u64::MAX)), None);
    }
}
