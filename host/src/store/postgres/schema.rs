//! The schema of the PostgreSQL store and its migrations.
//!
//! Invariants:
//! - `schema_migrations` holds one row per applied migration. All pending migrations run in ONE
//!   transaction under a transaction-level advisory lock keyed by the schema, so two replicas
//!   starting at once apply each migration exactly once: the second waits for the first, then
//!   finds nothing left to do. PostgreSQL's DDL is transactional, so a crash mid-migration
//!   leaves the previous version intact.
//! - A released migration is never edited: later changes append a new entry.
//! - A database written by a newer wasmhook (a version this binary does not know) is refused.
//! - No extension is needed: the only function is plain SQL (`wasmhook_now_ms`, the database's
//!   clock in the store's unit), and every key column uses the `C` collation so text orders by
//!   bytes, as in the SQLite store, whatever the database's locale.

use deadpool_postgres::GenericClient;

use crate::store::StoreError;

/// One schema step.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Append only.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, deliveries, attempts, kv, installations, credentials",
        sql: r#"
    -- The store's clock: milliseconds since the epoch, from the database (never a replica's).
    CREATE FUNCTION wasmhook_now_ms() RETURNS bigint LANGUAGE sql STABLE
        AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

    CREATE TABLE events (
        source                  TEXT COLLATE "C" NOT NULL,
        id                      TEXT COLLATE "C" NOT NULL,
        kind                    TEXT    NOT NULL,
        tenant                  TEXT COLLATE "C" NOT NULL,
        received_at_ms          BIGINT  NOT NULL,
        payload                 BYTEA   NOT NULL,
        -- kept after the payload is dropped, so what was received can still be proven
        payload_sha256          TEXT,
        payload_dropped_at_ms   BIGINT,
        PRIMARY KEY (source, id)
    );
    CREATE INDEX events_by_received ON events (received_at_ms);
    CREATE INDEX events_by_tenant ON events (tenant, source, id);

    CREATE TABLE deliveries (
        -- insertion order: ordering keys run same-key deliveries in this order
        seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        source          TEXT COLLATE "C" NOT NULL,
        event_id        TEXT COLLATE "C" NOT NULL,
        plugin          TEXT COLLATE "C" NOT NULL,
        tenant          TEXT COLLATE "C" NOT NULL,
        state           TEXT    NOT NULL
            CHECK (state IN ('pending', 'running', 'succeeded', 'dead')),
        attempts_made   BIGINT  NOT NULL DEFAULT 0,
        max_attempts    BIGINT  NOT NULL,
        -- the attempts the delivery was created with; a replay grants this many again
        attempt_budget  BIGINT  NOT NULL,
        -- pending: when it is due; running: when its lease expires; otherwise: when it ended
        due_at_ms       BIGINT  NOT NULL,
        lease_token     TEXT,
        claimed_at_ms   BIGINT,
        created_at_ms   BIGINT  NOT NULL,
        ordering_key    TEXT COLLATE "C",
        note            TEXT,
        FOREIGN KEY (source, event_id) REFERENCES events (source, id) ON DELETE CASCADE
    );
    CREATE INDEX deliveries_due ON deliveries (state, due_at_ms, seq);
    CREATE INDEX deliveries_plugin_due ON deliveries (plugin, state, due_at_ms, seq);
    CREATE INDEX deliveries_by_event ON deliveries (source, event_id);
    CREATE INDEX deliveries_newest ON deliveries (created_at_ms, id);
    CREATE INDEX deliveries_by_tenant ON deliveries (tenant);
    CREATE INDEX deliveries_ordering ON deliveries (plugin, ordering_key, seq)
        WHERE ordering_key IS NOT NULL AND state IN ('pending', 'running');

    CREATE TABLE attempts (
        delivery_id     TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        attempt         BIGINT  NOT NULL,
        started_at_ms   BIGINT  NOT NULL,
        finished_at_ms  BIGINT  NOT NULL,
        outcome         TEXT    NOT NULL,
        error           TEXT,
        logs            TEXT    NOT NULL DEFAULT '[]',
        PRIMARY KEY (delivery_id, attempt)
    );
    CREATE INDEX attempts_finished ON attempts (finished_at_ms);

    CREATE TABLE kv (
        plugin          TEXT COLLATE "C" NOT NULL,
        tenant          TEXT COLLATE "C" NOT NULL,
        key             TEXT COLLATE "C" NOT NULL,
        value           BYTEA   NOT NULL,
        expires_at_ms   BIGINT,
        PRIMARY KEY (plugin, tenant, key)
    );
    CREATE INDEX kv_by_tenant ON kv (tenant);

    CREATE TABLE installations (
        api             TEXT COLLATE "C" NOT NULL,
        tenant          TEXT COLLATE "C" NOT NULL,
        state           TEXT    NOT NULL
            CHECK (state IN ('pending', 'active', 'needs-reauth', 'uninstalled')),
        -- the sender's time of the change; older changes never overwrite newer ones
        state_at_ms     BIGINT  NOT NULL,
        created_at_ms   BIGINT  NOT NULL,
        updated_at_ms   BIGINT  NOT NULL,
        -- the UNINSTALL event that made a tombstone; erased once its deliveries are done
        uninstall_source TEXT COLLATE "C",
        uninstall_event TEXT COLLATE "C",
        erased_at_ms    BIGINT,
        PRIMARY KEY (api, tenant)
    );
    CREATE INDEX installations_to_erase ON installations (updated_at_ms)
        WHERE state = 'uninstalled' AND erased_at_ms IS NULL;

    CREATE TABLE installation_links (
        api             TEXT COLLATE "C" NOT NULL,
        company         TEXT COLLATE "C" NOT NULL,
        location        TEXT COLLATE "C" NOT NULL,
        created_at_ms   BIGINT  NOT NULL,
        PRIMARY KEY (api, location, company)
    );
    CREATE INDEX installation_links_by_company ON installation_links (api, company);

    -- Token values are sealed (AES-256-GCM, AAD = api + tenant + field) under key_id;
    -- no plaintext token is ever written here.
    CREATE TABLE credentials (
        api                     TEXT COLLATE "C" NOT NULL,
        tenant                  TEXT COLLATE "C" NOT NULL,
        kind                    TEXT    NOT NULL CHECK (kind IN ('oauth', 'minted', 'static')),
        key_id                  TEXT    NOT NULL,
        access                  BYTEA   NOT NULL,
        refresh                 BYTEA,
        previous                BYTEA,
        previous_until_ms       BIGINT,
        expires_at_ms           BIGINT,
        issued_at_ms            BIGINT  NOT NULL,
        scopes                  TEXT    NOT NULL DEFAULT '',
        user_type               TEXT,
        company                 TEXT,
        -- the in-flight refresh marker: a refresh holds the row until then
        refresh_lease_until_ms  BIGINT,
        version                 BIGINT  NOT NULL,
        updated_at_ms           BIGINT  NOT NULL,
        PRIMARY KEY (api, tenant)
    );
"#,
    },
    Migration {
        version: 2,
        name: "shared rate budgets",
        sql: r#"
    -- One row per API request sent on behalf of (api, tenant) in the current window, by every
    -- replica: the shared budget (see `pacing`). Rows older than the window are deleted by the
    -- next take.
    CREATE TABLE rate_slots (
        api             TEXT COLLATE "C" NOT NULL,
        tenant          TEXT COLLATE "C" NOT NULL,
        taken_at_ms     BIGINT  NOT NULL,
        seq             BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (api, tenant, seq)
    );
    CREATE INDEX rate_slots_by_time ON rate_slots (api, tenant, taken_at_ms);
"#,
    },
];

/// The newest schema version this binary knows.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the schema up to date: every migration newer than the database's version, in one
/// transaction under the migration lock. Returns the versions it applied.
pub(super) async fn migrate(
    client: &mut deadpool_postgres::Object,
) -> Result<Vec<i64>, StoreError> {
    let tx = client.transaction().await?;
    // Keyed by the schema, so stores in different schemas of one database do not wait for
    // each other, and replicas on the same schema do.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('wasmhook.migrate.' || current_schema(), 0))",
        &[],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version        BIGINT  NOT NULL PRIMARY KEY,
             name           TEXT    NOT NULL,
             applied_at_ms  BIGINT  NOT NULL
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let latest = latest_version();
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest,
        });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms)
             VALUES ($1, $2, (extract(epoch FROM now()) * 1000)::bigint)",
            &[&migration.version, &migration.name],
        )
        .await?;
        applied.push(migration.version);
    }
    tx.commit().await?;
    for version in &applied {
        tracing::info!(version, "applied store migration (PostgreSQL)");
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version,
                i as i64 + 1,
                "migration `{}` is out of order",
                m.name
            );
        }
    }
}
