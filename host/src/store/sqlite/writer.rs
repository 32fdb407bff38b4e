//! The writer thread: the only connection that writes, and its group commit.
//!
//! Invariants:
//! - Every write (ingest, claim, renew, complete, kv) runs here, one at a time, so two writes
//!   never contend for SQLite's lock and `SQLITE_BUSY` cannot happen between them.
//! - Whatever is queued when the thread wakes (up to [`MAX_BATCH`]) runs in ONE transaction, each
//!   command inside its own SAVEPOINT: a failing command rolls back only its own changes.
//! - Callers hear back only after the COMMIT that made their change durable (one fsync for the
//!   whole batch). If the commit fails, every command of the batch reports the failure; none of
//!   them is reported as done.
//! - The thread is a plain OS thread: SQLite calls block, and must never stall tokio's workers.

use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{
    credentials::CredentialOp,
    installations::{InstallationOp, InstallationOutput},
    lock::ProcessLock,
    writes::{self, PreparedIngest},
};
use crate::{
    ids::{DeliveryId, LeaseToken, TenantId},
    store::{
        AttemptRecord, ClaimRequest, Claimed, Completion, IngestOutcome, KvScope, Pacing,
        PurgeFilter, Removed, ReplayFilter, RetentionCutoffs, StoreError, StoreOptions,
    },
};

/// Most commands committed together. Bounds the latency one batch adds to the next callers and
/// the size of a single transaction; at ~10 µs per ingest a full batch is a few milliseconds.
pub(super) const MAX_BATCH: usize = 512;

/// Queue length in front of the writer. Callers wait (asynchronously) when it is full, which
/// pushes back on ingress instead of growing memory without bound.
pub(super) const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// One write.
#[derive(Debug)]
pub(super) enum Op {
    Ingest(PreparedIngest),
    Claim(ClaimRequest),
    Renew {
        id: DeliveryId,
        token: LeaseToken,
        lease: Duration,
    },
    Complete {
        id: DeliveryId,
        token: LeaseToken,
        completion: Completion,
        attempt: AttemptRecord,
    },
    Defer {
        id: DeliveryId,
        token: LeaseToken,
        at_ms: i64,
        note: String,
    },
    Replay {
        id: DeliveryId,
    },
    ReplayDead {
        filter: ReplayFilter,
        pacing: Pacing,
        limit: usize,
    },
    Cancel {
        id: DeliveryId,
    },
    PurgeDead {
        filter: PurgeFilter,
        limit: usize,
    },
    CollectGarbage {
        cutoffs: RetentionCutoffs,
        limit: usize,
    },
    /// Deletes up to `limit` of the tenant's events (with deliveries and attempts), or when
    /// none are left, up to `limit` of its kv entries.
    EraseTenantBatch {
        tenant: TenantId,
        limit: usize,
    },
    /// Deletes these events (source, id) with their deliveries and attempts.
    EraseEvents {
        keys: Vec<(String, String)>,
    },
    KvSet {
        scope: KvScope,
        key: String,
        value: Vec<u8>,
        expires_at_ms: Option<i64>,
    },
    KvDelete {
        scope: KvScope,
        key: String,
    },
    KvCompareAndSwap {
        scope: KvScope,
        key: String,
        expected: Option<Vec<u8>>,
        desired: Option<Vec<u8>>,
        expires_at_ms: Option<i64>,
    },
    /// Reads the write connection's settings (they are per connection, so only the writer can
    /// report its own).
    Settings,
    /// A write of the installations tables (`installations.rs`). Boxed: a gated ingest carries
    /// an event and its facts, and every queued message would otherwise be that large.
    Installations(Box<InstallationOp>),
    /// A write of the credentials table (`credentials.rs`); boxed, as a record is large.
    Credentials(Box<CredentialOp>),
}

/// The settings in effect on the write connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `wal` when write-ahead logging is on.
    pub journal_mode: String,
    /// SQLite's number for `synchronous`: 0 off, 1 normal, 2 full, 3 extra.
    pub synchronous: i64,
    /// Whether deleted content is overwritten on disk.
    pub secure_delete: bool,
    /// Whether foreign keys (deliveries -> events, attempts -> deliveries) are enforced.
    pub foreign_keys: bool,
}

/// What a write produced.
#[derive(Debug)]
pub(super) enum Output {
    Ingested(IngestOutcome),
    Claimed(Vec<Claimed>),
    Done,
    Swapped(bool),
    Settings(ConnectionSettings),
    Installations(InstallationOutput),
    /// Rows a write changed.
    Count(u64),
    Ids(Vec<DeliveryId>),
    Removed(Removed),
}

impl Output {
    fn mismatch(self, wanted: &str) -> StoreError {
        // Unreachable unless `writes::apply` pairs an op with the wrong output.
        StoreError::Corrupt(format!(
            "the writer answered {self:?} where {wanted} was expected"
        ))
    }

    pub(super) fn into_ingested(self) -> Result<IngestOutcome, StoreError> {
        match self {
            Output::Ingested(outcome) => Ok(outcome),
            other => Err(other.mismatch("an ingest outcome")),
        }
    }

    pub(super) fn into_claimed(self) -> Result<Vec<Claimed>, StoreError> {
        match self {
            Output::Claimed(claimed) => Ok(claimed),
            other => Err(other.mismatch("claimed deliveries")),
        }
    }

    pub(super) fn into_done(self) -> Result<(), StoreError> {
        match self {
            Output::Done => Ok(()),
            other => Err(other.mismatch("no value")),
        }
    }

    pub(super) fn into_swapped(self) -> Result<bool, StoreError> {
        match self {
            Output::Swapped(swapped) => Ok(swapped),
            other => Err(other.mismatch("a swap result")),
        }
    }

    pub(super) fn into_installations(self) -> Result<InstallationOutput, StoreError> {
        match self {
            Output::Installations(output) => Ok(output),
            other => Err(other.mismatch("an installation write's output")),
        }
    }

    pub(super) fn into_count(self) -> Result<u64, StoreError> {
        match self {
            Output::Count(n) => Ok(n),
            other => Err(other.mismatch("a row count")),
        }
    }

    pub(super) fn into_ids(self) -> Result<Vec<DeliveryId>, StoreError> {
        match self {
            Output::Ids(ids) => Ok(ids),
            other => Err(other.mismatch("delivery ids")),
        }
    }

    pub(super) fn into_removed(self) -> Result<Removed, StoreError> {
        match self {
            Output::Removed(removed) => Ok(removed),
            other => Err(other.mismatch("removal counts")),
        }
    }

    pub(super) fn into_settings(self) -> Result<ConnectionSettings, StoreError> {
        match self {
            Output::Settings(settings) => Ok(settings),
            other => Err(other.mismatch("connection settings")),
        }
    }
}

/// Where a caller waits for its result.
pub(super) type Reply = oneshot::Sender<Result<Output, StoreError>>;

/// What callers send to the writer.
#[derive(Debug)]
pub(super) enum Message {
    Run {
        op: Op,
        reply: Reply,
    },
    /// Finish what is queued, accept nothing more, and exit.
    Close,
}

/// The writer thread's body. Returns when every sender is gone or after `Close`, once the queue
/// is drained; then closes the connection and, last, releases the process lock.
pub(super) fn run(
    conn: Connection,
    mut queue: mpsc::Receiver<Message>,
    lock: ProcessLock,
    options: StoreOptions,
) {
    let mut batch: Vec<(Op, Reply)> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Run { op, reply } => batch.push((op, reply)),
                // Refuse new messages; those already queued are still received and run below.
                Message::Close => queue.close(),
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            metrics::histogram!("wasmhook_store_write_batch_size").record(batch.len() as f64);
            run_batch(&conn, &mut batch, &options);
        }
    }
    if let Err((_, err)) = conn.close() {
        tracing::error!(error = %err, "closing the store's write connection failed");
    }
    // The lock goes last, so that a new process can never open the file while this one still
    // writes to it.
    drop(lock);
}

/// Runs `batch` as one transaction with one savepoint per command, commits, then replies.
pub(super) fn run_batch(conn: &Connection, batch: &mut Vec<(Op, Reply)>, options: &StoreOptions) {
    let mut finished: Vec<(Reply, Result<Output, StoreError>)> = Vec::with_capacity(batch.len());
    let mut in_transaction = false;
    for (op, reply) in batch.drain(..) {
        if !in_transaction {
            // IMMEDIATE takes the write lock at once instead of on the first write.
            if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
                finished.push((reply, Err(err.into())));
                continue;
            }
            in_transaction = true;
        }
        let result = run_one(conn, op, options);
        if let Err(err) = &result
            && conn.is_autocommit()
        {
            // SQLite rolled the whole transaction back (disk full, I/O error, ...): the commands
            // before this one lost their changes too and must not be reported as done.
            tracing::error!(error = %err, "a store write rolled back its whole batch");
            undo_successes(&mut finished, err);
            in_transaction = false;
        }
        finished.push((reply, result));
    }
    if in_transaction && let Err(err) = commit(conn) {
        tracing::error!(error = %err, "committing a batch of store writes failed");
        if !conn.is_autocommit() {
            // Leave no half-open transaction behind for the next batch.
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %rollback, "rolling back a failed batch failed");
            }
        }
        undo_successes(&mut finished, &StoreError::Sqlite(err));
    }
    for (reply, result) in finished {
        // A caller that stopped waiting (e.g. its request was cancelled) is no error: its write
        // stands, exactly as if the answer had been lost on the way back.
        let _ = reply.send(result);
    }
}

/// Commits the open transaction: where the batch's one fsync happens, so it is timed.
fn commit(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    conn.execute_batch("COMMIT")?;
    metrics::histogram!("wasmhook_store_commit_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs one command inside its own savepoint.
fn run_one(conn: &Connection, op: Op, options: &StoreOptions) -> Result<Output, StoreError> {
    // Cached statements: these two run for every command, and parsing them each time would
    // cost as much as a small ingest.
    conn.prepare_cached("SAVEPOINT command")?.execute([])?;
    match writes::apply(conn, op, options) {
        Ok(output) => {
            conn.prepare_cached("RELEASE command")?.execute([])?;
            Ok(output)
        }
        Err(err) => {
            if !conn.is_autocommit()
                && let Err(rollback) = conn.execute_batch("ROLLBACK TO command; RELEASE command")
            {
                // The command's partial changes cannot be undone alone: drop the whole
                // transaction rather than commit half a command. The caller sees
                // `is_autocommit()` and fails the batch's earlier commands.
                tracing::error!(error = %rollback, "rolling back a failed store write failed");
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(err)
        }
    }
}

/// Turns every success in `finished` into an error: their transaction was rolled back.
fn undo_successes(finished: &mut [(Reply, Result<Output, StoreError>)], cause: &StoreError) {
    for (_, result) in finished.iter_mut() {
        if result.is_ok() {
            *result = Err(rolled_back(cause));
        }
    }
}

/// A copy of `cause` for a command whose changes were rolled back with the batch.
fn rolled_back(cause: &StoreError) -> StoreError {
    let code = match cause {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, _)) => *code,
        _ => rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
    };
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        code,
        Some(format!("rolled back with its batch: {cause}")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_command_keeps_the_cause() {
        let cause = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        ));
        match rolled_back(&cause) {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, Some(message))) => {
                assert_eq!(code.code, rusqlite::ErrorCode::DiskFull);
                assert!(message.contains("disk is full"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
