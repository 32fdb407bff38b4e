//! HTTP errors of the public listener, and their one mapping to a response.
//!
//! Every error is answered as JSON `{"error": {"code": "...", "message": "..."}}`. Client
//! errors carry a stable `code` (what monitoring and senders match on) and a message saying
//! what to fix. Internal errors get a generic message: their cause is logged by whoever
//! creates them ([`HttpError::internal`] takes no cause on purpose), never sent.

use std::{borrow::Cow, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    installations::Refusal,
    sources::{EnvelopeError, VerifyError},
};

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// Seconds for a `Retry-After` header (503 only).
    retry_after_secs: Option<u64>,
}

impl HttpError {
    /// A client error with a stable `code` and a message saying what to fix.
    pub fn client(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> HttpError {
        HttpError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 404 `unknown_source`: no `[[sources]]` entry has this name.
    pub fn unknown_source() -> HttpError {
        HttpError::client(
            StatusCode::NOT_FOUND,
            "unknown_source",
            "no source is configured under this name; post to /webhooks/<a configured source name>",
        )
    }

    /// 405 `method_not_allowed`: webhooks are POSTed.
    pub fn method_not_allowed() -> HttpError {
        HttpError::client(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "webhooks must be sent with POST",
        )
    }

    /// 413 `body_too_large`: the body is over `limit` bytes.
    pub fn body_too_large(limit: usize) -> HttpError {
        HttpError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the {limit}-byte limit"),
        )
    }

    /// 408 `body_timeout`: the body did not arrive within `timeout`.
    pub fn body_timeout(timeout: Duration) -> HttpError {
        HttpError::client(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body was not complete within {} ms; send it without pauses",
                timeout.as_millis()
            ),
        )
    }

    /// 400 `bad_body`: the body could not be read (malformed chunking, aborted upload).
    pub fn bad_body() -> HttpError {
        HttpError::client(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the request body could not be read completely",
        )
    }

    /// 503 `overloaded` with `Retry-After`: too many requests in flight; try again later.
    pub fn overloaded(retry_after: Duration) -> HttpError {
        HttpError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded",
            message: Cow::Borrowed(
                "too many webhooks in flight; retry after the Retry-After delay",
            ),
            // Retry-After has whole-second resolution; never tell a client "0".
            retry_after_secs: Some(retry_after.as_secs().max(1)),
        }
    }

    /// 500 `internal_error` with a generic message. The caller logs the cause.
    pub fn internal() -> HttpError {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: Cow::Borrowed("internal error; the event was not stored, please retry"),
            retry_after_secs: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code (also the `outcome` label of the webhook counter).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A signature problem is 401: the sender did not prove who it is.
impl From<VerifyError> for HttpError {
    fn from(e: VerifyError) -> HttpError {
        HttpError::client(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
    }
}

/// A well-formed but refused event is 403; a malformed body is 400.
impl From<EnvelopeError> for HttpError {
    fn from(e: EnvelopeError) -> HttpError {
        let status = if e.is_refusal() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        HttpError::client(status, e.code(), e.to_string())
    }
}

/// A tenant without a live installation is 403: the event is genuine but not accepted.
impl From<Refusal> for HttpError {
    fn from(r: Refusal) -> HttpError {
        HttpError::client(StatusCode::FORBIDDEN, r.code(), r.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        });
        let mut response = (self.status, body).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn parts(e: HttpError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_are_json_with_code_and_message() {
        let (status, retry, json) = parts(HttpError::unknown_source()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(retry, None);
        assert_eq!(json["error"]["code"], "unknown_source");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/webhooks/")
        );
    }

    #[tokio::test]
    async fn overloaded_has_retry_after_of_at_least_one_second() {
        let (status, retry, json) = parts(HttpError::overloaded(Duration::ZERO)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(json["error"]["code"], "overloaded");
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_specific() {
        let (status, _, json) = parts(HttpError::internal()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["error"]["code"], "internal_error");
    }

    #[test]
    fn source_errors_map_to_401_403_and_400() {
        let e = HttpError::from(VerifyError::Missing {
            expected: "x-ghl-signature".into(),
        });
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::UNAUTHORIZED, "missing_signature")
        );
        let e = HttpError::from(VerifyError::Mismatch {
            header: "x-ghl-signature".into(),
        });
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::UNAUTHORIZED, "bad_signature")
        );
        let e = HttpError::from(EnvelopeError::WrongApp);
        assert_eq!((e.status(), e.code()), (StatusCode::FORBIDDEN, "wrong_app"));
        let e = HttpError::from(EnvelopeError::TooOld {
            age_secs: 9,
            max_age_secs: 1,
        });
        assert_eq!((e.status(), e.code()), (StatusCode::FORBIDDEN, "too_old"));
        let e = HttpError::from(EnvelopeError::MissingTenant);
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::BAD_REQUEST, "missing_tenant")
        );
        let e = HttpError::from(Refusal::NotInstalled);
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::FORBIDDEN, "not_installed")
        );
        let e = HttpError::from(VerifyError::TooOld {
            header: "webhook-timestamp".into(),
            age_secs: 400,
            tolerance_secs: 300,
        });
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::UNAUTHORIZED, "stale_timestamp")
        );
        let e = HttpError::from(EnvelopeError::MalformedJson("x".into()));
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
    }
}
