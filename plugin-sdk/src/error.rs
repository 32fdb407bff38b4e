//! How a handler says it did not succeed ([`HandlerError`]), and the JSON decoding error shared
//! by every part of the SDK ([`JsonError`]).
//!
//! Invariant: every SDK error converts into a [`HandlerError`] (so `?` works in a handler), and
//! the conversion decides retry-or-fail by whether another attempt could succeed with the same
//! input. The conversions of API, kv and config errors live next to those errors.

use std::{fmt, time::Duration};

use crate::bindings;

/// Why a handler did not succeed; what the host does next depends on the case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerError {
    /// A transient failure: the host runs the delivery again, up to the manifest's
    /// `max_attempts`, after its backoff or after `after` when given.
    Retry {
        /// Why the attempt failed (kept with the attempt and shown to operators).
        reason: String,
        /// Wait at least this long before the next attempt.
        after: Option<Duration>,
    },
    /// Retrying cannot help: the delivery is dead at once and operators are alerted.
    Fail {
        /// Why (kept with the attempt and shown to operators).
        reason: String,
    },
}

impl HandlerError {
    /// A transient failure: try again after the host's backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A transient failure: try again, but not before `after` has passed (rounded up to whole
    /// milliseconds).
    pub fn retry_after(reason: impl Into<String>, after: Duration) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: Some(after),
        }
    }

    /// A permanent failure: do not try again.
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::Fail {
            reason: reason.into(),
        }
    }

    /// The reason given for either case.
    pub fn reason(&self) -> &str {
        match self {
            Self::Retry { reason, .. } | Self::Fail { reason } => reason,
        }
    }

    /// Whether the host will try again.
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retry {
                reason,
                after: Some(after),
            } => write!(f, "retry after {after:?}: {reason}"),
            Self::Retry {
                reason,
                after: None,
            } => write!(f, "retry: {reason}"),
            Self::Fail { reason } => write!(f, "fail: {reason}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for bindings::HandlerError {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Retry { reason, after } => {
                bindings::HandlerError::Retry(bindings::wasmhook::plugin::types::RetryRequest {
                    reason,
                    after_ms: after.map(ceil_millis),
                })
            }
            HandlerError::Fail { reason } => bindings::HandlerError::Fail(reason),
        }
    }
}

/// Whole milliseconds, rounded up so "at least `d`" stays true; saturates at `u64::MAX`.
pub(crate) fn ceil_millis(d: Duration) -> u64 {
    let nanos = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// JSON that did not decode into the expected type: an event payload, an API response body, a
/// kv value or the config table. A decode failure is permanent (the same bytes come back on
/// the next attempt), so it converts into [`HandlerError::Fail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    what: String,
    message: String,
}

impl JsonError {
    /// `what` names the document (e.g. `event payload`); `err` says what did not fit.
    pub(crate) fn new(what: impl Into<String>, err: &serde_json::Error) -> Self {
        Self {
            what: what.into(),
            message: err.to_string(),
        }
    }

    /// The document that did not decode, e.g. `event payload` or `response body`.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

impl std::error::Error for JsonError {}

impl From<JsonError> for HandlerError {
    fn from(e: JsonError) -> Self {
        HandlerError::fail(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_milliseconds() {
        let wit: bindings::HandlerError =
            HandlerError::retry_after("slow down", Duration::from_micros(1_500)).into();
        match wit {
            bindings::HandlerError::Retry(r) => {
                assert_eq!(r.reason, "slow down");
                assert_eq!(r.after_ms, Some(2));
            }
            bindings::HandlerError::Fail(_) => panic!("expected retry"),
        }
    }

    #[test]
    fn plain_retry_leaves_the_wait_to_the_host() {
        match bindings::HandlerError::from(HandlerError::retry("flaky")) {
            bindings::HandlerError::Retry(r) => assert_eq!(r.after_ms, None),
            bindings::HandlerError::Fail(_) => panic!("expected retry"),
        }
    }

    #[test]
    fn fail_keeps_its_reason() {
        let e = HandlerError::fail("no contact id");
        assert!(!e.is_retry());
        assert_eq!(e.reason(), "no contact id");
        assert_eq!(e.to_string(), "fail: no contact id");
        match bindings::HandlerError::from(e) {
            bindings::HandlerError::Fail(reason) => assert_eq!(reason, "no contact id"),
            bindings::HandlerError::Retry(_) => panic!("expected fail"),
        }
    }

    #[test]
    fn huge_waits_saturate() {
        assert_eq!(ceil_millis(Duration::MAX), u64::MAX);
        assert_eq!(ceil_millis(Duration::ZERO), 0);
    }

    #[test]
    fn json_errors_fail_the_delivery() {
        let serde_err = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let e: HandlerError = JsonError::new("kv value `seen`", &serde_err).into();
        assert!(!e.is_retry());
        assert!(
            e.reason().starts_with("kv value `seen`: invalid type"),
            "{e}"
        );
    }
}
