//! Why an API request did not produce a 2xx response, and what that means for the delivery.
//!
//! [`Error`] mirrors the WIT `api-error` case for case (plus one case the SDK detects before
//! anything is sent). Its conversion into [`HandlerError`] is the SDK's retry policy for
//! handlers that just write `?`:
//!
//! | case | handler error | why |
//! |---|---|---|
//! | `Denied` | fail | outside the manifest's capabilities: only a new manifest helps |
//! | `ClientError` (400/404/422, other 4xx) | fail | the request is wrong; the same request fails again |
//! | `Auth` (401 after a refresh, 403) | retry | the installation needs re-authorising, a human step; retrying with the host's backoff gives it time, and `max_attempts` still ends in an alert |
//! | `RateLimited`, `ServerError`, `Timeout`, `Transport` | retry | transient; the host already waited within this attempt |
//! | `BudgetExhausted(t)` | retry after `t` | the host's schedule needed more time than this attempt had |
//! | `InvalidBody` | fail | the plugin built a body that cannot be JSON |
//!
//! Handlers that need another policy match on [`Error`] before using `?`.

use std::{borrow::Cow, fmt, time::Duration};

use serde::de::DeserializeOwned;

use crate::{HandlerError, bindings::wasmhook::plugin::api as wit, error::JsonError};

/// How much of an error body goes into [`Error`]'s `Display` (and so into handler reasons):
/// enough to see the API's message, not so much that one failure floods the operator's view.
const BODY_EXCERPT_CHARS: usize = 200;

/// Why a request did not produce a 2xx response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Outside the plugin's capabilities; nothing was sent. The string says which rule.
    Denied(String),
    /// 400, 404, 422 and other 4xx: fix the request, retrying cannot help.
    ClientError(HttpFailure),
    /// 401 after one token refresh, or 403: the installation may need re-authorisation.
    Auth(HttpFailure),
    /// 429 after the host's waits.
    RateLimited(HttpFailure),
    /// 5xx after the host's retries.
    ServerError(HttpFailure),
    /// No answer within the per-request timeout.
    Timeout,
    /// The connection failed (DNS, refused, reset, TLS).
    Transport(String),
    /// The delivery's time ran out before the host's retry schedule finished; retry the
    /// delivery after this long.
    BudgetExhausted(Duration),
    /// The body given to [`Request::json`](super::Request::json) could not be serialised;
    /// nothing was sent. (Detected by the SDK; not a WIT case.)
    InvalidBody(String),
}

impl Error {
    /// The HTTP status the API answered with, for the cases that have one.
    pub fn status(&self) -> Option<u16> {
        self.http_failure().map(HttpFailure::status)
    }

    /// The API's error answer, for the cases that have one.
    pub fn http_failure(&self) -> Option<&HttpFailure> {
        match self {
            Self::ClientError(f) | Self::Auth(f) | Self::RateLimited(f) | Self::ServerError(f) => {
                Some(f)
            }
            Self::Denied(_)
            | Self::Timeout
            | Self::Transport(_)
            | Self::BudgetExhausted(_)
            | Self::InvalidBody(_) => None,
        }
    }

    /// Whether another attempt of the delivery could succeed with the same request (see the
    /// module docs for the table).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Auth(_)
            | Self::RateLimited(_)
            | Self::ServerError(_)
            | Self::Timeout
            | Self::Transport(_)
            | Self::BudgetExhausted(_) => true,
            Self::Denied(_) | Self::ClientError(_) | Self::InvalidBody(_) => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(rule) => write!(f, "api request denied: {rule}"),
            Self::ClientError(h) => write!(f, "api client error {h}"),
            Self::Auth(h) => write!(f, "api authorisation failed {h}"),
            Self::RateLimited(h) => write!(f, "api rate limited {h}"),
            Self::ServerError(h) => write!(f, "api server error {h}"),
            Self::Timeout => f.write_str("api request timed out"),
            Self::Transport(why) => write!(f, "api connection failed: {why}"),
            Self::BudgetExhausted(after) => write!(
                f,
                "api retries need more time than the delivery has left; retry in {after:?}"
            ),
            Self::InvalidBody(why) => write!(f, "api request body is not valid JSON: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::ApiError> for Error {
    fn from(e: wit::ApiError) -> Self {
        match e {
            wit::ApiError::Denied(rule) => Self::Denied(rule),
            wit::ApiError::ClientError(h) => Self::ClientError(h.into()),
            wit::ApiError::Auth(h) => Self::Auth(h.into()),
            wit::ApiError::RateLimited(h) => Self::RateLimited(h.into()),
            wit::ApiError::ServerError(h) => Self::ServerError(h.into()),
            wit::ApiError::Timeout => Self::Timeout,
            wit::ApiError::Transport(why) => Self::Transport(why),
            wit::ApiError::BudgetExhausted(ms) => Self::BudgetExhausted(Duration::from_millis(ms)),
        }
    }
}

impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        let reason = e.to_string();
        match e {
            Error::BudgetExhausted(after) => HandlerError::retry_after(reason, after),
            e if e.is_transient() => HandlerError::retry(reason),
            _ => HandlerError::fail(reason),
        }
    }
}

/// An error answer from the API: its status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpFailure {
    status: u16,
    body: Vec<u8>,
}

impl HttpFailure {
    /// Builds a failure by hand, e.g. to unit-test error handling.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }

    /// The HTTP status, e.g. 404.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text; invalid UTF-8 sequences become U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Parses the body as JSON into `T` (e.g. the API's error message).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, JsonError> {
        serde_json::from_slice(&self.body).map_err(|e| JsonError::new("error body", &e))
    }
}

impl From<wit::HttpFailure> for HttpFailure {
    fn from(h: wit::HttpFailure) -> Self {
        Self {
            status: h.status,
            body: h.body,
        }
    }
}

impl fmt::Display for HttpFailure {
    /// `(status N)` followed by the start of the body, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(status {})", self.status)?;
        let text = self.text();
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let mut excerpt: String = text
            .chars()
            .take(BODY_EXCERPT_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.chars().nth(BODY_EXCERPT_CHARS).is_some() {
            excerpt.push('…');
        }
        write!(f, ": {excerpt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, body: &str) -> wit::HttpFailure {
        wit::HttpFailure {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    fn handler_error(e: wit::ApiError) -> HandlerError {
        Error::from(e).into()
    }

    #[test]
    fn permanent_errors_fail_the_delivery() {
        for e in [
            wit::ApiError::Denied("POST /contacts/*/notes is not allowed".into()),
            wit::ApiError::ClientError(failure(422, r#"{"message":"bad tag"}"#)),
        ] {
            let h = handler_error(e);
            assert!(!h.is_retry(), "{h}");
        }
        assert!(!HandlerError::from(Error::InvalidBody("key must be a string".into())).is_retry());
    }

    #[test]
    fn transient_errors_retry_after_the_hosts_backoff() {
        for e in [
            wit::ApiError::Auth(failure(401, "")),
            wit::ApiError::RateLimited(failure(429, "")),
            wit::ApiError::ServerError(failure(503, "")),
            wit::ApiError::Timeout,
            wit::ApiError::Transport("connection reset".into()),
        ] {
            match handler_error(e) {
                HandlerError::Retry { after: None, .. } => {}
                other => panic!("expected a plain retry, got {other}"),
            }
        }
    }

    #[test]
    fn budget_exhausted_retries_after_the_hosts_hint() {
        match handler_error(wit::ApiError::BudgetExhausted(8_000)) {
            HandlerError::Retry { after, reason } => {
                assert_eq!(after, Some(Duration::from_secs(8)));
                assert!(reason.contains("8s"), "{reason}");
            }
            other => panic!("expected retry, got {other}"),
        }
    }

    #[test]
    fn display_shows_status_and_a_bounded_body_excerpt() {
        let e = Error::from(wit::ApiError::ClientError(failure(
            404,
            "{\"message\":\n\"Contact not found\"}",
        )));
        assert_eq!(e.status(), Some(404));
        assert_eq!(
            e.to_string(),
            "api client error (status 404): {\"message\": \"Contact not found\"}"
        );

        let long = "x".repeat(1_000);
        let shown = Error::ServerError(HttpFailure::new(500, long)).to_string();
        assert!(shown.ends_with('…'), "{shown}");
        assert!(shown.len() < 300, "{} chars", shown.len());
    }

    #[test]
    fn failures_without_a_body_show_only_the_status() {
        assert_eq!(
            Error::Auth(HttpFailure::new(403, "  ")).to_string(),
            "api authorisation failed (status 403)"
        );
        assert_eq!(Error::Timeout.status(), None);
    }

    #[test]
    fn error_bodies_decode_as_json() {
        #[derive(serde::Deserialize)]
        struct Message {
            message: String,
        }
        let f = HttpFailure::from(failure(422, r#"{"message":"bad tag"}"#));
        assert_eq!(f.json::<Message>().unwrap().message, "bad tag");
        assert_eq!(f.text(), r#"{"message":"bad tag"}"#);
    }
}
