//! The plugins' key-value data on PostgreSQL.
//!
//! Invariants:
//! - Compare-and-swap is one conditional statement: an UPDATE or DELETE whose WHERE names the
//!   expected value (PostgreSQL re-checks it on the locked row), or, when the key is expected
//!   absent, an `INSERT ... ON CONFLICT DO NOTHING`; two replicas swapping the same key at once
//!   therefore never both succeed.
//! - Expired values count as absent: every write first deletes the scope's expired entries, so
//!   they neither count against the quota nor stay on disk; reads filter them by the database's
//!   clock.

use deadpool_postgres::GenericClient;

use crate::store::{KvScope, StoreError};

async fn sweep_expired(client: &impl GenericClient, scope: &KvScope) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(
            "DELETE FROM kv WHERE plugin = $1 AND tenant = $2
               AND expires_at_ms IS NOT NULL AND expires_at_ms <= wasmhook_now_ms()",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&scope.plugin.as_str(), &scope.tenant.as_str()],
        )
        .await?;
    Ok(())
}

pub(super) async fn get(
    client: &impl GenericClient,
    scope: &KvScope,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT value FROM kv WHERE plugin = $1 AND tenant = $2 AND key = $3
               AND (expires_at_ms IS NULL OR expires_at_ms > wasmhook_now_ms())",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[&scope.plugin.as_str(), &scope.tenant.as_str(), &key],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub(super) async fn set(
    client: &mut deadpool_postgres::Object,
    scope: &KvScope,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    sweep_expired(&tx, scope).await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO kv (plugin, tenant, key, value, expires_at_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (plugin, tenant, key)
             DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &scope.plugin.as_str(),
            &scope.tenant.as_str(),
            &key,
            &value,
            &expires_at_ms,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete(
    client: &impl GenericClient,
    scope: &KvScope,
    key: &str,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached("DELETE FROM kv WHERE plugin = $1 AND tenant = $2 AND key = $3")
        .await?;
    client
        .execute(
            &statement,
            &[&scope.plugin.as_str(), &scope.tenant.as_str(), &key],
        )
        .await?;
    Ok(())
}

pub(super) async fn compare_and_swap(
    client: &mut deadpool_postgres::Object,
    scope: &KvScope,
    key: &str,
    expected: Option<&[u8]>,
    desired: Option<&[u8]>,
    expires_at_ms: Option<i64>,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await?;
    sweep_expired(&tx, scope).await?;
    let (plugin, tenant) = (scope.plugin.as_str(), scope.tenant.as_str());
    let swapped = match (expected, desired) {
        (Some(expected), Some(desired)) => {
            let statement = tx
                .prepare_cached(
                    "UPDATE kv SET value = $5, expires_at_ms = $6
                     WHERE plugin = $1 AND tenant = $2 AND key = $3 AND value = $4",
                )
                .await?;
            tx.execute(
                &statement,
                &[&plugin, &tenant, &key, &expected, &desired, &expires_at_ms],
            )
            .await?
                == 1
        }
        (Some(expected), None) => {
            let statement = tx
                .prepare_cached(
                    "DELETE FROM kv WHERE plugin = $1 AND tenant = $2 AND key = $3 AND value = $4",
                )
                .await?;
            tx.execute(&statement, &[&plugin, &tenant, &key, &expected])
                .await?
                == 1
        }
        (None, Some(desired)) => {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO kv (plugin, tenant, key, value, expires_at_ms)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (plugin, tenant, key) DO NOTHING",
                )
                .await?;
            tx.execute(
                &statement,
                &[&plugin, &tenant, &key, &desired, &expires_at_ms],
            )
            .await?
                == 1
        }
        (None, None) => get(&tx, scope, key).await?.is_none(),
    };
    tx.commit().await?;
    Ok(swapped)
}

/// Bytes of keys (UTF-8) + values of the scope's unexpired entries.
pub(super) async fn usage(client: &impl GenericClient, scope: &KvScope) -> Result<u64, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT coalesce(sum(octet_length(key) + octet_length(value)), 0)::bigint FROM kv
             WHERE plugin = $1 AND tenant = $2
               AND (expires_at_ms IS NULL OR expires_at_ms > wasmhook_now_ms())",
        )
        .await?;
    let used: i64 = client
        .query_one(
            &statement,
            &[&scope.plugin.as_str(), &scope.tenant.as_str()],
        )
        .await?
        .try_get(0)?;
    Ok(u64::try_from(used).unwrap_or(0))
}
