//! The reference-data cache of one API: GET answers kept for a TTL, shared by every plugin of a
//! tenant, dropped early by configured webhook kinds, and bounded in bytes with least-recently
//! used eviction. Only the store lives here; `client.rs` decides what may be looked up (the
//! capability check comes first, so a plugin without the grant never sees cached data).
//!
//! Key: the tenant, the cache rule's index, then method, path and query as sent, the `Version`
//! header and the request headers (the API is implicit: one cache per API). Size of an entry: its
//! key, headers and body; an entry larger than an eighth of the bound is not kept, so one large
//! answer cannot flush everything else.
//!
//! Invariants: `bytes` is the sum of the kept entries' sizes and never exceeds the bound after
//! an insert returns; every entry has exactly one position in the recency index.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use tokio::time::Instant;

use super::ApiResponse;
use crate::ids::TenantId;

/// Fixed cost counted per entry besides its text (map and index slots).
const ENTRY_OVERHEAD: usize = 128;

/// One cached answer's identity within a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Index of the cache rule that covers the path (invalidation is per rule).
    pub rule: usize,
    /// Method, path, query, `Version` and extra headers, as sent.
    pub request: String,
}

#[derive(Debug)]
struct Entry {
    response: ApiResponse,
    expires: Instant,
    /// Position in the recency index.
    used: u64,
    size: usize,
}

/// The cache of one API.
#[derive(Debug)]
pub struct Cache {
    max_bytes: usize,
    store: Mutex<Store>,
}

#[derive(Debug, Default)]
struct Store {
    tenants: HashMap<TenantId, HashMap<Key, Entry>>,
    /// Recency: counter value -> entry, oldest first.
    recency: BTreeMap<u64, (TenantId, Key)>,
    counter: u64,
    bytes: usize,
}

/// How a lookup went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh answer.
    Hit(ApiResponse),
    /// Nothing fresh.
    Miss,
}

impl Cache {
    /// A cache holding at most `max_bytes`; 0 keeps nothing.
    pub fn new(max_bytes: usize) -> Cache {
        Cache {
            max_bytes,
            store: Mutex::new(Store::default()),
        }
    }

    /// The fresh answer for `key`, if any; marks it recently used.
    pub fn get(&self, tenant: &TenantId, key: &Key, now: Instant) -> Lookup {
        let mut store = self.lock();
        let Some(entry) = store.tenants.get(tenant).and_then(|m| m.get(key)) else {
            return Lookup::Miss;
        };
        if entry.expires <= now {
            store.remove(tenant, key);
            return Lookup::Miss;
        }
        let response = entry.response.clone();
        store.touch(tenant, key);
        Lookup::Hit(response)
    }

    /// Keeps `response` for `ttl`, evicting the least recently used entries past the bound.
    /// Returns how many entries were evicted.
    pub fn put(
        &self,
        tenant: &TenantId,
        key: Key,
        response: ApiResponse,
        ttl: Duration,
        now: Instant,
    ) -> usize {
        let size = ENTRY_OVERHEAD
            + tenant.as_str().len()
            + key.request.len()
            + response.body.len()
            + response
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > self.max_bytes / 8 {
            return 0;
        }
        let mut store = self.lock();
        store.remove(tenant, &key);
        store.counter += 1;
        let used = store.counter;
        store.recency.insert(used, (tenant.clone(), key.clone()));
        store.bytes += size;
        store.tenants.entry(tenant.clone()).or_default().insert(
            key,
            Entry {
                response,
                expires: now + ttl,
                used,
                size,
            },
        );
        let mut evicted = 0;
        while store.bytes > self.max_bytes {
            let Some((_, (t, k))) = store.recency.pop_first() else {
                break;
            };
            store.remove(&t, &k);
            evicted += 1;
        }
        evicted
    }

    /// Drops `tenant`'s entries of the rules in `rules`; returns how many.
    pub fn invalidate(&self, tenant: &TenantId, rules: &[usize]) -> usize {
        let mut store = self.lock();
        let keys: Vec<Key> = store
            .tenants
            .get(tenant)
            .map(|m| {
                m.keys()
                    .filter(|k| rules.contains(&k.rule))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in &keys {
            store.remove(tenant, key);
        }
        keys.len()
    }

    /// Drops every entry of `tenant` (e.g. on uninstall); returns how many.
    pub fn forget(&self, tenant: &TenantId) -> usize {
        let mut store = self.lock();
        let keys: Vec<Key> = store
            .tenants
            .get(tenant)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key in &keys {
            store.remove(tenant, key);
        }
        keys.len()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // Every method leaves the store consistent before it can panic.
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store {
    fn remove(&mut self, tenant: &TenantId, key: &Key) {
        let Some(entries) = self.tenants.get_mut(tenant) else {
            return;
        };
        if let Some(entry) = entries.remove(key) {
            self.recency.remove(&entry.used);
            self.bytes -= entry.size;
        }
        if entries.is_empty() {
            self.tenants.remove(tenant);
        }
    }

    fn touch(&mut self, tenant: &TenantId, key: &Key) {
        self.counter += 1;
        let used = self.counter;
        if let Some(entry) = self.tenants.get_mut(tenant).and_then(|m| m.get_mut(key)) {
            self.recency.remove(&entry.used);
            entry.used = used;
            self.recency.insert(used, (tenant.clone(), key.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> ApiResponse {
        ApiResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn key(rule: usize, request: &str) -> Key {
        Key {
            rule,
            request: request.into(),
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn fresh_entries_hit_and_stale_ones_miss() {
        let cache = Cache::new(1 << 20);
        let t = TenantId::new("loc1");
        let now = Instant::now();
        cache.put(&t, key(0, "GET /p"), response("[1]"), TTL, now);
        assert_eq!(
            cache.get(&t, &key(0, "GET /p"), now + TTL / 2),
            Lookup::Hit(response("[1]"))
        );
        // Another tenant, another request: separate entries.
        assert_eq!(
            cache.get(&TenantId::new("loc2"), &key(0, "GET /p"), now),
            Lookup::Miss
        );
        assert_eq!(cache.get(&t, &key(0, "GET /p?x=1"), now), Lookup::Miss);
        assert_eq!(cache.get(&t, &key(0, "GET /p"), now + TTL), Lookup::Miss);
        assert_eq!(cache.bytes(), 0, "the stale entry was dropped");
    }

    #[test]
    fn least_recently_used_entries_go_first() {
        let body = "x".repeat(200);
        // Room for exactly eight entries of this size.
        let size = ENTRY_OVERHEAD
            + "loc1".len()
            + "GET /0".len()
            + 200
            + "content-type".len()
            + "application/json".len();
        let cache = Cache::new(size * 8);
        let t = TenantId::new("loc1");
        let now = Instant::now();
        // Fill with 8 and read the first, so the second is the oldest.
        for i in 0..8 {
            assert_eq!(
                cache.put(&t, key(0, &format!("GET /{i}")), response(&body), TTL, now),
                0
            );
        }
        assert!(matches!(
            cache.get(&t, &key(0, "GET /0"), now),
            Lookup::Hit(_)
        ));
        assert_eq!(
            cache.put(&t, key(0, "GET /8"), response(&body), TTL, now),
            1
        );
        assert_eq!(cache.get(&t, &key(0, "GET /1"), now), Lookup::Miss);
        assert!(matches!(
            cache.get(&t, &key(0, "GET /0"), now),
            Lookup::Hit(_)
        ));
        assert!(cache.bytes() <= size * 8);
    }

    #[test]
    fn oversized_answers_are_not_kept() {
        let cache = Cache::new(1024);
        let t = TenantId::new("loc1");
        cache.put(
            &t,
            key(0, "GET /big"),
            response(&"x".repeat(200)),
            TTL,
            Instant::now(),
        );
        assert_eq!(cache.bytes(), 0);
        let off = Cache::new(0);
        off.put(&t, key(0, "GET /p"), response("1"), TTL, Instant::now());
        assert_eq!(off.bytes(), 0);
    }

    #[test]
    fn invalidation_drops_one_tenant_s_rules() {
        let cache = Cache::new(1 << 20);
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let now = Instant::now();
        for t in [&a, &b] {
            cache.put(t, key(0, "GET /pipelines"), response("p"), TTL, now);
            cache.put(t, key(1, "GET /users"), response("u"), TTL, now);
        }
        assert_eq!(cache.invalidate(&a, &[0]), 1);
        assert_eq!(cache.get(&a, &key(0, "GET /pipelines"), now), Lookup::Miss);
        assert!(matches!(
            cache.get(&a, &key(1, "GET /users"), now),
            Lookup::Hit(_)
        ));
        assert!(matches!(
            cache.get(&b, &key(0, "GET /pipelines"), now),
            Lookup::Hit(_)
        ));
        assert_eq!(cache.forget(&b), 2);
        assert_eq!(cache.get(&b, &key(1, "GET /users"), now), Lookup::Miss);
    }
}
