//! Connection settings and the schema of the SQLite store.
//!
//! Owns the pragmas every connection gets and the numbered, append-only list of migrations.
//! Invariants:
//! - `schema_migrations` holds one row per applied migration; a migration runs at most once and
//!   in its own transaction, so a crash mid-migration leaves the previous version intact.
//! - A released migration is never edited: later issues add tables by appending a new entry.
//! - A database written by a newer wasmhook (a version this binary does not know) is refused
//!   rather than guessed at.

use std::{path::Path, time::Duration};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{ids::now_ms, store::StoreError};

/// How long a connection waits for a lock held by another connection before `SQLITE_BUSY`.
/// Writes never contend (one writer thread), but a reader can meet a checkpoint, and an operator
/// may have the file open in the `sqlite3` shell.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements each connection keeps; comfortably above the number of distinct queries.
const STATEMENT_CACHE: usize = 64;

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
        name: "events, deliveries, attempts, kv",
        sql: r#"
        CREATE TABLE events (
            source          TEXT    NOT NULL,
            id              TEXT    NOT NULL,
            kind            TEXT    NOT NULL,
            tenant          TEXT    NOT NULL,
            received_at_ms  INTEGER NOT NULL,
            payload         BLOB    NOT NULL,
            PRIMARY KEY (source, id)
        ) WITHOUT ROWID;
        CREATE INDEX events_by_received ON events (received_at_ms);

        CREATE TABLE deliveries (
            id              TEXT    NOT NULL PRIMARY KEY,
            source          TEXT    NOT NULL,
            event_id        TEXT    NOT NULL,
            plugin          TEXT    NOT NULL,
            tenant          TEXT    NOT NULL,
            state           TEXT    NOT NULL
                CHECK (state IN ('pending', 'running', 'succeeded', 'dead')),
            attempts_made   INTEGER NOT NULL DEFAULT 0,
            max_attempts    INTEGER NOT NULL,
            -- pending: when it is due; running: when its lease expires; otherwise: when it ended.
            due_at_ms       INTEGER NOT NULL,
            lease_token     TEXT,
            -- when the running attempt was claimed (to date a lost attempt), NULL otherwise
            claimed_at_ms   INTEGER,
            created_at_ms   INTEGER NOT NULL,
            FOREIGN KEY (source, event_id) REFERENCES events (source, id) ON DELETE CASCADE
        );
        CREATE INDEX deliveries_due ON deliveries (state, due_at_ms);
        CREATE INDEX deliveries_by_event ON deliveries (source, event_id);
        CREATE INDEX deliveries_newest ON deliveries (created_at_ms, id);

        CREATE TABLE attempts (
            delivery_id     TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
            attempt         INTEGER NOT NULL,
            started_at_ms   INTEGER NOT NULL,
            finished_at_ms  INTEGER NOT NULL,
            outcome         TEXT    NOT NULL,
            error           TEXT,
            logs            TEXT    NOT NULL DEFAULT '[]',
            PRIMARY KEY (delivery_id, attempt)
        ) WITHOUT ROWID;

        CREATE TABLE kv (
            plugin          TEXT    NOT NULL,
            tenant          TEXT    NOT NULL,
            key             TEXT    NOT NULL,
            value           BLOB    NOT NULL,
            expires_at_ms   INTEGER,
            PRIMARY KEY (plugin, tenant, key)
        ) WITHOUT ROWID;
        CREATE INDEX kv_expiry ON kv (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
    "#,
    },
    Migration {
        version: 2,
        name: "ordering keys, per-plugin claims, deferral notes, replay budgets, data minimisation",
        sql: r#"
        -- The value of the plugin's ordering_key pointer in the payload (NULL: unordered).
        ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
        -- Why a pending delivery waits without having spent an attempt, or that it was replayed.
        ALTER TABLE deliveries ADD COLUMN note TEXT;
        -- The attempts the delivery was created with; a replay grants this many again.
        ALTER TABLE deliveries ADD COLUMN attempt_budget INTEGER NOT NULL DEFAULT 0;
        UPDATE deliveries SET attempt_budget = max_attempts;

        -- Kept after the payload is dropped, so that what was received can still be proven.
        ALTER TABLE events ADD COLUMN payload_sha256 TEXT;
        -- Set when the payload was dropped because every delivery succeeded.
        ALTER TABLE events ADD COLUMN payload_dropped_at_ms INTEGER;

        -- Per-plugin claims (concurrency limits) look up one plugin's due deliveries.
        CREATE INDEX deliveries_plugin_due ON deliveries (plugin, state, due_at_ms);
        -- "Is an earlier delivery with this key still pending or running?" (ordering).
        CREATE INDEX deliveries_ordering ON deliveries (plugin, ordering_key)
            WHERE ordering_key IS NOT NULL AND state IN ('pending', 'running');
        -- Erasure by tenant.
        CREATE INDEX deliveries_by_tenant ON deliveries (tenant);
        CREATE INDEX events_by_tenant ON events (tenant);
    "#,
    },
    Migration {
        version: 3,
        name: "installations and company -> location links",
        sql: r#"
        CREATE TABLE installations (
            api             TEXT    NOT NULL,
            tenant          TEXT    NOT NULL,
            state           TEXT    NOT NULL
                CHECK (state IN ('pending', 'active', 'needs-reauth', 'uninstalled')),
            -- the sender's time of the change; older changes never overwrite newer ones
            state_at_ms     INTEGER NOT NULL,
            created_at_ms   INTEGER NOT NULL,
            updated_at_ms   INTEGER NOT NULL,
            PRIMARY KEY (api, tenant)
        ) WITHOUT ROWID;

        -- A company (agency) installation covers these locations.
        CREATE TABLE installation_links (
            api             TEXT    NOT NULL,
            company         TEXT    NOT NULL,
            location        TEXT    NOT NULL,
            created_at_ms   INTEGER NOT NULL,
            PRIMARY KEY (api, location, company)
        ) WITHOUT ROWID;
        CREATE INDEX installation_links_by_company ON installation_links (api, company);
    "#,
    },
    Migration {
        version: 4,
        name: "sealed credentials, refresh leases, uninstall erasure",
        sql: r#"
        -- Token values are sealed (AES-256-GCM, AAD = api + tenant + field) under `key_id`;
        -- no plaintext token is ever written here.
        CREATE TABLE credentials (
            api                     TEXT    NOT NULL,
            tenant                  TEXT    NOT NULL,
            kind                    TEXT    NOT NULL CHECK (kind IN ('oauth', 'minted', 'static')),
            key_id                  TEXT    NOT NULL,
            access                  BLOB    NOT NULL,
            refresh                 BLOB,
            previous                BLOB,
            previous_until_ms       INTEGER,
            expires_at_ms           INTEGER,
            issued_at_ms            INTEGER NOT NULL,
            scopes                  TEXT    NOT NULL DEFAULT '',
            user_type               TEXT,
            company                 TEXT,
            -- the in-flight refresh marker: a refresh holds the row until then
            refresh_lease_until_ms  INTEGER,
            version                 INTEGER NOT NULL,
            updated_at_ms           INTEGER NOT NULL,
            PRIMARY KEY (api, tenant)
        ) WITHOUT ROWID;

        -- The UNINSTALL event that made the tombstone: the tenant is erased once its
        -- deliveries are done; then erased_at_ms is set (cleared again by a new INSTALL).
        ALTER TABLE installations ADD COLUMN uninstall_source TEXT;
        ALTER TABLE installations ADD COLUMN uninstall_event TEXT;
        ALTER TABLE installations ADD COLUMN erased_at_ms INTEGER;
        CREATE INDEX installations_to_erase ON installations (updated_at_ms)
            WHERE state = 'uninstalled' AND erased_at_ms IS NULL;
    "#,
    },
    Migration {
        version: 5,
        name: "events appended in arrival order (a rowid table)",
        sql: r#"
        -- As a WITHOUT ROWID table, each event (about 1 KB with its payload) lived inside the
        -- (source, id) B-tree: every insert landed on a random leaf holding only a few rows and
        -- split it often, so a durable commit wrote ~19 KiB of WAL per event. As a rowid table
        -- the rows are appended in arrival order and only the small (source, id) index is written
        -- at random: ~9 KiB per event, half the bytes every group commit writes and fsyncs.
        -- Rebuilt the way SQLite documents (new table, copy, drop, rename) with foreign keys
        -- off (see `open_writer`), so dropping the old table cascades to no delivery.
        CREATE TABLE events_appended (
            source                  TEXT    NOT NULL,
            id                      TEXT    NOT NULL,
            kind                    TEXT    NOT NULL,
            tenant                  TEXT    NOT NULL,
            received_at_ms          INTEGER NOT NULL,
            payload                 BLOB    NOT NULL,
            payload_sha256          TEXT,
            payload_dropped_at_ms   INTEGER,
            UNIQUE (source, id)
        );
        INSERT INTO events_appended (source, id, kind, tenant, received_at_ms, payload,
                                     payload_sha256, payload_dropped_at_ms)
            SELECT source, id, kind, tenant, received_at_ms, payload, payload_sha256,
                   payload_dropped_at_ms
            FROM events ORDER BY received_at_ms;
        DROP TABLE events;
        ALTER TABLE events_appended RENAME TO events;
        CREATE INDEX events_by_received ON events (received_at_ms);
        CREATE INDEX events_by_tenant ON events (tenant);
    "#,
    },
];

/// The newest schema version this binary knows.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Opens the one write connection: creates the database if needed, sets the durability pragmas
/// and brings the schema up to date.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

    // WAL: readers never block the writer and the writer never blocks readers, and a commit
    // appends to one file instead of rewriting pages in place. The mode is stored in the file;
    // SQLite answers with the mode it actually chose (e.g. not on some network filesystems).
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "the database refused WAL mode (it chose `{mode}`); put it on a local filesystem"
        )));
    }
    // FULL: in WAL mode, NORMAL may lose the last commits on power loss, while a 200 promises
    // the event is on disk. FULL fsyncs the WAL at every commit; group commit shares that fsync
    // between every write queued at the time, which is what keeps FULL fast.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Deleted content is overwritten with zeros, so erased tenants and (later) rotated
    // credentials do not linger in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    // Migrations run with foreign keys off, as SQLite requires for rebuilding a table: dropping
    // the old `events` with them on would delete every delivery through ON DELETE CASCADE. The
    // check afterwards proves the rebuilt tables still satisfy every reference.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    migrate(&mut conn)?;
    let broken: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()?;
    if let Some(table) = broken {
        return Err(StoreError::Corrupt(format!(
            "rows of `{table}` reference rows that do not exist (PRAGMA foreign_key_check)"
        )));
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Opens a read connection. It cannot write (`query_only`), so every write stays on the writer
/// thread and `SQLITE_BUSY` cannot arise between writers.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Applies every migration newer than the database's version, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version        INTEGER NOT NULL PRIMARY KEY,
             name           TEXT    NOT NULL,
             applied_at_ms  INTEGER NOT NULL
         )",
    )?;
    let current: i64 = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    let latest = latest_version();
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(migration.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![migration.version, migration.name, now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied store migration"
        );
    }
    Ok(())
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

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(open_writer(&path).unwrap());
        let conn = open_writer(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, latest_version());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = open_writer(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (999, 'future', 0)",
            [],
        )
        .unwrap();
        drop(conn);
        match open_writer(&path) {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!(found, 999);
                assert_eq!(supported, latest_version());
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn events_move_to_the_appended_table_with_their_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        // A database as version 4 left it, holding one event with one delivery.
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY,
                     name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
            )
            .unwrap();
            for m in MIGRATIONS.iter().filter(|m| m.version <= 4) {
                conn.execute_batch(m.sql).unwrap();
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                    rusqlite::params![m.version, m.name],
                )
                .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO events (source, id, kind, tenant, received_at_ms, payload,
                                     payload_sha256)
                 VALUES ('hl', 'e1', 'ContactCreate', 'loc-1', 5, x'7b7d', 'abc');
                 INSERT INTO deliveries (id, source, event_id, plugin, tenant, state,
                                         max_attempts, due_at_ms, created_at_ms)
                 VALUES ('d1', 'hl', 'e1', 'p', 'loc-1', 'pending', 3, 5, 5);",
            )
            .unwrap();
        }
        let conn = open_writer(&path).unwrap();
        let table: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!table.contains("WITHOUT ROWID"), "{table}");
        let (kind, sha): (String, String) = conn
            .query_row(
                "SELECT kind, payload_sha256 FROM events WHERE source = 'hl' AND id = 'e1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), sha.as_str()), ("ContactCreate", "abc"));
        let count = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&conn), 1, "the rebuild kept the delivery");
        // The reference still holds: a duplicate is refused, deleting the event cascades.
        assert!(
            conn.execute(
                "INSERT INTO events (source, id, kind, tenant, received_at_ms, payload)
                 VALUES ('hl', 'e1', 'x', 't', 6, x'')",
                [],
            )
            .is_err()
        );
        conn.execute("DELETE FROM events WHERE id = 'e1'", [])
            .unwrap();
        assert_eq!(count(&conn), 0);
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let _writer = open_writer(&path).unwrap();
        let reader = open_reader(&path).unwrap();
        let err = reader
            .execute("DELETE FROM events", [])
            .expect_err("a reader must not write");
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
