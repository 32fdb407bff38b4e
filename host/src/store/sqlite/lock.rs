//! The process lock that keeps a SQLite store to one process.
//!
//! SQLite itself would let two processes share the file, but the store's guarantees rely on one
//! writer thread seeing every write (claims, leases, group commit), so a second process must
//! refuse to start. The lock is an exclusive OS file lock on `<db path>.lock`, which the kernel
//! releases when the holder exits, even after a crash: a stale lock file never blocks a restart.
//! The file's text (`pid <n> on <host>`) names the holder for the error message only; the lock
//! itself is what counts.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::Write,
    path::{Path, PathBuf},
};

use crate::store::StoreError;

/// An exclusive lock on a store, released when dropped.
#[derive(Debug)]
pub(super) struct ProcessLock {
    // Held only for its OS lock; closing the file releases it.
    _file: File,
}

/// `<db path>.lock`.
pub(super) fn lock_path(db_path: &Path) -> PathBuf {
    let mut text = db_path.as_os_str().to_owned();
    text.push(".lock");
    PathBuf::from(text)
}

impl ProcessLock {
    /// Takes the lock for the database at `db_path`, or returns `Locked` naming the process that
    /// holds it.
    pub(super) fn acquire(db_path: &Path) -> Result<ProcessLock, StoreError> {
        let path = lock_path(db_path);
        // No truncation on open: if another process holds the lock, its text must survive so
        // that we can name it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .map(|text| text.trim().to_owned())
                    .ok()
                    .filter(|text| !text.is_empty())
                    .unwrap_or_else(|| "an unknown process".to_owned());
                return Err(StoreError::Locked {
                    path: db_path.display().to_string(),
                    holder,
                });
            }
            Err(TryLockError::Error(err)) => return Err(StoreError::Io(err)),
        }
        file.set_len(0)?;
        file.write_all(holder_text().as_bytes())?;
        file.flush()?;
        Ok(ProcessLock { _file: file })
    }
}

/// `pid <n> on <hostname>`.
fn holder_text() -> String {
    format!("pid {} on {}\n", std::process::id(), hostname())
}

/// This machine's name, best effort (the lock works without it).
fn hostname() -> String {
    // Linux exposes it as a file; elsewhere the shell's variables usually carry it.
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "an unknown host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = ProcessLock::acquire(&db).unwrap();
        match ProcessLock::acquire(&db) {
            Err(StoreError::Locked { path, holder }) => {
                assert_eq!(path, db.display().to_string());
                assert!(
                    holder.starts_with(&format!("pid {} on ", std::process::id())),
                    "holder text: {holder}"
                );
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        ProcessLock::acquire(&db).expect("the lock is free again once dropped");
    }

    #[test]
    fn a_leftover_lock_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        std::fs::write(lock_path(&db), "pid 1 on elsewhere\n").unwrap();
        let _lock = ProcessLock::acquire(&db).expect("an unlocked file is free");
        let text = std::fs::read_to_string(lock_path(&db)).unwrap();
        assert_eq!(text, holder_text(), "the old holder text is replaced");
    }
}
