//! The errors of the `sources` module: building sources from config, verifying a signature,
//! and reading the envelope of a verified body.
//!
//! Invariants: messages tell the sender what to fix and never contain the body, a signature,
//! or key material. Each variant has a stable machine-readable `code()` that the HTTP layer
//! sends and metrics count; the HTTP status is decided in `server::error`, not here.

use std::borrow::Cow;

use crate::{ids::SourceName, secret::SecretError};

/// A source could not be built from its (already validated) configuration.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// Two `[[sources]]` entries share a name; config validation normally catches this first.
    #[error("source `{0}` is configured twice; source names must be unique")]
    DuplicateName(SourceName),
    /// A source has no key at all, so every event would be refused.
    #[error("source `{0}` has no verification keys; every event would be refused")]
    NoKeys(SourceName),
    /// A secret could not be read (its reference is named, never its value).
    #[error("source `{source_name}`: secret {index} ({reference}): {error}")]
    Secret {
        source_name: SourceName,
        index: usize,
        reference: String,
        #[source]
        error: SecretError,
    },
    /// A secret was read but cannot be used as a key (e.g. a `whsec_` value that is not base64).
    /// `reason` says what is wrong without quoting the value.
    #[error("source `{source_name}`: secret {index} ({reference}) is not a usable key: {reason}")]
    BadKey {
        source_name: SourceName,
        index: usize,
        reference: String,
        reason: &'static str,
    },
}

/// A header name in an error: usually a scheme's fixed name, or a configured one (`hmac`).
pub type Label = Cow<'static, str>;

/// Why a request's signature was not accepted. Every variant means "nothing was stored".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// None of the scheme's signature headers is present.
    #[error("missing signature: send the `{expected}` header")]
    Missing { expected: Label },
    /// The header appears more than once, so which value is meant is ambiguous.
    #[error("the `{header}` header is sent more than once; send exactly one")]
    Repeated { header: Label },
    /// The header is not valid base64 (or not even visible ASCII).
    #[error("the `{header}` header is not valid base64")]
    Encoding { header: Label },
    /// The decoded signature has a length no configured key can produce.
    #[error("the `{header}` signature is {actual} bytes long; expected {expected}")]
    Length {
        header: Label,
        actual: usize,
        expected: usize,
    },
    /// Well-formed, but no configured key produced it over these exact body bytes.
    #[error(
        "the `{header}` signature does not match the body under any trusted key (the body must be sent byte for byte as signed)"
    )]
    Mismatch { header: Label },
    /// The header does not have the scheme's shape; `reason` says what is wrong.
    #[error("the `{header}` header is malformed: {reason}")]
    Malformed { header: Label, reason: &'static str },
    /// The header lists signatures, but none of a version this source can check.
    #[error("the `{header}` header has no signature of a supported version ({supported})")]
    NoSupportedVersion {
        header: Label,
        supported: &'static str,
    },
    /// The signed timestamp is older than the tolerance: a replay or a very late delivery.
    #[error(
        "the `{header}` timestamp is {age_secs} s old; at most {tolerance_secs} s is accepted (check the sender's clock)"
    )]
    TooOld {
        header: Label,
        age_secs: u64,
        tolerance_secs: u64,
    },
    /// The signed timestamp is further in the future than the tolerance.
    #[error(
        "the `{header}` timestamp is {ahead_secs} s in the future; at most {tolerance_secs} s is accepted (check the sender's clock)"
    )]
    TooNew {
        header: Label,
        ahead_secs: u64,
        tolerance_secs: u64,
    },
}

impl VerifyError {
    /// Stable code for responses and metrics: `missing_signature`, `stale_timestamp`,
    /// `future_timestamp` or `bad_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Missing { .. } => "missing_signature",
            VerifyError::TooOld { .. } => "stale_timestamp",
            VerifyError::TooNew { .. } => "future_timestamp",
            _ => "bad_signature",
        }
    }
}

/// Why a verified body was not accepted as an event.
///
/// `MalformedJson`, `MissingTenant`, `InvalidField` and `BadTimestamp` are about the body's
/// shape (HTTP 400); `MissingAppId`, `WrongApp`, `TooOld` and `MissingTimestamp` are refusals of
/// a well-formed event (HTTP 403). [`EnvelopeError::is_refusal`] tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not JSON, or not a JSON object.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// No field names the tenant.
    #[error(
        "no tenant: the body needs a `locationId`, a `companyId`, or an `altId` with `altType` \"location\""
    )]
    MissingTenant,
    /// An identifying field has the wrong type or is too long to be an identifier.
    #[error("`{field}` must be a string (or an integer) of at most {max} bytes")]
    InvalidField { field: String, max: usize },
    /// `timestamp` is present but is neither RFC 3339 text nor epoch milliseconds.
    #[error(
        "`timestamp` must be RFC 3339 text (like 2025-06-25T06:57:06.225Z) or epoch milliseconds: {0}"
    )]
    BadTimestamp(String),
    /// The body carries no `appId`; the platform signs every app's events with one key, so an
    /// event that does not name our app cannot be proven to be ours.
    #[error("the body has no `appId`; only events for this source's app are accepted")]
    MissingAppId,
    /// The body names another app. The configured id is not echoed.
    #[error("the body's `appId` names another app; only events for this source's app are accepted")]
    WrongApp,
    /// `timestamp` is older than the source's `max_age` (a replay or a very late retry).
    #[error(
        "the event's `timestamp` is {age_secs} s old; events older than {max_age_secs} s are refused"
    )]
    TooOld { age_secs: u64, max_age_secs: u64 },
    /// The source requires a `timestamp` and the body has none.
    #[error("the body has no `timestamp`, which this source requires")]
    MissingTimestamp,
    /// A form-encoded body (Slack) is not valid `application/x-www-form-urlencoded` text.
    #[error("malformed form body: {0}")]
    MalformedForm(&'static str),
}

impl EnvelopeError {
    /// Stable code for responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::MalformedJson(_) => "malformed_json",
            EnvelopeError::MissingTenant => "missing_tenant",
            EnvelopeError::InvalidField { .. } => "invalid_field",
            EnvelopeError::BadTimestamp(_) => "bad_timestamp",
            EnvelopeError::MissingAppId => "missing_app_id",
            EnvelopeError::WrongApp => "wrong_app",
            EnvelopeError::TooOld { .. } => "too_old",
            EnvelopeError::MissingTimestamp => "missing_timestamp",
            EnvelopeError::MalformedForm(_) => "malformed_form",
        }
    }

    /// True for a well-formed event that policy refuses (403); false for a malformed body (400).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EnvelopeError::MissingAppId
                | EnvelopeError::WrongApp
                | EnvelopeError::TooOld { .. }
                | EnvelopeError::MissingTimestamp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_split_missing_from_bad() {
        assert_eq!(
            VerifyError::Missing {
                expected: "x-ghl-signature".into()
            }
            .code(),
            "missing_signature"
        );
        assert_eq!(
            VerifyError::Mismatch { header: "h".into() }.code(),
            "bad_signature"
        );
        assert_eq!(
            VerifyError::Encoding { header: "h".into() }.code(),
            "bad_signature"
        );
        let stale = VerifyError::TooOld {
            header: "webhook-timestamp".into(),
            age_secs: 400,
            tolerance_secs: 300,
        };
        assert_eq!(stale.code(), "stale_timestamp");
        assert!(stale.to_string().contains("400 s old"), "{stale}");
        let future = VerifyError::TooNew {
            header: "webhook-timestamp".into(),
            ahead_secs: 400,
            tolerance_secs: 300,
        };
        assert_eq!(future.code(), "future_timestamp");
        assert_eq!(EnvelopeError::WrongApp.code(), "wrong_app");
        assert!(EnvelopeError::WrongApp.is_refusal());
        assert!(!EnvelopeError::MissingTenant.is_refusal());
        assert!(!EnvelopeError::BadTimestamp(String::new()).is_refusal());
    }
}
