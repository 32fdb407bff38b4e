//! A small key-value store scoped to (plugin, tenant): other plugins and tenants never see it,
//! and the host erases it when the tenant uninstalls.
//!
//! Values are bytes; [`get_json`] and [`set_json`] store any serde type as JSON. Keys and values
//! are size-capped by the host and each scope has a quota: going past either is an [`Error`]
//! that fails the delivery when passed on with `?`.
//!
//! ```no_run
//! use std::time::Duration;
//! use wasmhook_sdk::{Delivery, HandlerError, kv};
//!
//! /// Runs `work` once per delivery, even when the delivery is repeated after a crash.
//! fn once(delivery: &Delivery, work: impl FnOnce() -> Result<(), HandlerError>) -> Result<(), HandlerError> {
//!     let key = format!("done:{}", delivery.idempotency_key());
//!     if kv::get(&key)?.is_some() {
//!         return Ok(());
//!     }
//!     work()?;
//!     kv::set_with_ttl(&key, b"1", Duration::from_secs(7 * 24 * 3600))?;
//!     Ok(())
//! }
//! ```

use std::{fmt, time::Duration};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    HandlerError,
    bindings::wasmhook::plugin::kv as wit,
    error::{JsonError, ceil_millis},
};

/// Why a key-value operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The key is empty or longer than the host allows.
    InvalidKey(String),
    /// The value is larger than the host allows.
    TooLarge(String),
    /// The (plugin, tenant) scope holds as much as it may.
    QuotaExceeded(String),
    /// The store could not be reached; retrying the delivery may help.
    Unavailable(String),
    /// A stored value did not decode as the requested type, or a value did not serialise.
    /// (Detected by the SDK; not a WIT case.)
    Json(JsonError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidKey(why) => write!(f, "kv key refused: {why}"),
            Self::TooLarge(why) => write!(f, "kv value too large: {why}"),
            Self::QuotaExceeded(why) => write!(f, "kv quota exceeded: {why}"),
            Self::Unavailable(why) => write!(f, "kv store unavailable: {why}"),
            Self::Json(e) => write!(f, "kv {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::KvError> for Error {
    fn from(e: wit::KvError) -> Self {
        match e {
            wit::KvError::InvalidKey(why) => Self::InvalidKey(why),
            wit::KvError::TooLarge(why) => Self::TooLarge(why),
            wit::KvError::QuotaExceeded(why) => Self::QuotaExceeded(why),
            wit::KvError::Unavailable(why) => Self::Unavailable(why),
        }
    }
}

/// Only an unreachable store is worth another attempt. A full quota fails too: entries only
/// leave it by expiring or by the plugin deleting them, which a retry of the same delivery
/// does not do.
impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable(_) => HandlerError::retry(e.to_string()),
            Error::InvalidKey(_)
            | Error::TooLarge(_)
            | Error::QuotaExceeded(_)
            | Error::Json(_) => HandlerError::fail(e.to_string()),
        }
    }
}

/// The value stored under `key`, or `None` when absent or expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    wit::get(key).map_err(Error::from)
}

/// Stores `value` under `key` with no expiry, replacing any earlier value.
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    wit::set(key, value, None).map_err(Error::from)
}

/// Stores `value` under `key`, expiring after `ttl` (rounded up to whole milliseconds).
pub fn set_with_ttl(key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
    wit::set(key, value, Some(ceil_millis(ttl))).map_err(Error::from)
}

/// Removes `key`; removing an absent key is not an error.
pub fn delete(key: &str) -> Result<(), Error> {
    wit::delete(key).map_err(Error::from)
}

/// Atomically replaces the value under `key` with `desired` (`None` deletes it) if the current
/// value equals `expected` (`None` = absent). Returns whether it swapped. `ttl` applies to the
/// new value.
///
/// `compare_and_swap(key, None, Some(b"1"), None)` is "insert if absent": of concurrent callers
/// exactly one gets `true`.
pub fn compare_and_swap(
    key: &str,
    expected: Option<&[u8]>,
    desired: Option<&[u8]>,
    ttl: Option<Duration>,
) -> Result<bool, Error> {
    wit::compare_and_swap(key, expected, desired, ttl.map(ceil_millis)).map_err(Error::from)
}

/// The value under `key` decoded from JSON, or `None` when absent or expired.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    get(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

/// Stores `value` as JSON under `key` with no expiry.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    set(key, &encode(key, value)?)
}

/// Stores `value` as JSON under `key`, expiring after `ttl`.
pub fn set_json_with_ttl<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<(), Error> {
    set_with_ttl(key, &encode(key, value)?, ttl)
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Json(JsonError::new(value_name(key), &e)))
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Json(JsonError::new(value_name(key), &e)))
}

fn value_name(key: &str) -> String {
    format!("value `{key}`")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq, Serialize)]
    struct Seen {
        contact: String,
        times: u32,
    }

    #[test]
    fn json_round_trips_through_bytes() {
        let value = Seen {
            contact: "c-1".into(),
            times: 2,
        };
        let bytes = encode("seen", &value).unwrap();
        assert_eq!(decode::<Seen>("seen", &bytes).unwrap(), value);
    }

    #[test]
    fn decode_errors_name_the_key_and_fail_the_delivery() {
        let err = decode::<Seen>("seen", b"[1,2]").unwrap_err();
        assert!(err.to_string().starts_with("kv value `seen`: "), "{err}");
        assert!(!HandlerError::from(err).is_retry());
    }

    #[test]
    fn encode_errors_are_reported() {
        let mut bad = BTreeMap::new();
        bad.insert((1, 2), 3);
        assert!(matches!(encode("k", &bad), Err(Error::Json(_))));
    }

    #[test]
    fn only_an_unavailable_store_retries() {
        let cases = [
            (wit::KvError::InvalidKey("empty".into()), false),
            (wit::KvError::TooLarge("70000 > 65536 bytes".into()), false),
            (wit::KvError::QuotaExceeded("1000 keys".into()), false),
            (wit::KvError::Unavailable("database is locked".into()), true),
        ];
        for (wit_error, retries) in cases {
            let e = HandlerError::from(Error::from(wit_error));
            assert_eq!(e.is_retry(), retries, "{e}");
        }
    }
}
