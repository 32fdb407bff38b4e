//! The plugin's own `[config]` table from its manifest (`name.toml`).
//!
//! Read single keys with [`get`] / [`require`], or the whole table into a serde type with
//! [`get_json`]:
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmhook_sdk::{HandlerError, config};
//!
//! #[derive(Deserialize)]
//! struct Settings {
//!     tag: String,
//!     #[serde(default)]
//!     dry_run: bool,
//! }
//!
//! fn settings() -> Result<Settings, HandlerError> {
//!     Ok(config::get_json()?) // a table that does not fit fails the delivery
//! }
//! ```
//!
//! The table is fixed for the plugin version, so every error here is permanent and converts
//! into [`HandlerError::Fail`].

use std::fmt;

use serde::de::DeserializeOwned;

use crate::{HandlerError, bindings::wasmhook::plugin::config as wit, error::JsonError};

/// A config value the plugin needs is missing or does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// [`require`]d key absent from `[config]`.
    Missing(String),
    /// The table did not decode into the requested type.
    Json(JsonError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(key) => {
                write!(f, "config: `{key}` is missing from the manifest's [config]")
            }
            Self::Json(e) => write!(f, "config: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        HandlerError::fail(e.to_string())
    }
}

/// The value of top-level key `key`: strings as they are, other values (numbers, booleans,
/// arrays, tables) as JSON text. `None` when absent.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// Like [`get`], but a missing key is an error naming it.
pub fn require(key: &str) -> Result<String, Error> {
    get(key).ok_or_else(|| Error::Missing(key.to_owned()))
}

/// The whole `[config]` table as JSON object text (`{}` when the manifest has none).
pub fn all() -> String {
    wit::all()
}

/// The whole `[config]` table decoded into `T`.
pub fn get_json<T: DeserializeOwned>() -> Result<T, Error> {
    decode(&all())
}

fn decode<T: DeserializeOwned>(table: &str) -> Result<T, Error> {
    serde_json::from_str(table).map_err(|e| Error::Json(JsonError::new("[config] table", &e)))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Settings {
        tag: String,
        #[serde(default)]
        limit: u32,
    }

    #[test]
    fn the_table_decodes_into_a_struct() {
        let s: Settings = decode(r#"{"tag":"new-lead","limit":5,"extra":true}"#).unwrap();
        assert_eq!(
            s,
            Settings {
                tag: "new-lead".into(),
                limit: 5
            }
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_fail() {
        let err = decode::<Settings>("{}").unwrap_err();
        assert!(err.to_string().contains("missing field `tag`"), "{err}");
        let missing = HandlerError::from(Error::Missing("tag".into()));
        assert!(!missing.is_retry());
        assert_eq!(
            missing.reason(),
            "config: `tag` is missing from the manifest's [config]"
        );
    }
}
