//! `wasmhook migrate`: brings the configured store's schema up to date and says what it did.
//!
//! `serve` migrates at start too; this command lets an operator do it ahead of a rolling
//! deploy. On PostgreSQL it is safe while replicas run or start (the migration lock), on
//! SQLite only while no server holds the file (the store's process lock refuses otherwise).

use std::{path::Path, process::ExitCode};

use crate::{
    config::{Config, StoreUrl},
    store::{StoreError, postgres::PostgresStore, sqlite::SqliteStore},
};

pub fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(migrate(&config));
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmhook migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Migrates the configured store; says what it did.
async fn migrate(config: &Config) -> Result<String, StoreError> {
    match &config.storage.url {
        StoreUrl::Sqlite(db) => {
            let store = SqliteStore::open(db).await?;
            store.close().await;
            Ok(format!("SQLite store {}: schema up to date", db.display()))
        }
        StoreUrl::Postgres(url) => {
            let applied = PostgresStore::migrate_url(url).await?;
            Ok(match applied.as_slice() {
                [] => format!("PostgreSQL store {url}: schema up to date, nothing applied"),
                versions => format!(
                    "PostgreSQL store {url}: applied migration(s) {}",
                    versions
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    }
}
