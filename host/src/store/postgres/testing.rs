//! Test databases: a fresh, uniquely named schema per test on the server named by
//! `WASMHOOK_TEST_POSTGRES_URL`, so tests run in parallel on one database without seeing each
//! other's rows. Compiled into the library (like `conformance`) so the end-to-end tests can
//! use it too.
//!
//! Without the variable the tests fail, saying how to set it: PostgreSQL tests never skip.

use std::sync::atomic::{AtomicU64, Ordering};

use super::PostgresStore;
use crate::{
    config::PostgresUrl,
    ids::now_ms,
    store::{StoreError, StoreOptions},
};

/// The variable naming the test server.
pub const TEST_URL_ENV: &str = "WASMHOOK_TEST_POSTGRES_URL";

/// Connections each test store keeps at most: enough for the concurrency checks, few enough
/// that many tests in parallel stay under the server's `max_connections`.
pub const TEST_POOL_SIZE: usize = 4;

/// A schema made for one test; [`TestSchema::drop`] removes it with everything in it.
pub struct TestSchema {
    base: String,
    name: String,
}

impl TestSchema {
    /// Creates a new empty schema on the test server. Panics, saying what to set, when
    /// `WASMHOOK_TEST_POSTGRES_URL` is unset or the server does not answer.
    pub async fn create() -> TestSchema {
        let base = std::env::var(TEST_URL_ENV).unwrap_or_else(|_| {
            panic!(
                "{TEST_URL_ENV} is not set: the PostgreSQL tests need a server. Set it, e.g. \
                 {TEST_URL_ENV}=postgres://postgres@127.0.0.1:5432/test (scripts/test sets \
                 this default)"
            )
        });
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "wasmhook_test_{}_{}_{}",
            std::process::id(),
            now_ms(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let schema = TestSchema { base, name };
        schema
            .admin(&format!("CREATE SCHEMA {}", schema.name))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "cannot create a test schema on {TEST_URL_ENV}={}: {err}. Is PostgreSQL \
                     running there?",
                    crate::config::redact_url(&schema.base)
                )
            });
        schema
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server URL with this schema as every connection's `search_path`.
    pub fn url(&self) -> PostgresUrl {
        // `%20`, not `+`: the driver percent-decodes the URL but reads `+` as itself.
        let separator = if self.base.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base, self.name
        );
        PostgresUrl::parse(&url).expect("the test URL with options parses")
    }

    /// A store on this schema (migrated).
    pub async fn open(&self) -> PostgresStore {
        self.open_with(StoreOptions::default()).await
    }

    /// A store on this schema with `options` (migrated).
    pub async fn open_with(&self, options: StoreOptions) -> PostgresStore {
        PostgresStore::open(&self.url(), TEST_POOL_SIZE, options)
            .await
            .unwrap_or_else(|err| panic!("opening a store on schema {}: {err}", self.name))
    }

    /// Drops the schema and everything in it.
    pub async fn drop(self) {
        if let Err(err) = self
            .admin(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
        {
            tracing::warn!(schema = %self.name, error = %err, "could not drop a test schema");
        }
    }

    /// Runs `sql` on a one-off connection to the server (outside the schema).
    async fn admin(&self, sql: &str) -> Result<(), StoreError> {
        let (client, connection) =
            tokio_postgres::connect(&self.base, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        let result = client.batch_execute(sql).await;
        drop(client);
        let _ = task.await;
        Ok(result?)
    }
}
