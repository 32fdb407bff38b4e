//! Status and transport error -> [`ApiError`] class, and whether the failure is transient.
//!
//! The table (DESIGN.md §6): 2xx ok; 401/403 `Auth`; 429 `RateLimited`; 3xx (redirects are
//! never followed) and every other 4xx `ClientError`; 5xx `ServerError`; a timeout `Timeout`;
//! anything else on the wire `Transport` with a message that carries neither the URL (its query
//! may hold tenant data) nor any header. Transient = worth sending again: timeouts and
//! connection errors always; statuses per the API's retry schedule
//! ([`RetrySchedule::retries_status`](super::RetrySchedule::retries_status)).

use std::time::Duration;

use super::{ApiError, ApiResponse};

/// Longest transport message handed to a plugin or a log line.
const MAX_MESSAGE_LEN: usize = 300;

/// Turns a complete answer into the plugin's result. Pure.
pub fn classify(
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<ApiResponse, ApiError> {
    match status {
        200..=299 => Ok(ApiResponse {
            status,
            headers,
            body,
        }),
        401 | 403 => Err(ApiError::Auth { status, body }),
        429 => Err(ApiError::RateLimited { status, body }),
        500..=599 => Err(ApiError::ServerError { status, body }),
        // 1xx cannot reach here through the HTTP client; 3xx means the API tried to send us
        // elsewhere, which we never follow; both are requests to fix, like any other 4xx.
        _ => Err(ApiError::ClientError { status, body }),
    }
}

/// A failed attempt: what the plugin would see, and what the retry decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The error returned if no retry follows.
    pub error: ApiError,
    /// Whether sending the same request again may succeed.
    pub transient: bool,
    /// How long the server asked us to wait (429 headers), if it said.
    pub server_wait: Option<Duration>,
}

impl Failure {
    /// A failure that retrying cannot fix.
    pub fn permanent(error: ApiError) -> Failure {
        Failure {
            error,
            transient: false,
            server_wait: None,
        }
    }

    /// The attempt ran out of time.
    pub fn timeout() -> Failure {
        Failure {
            error: ApiError::Timeout,
            transient: true,
            server_wait: None,
        }
    }
}

/// Classifies an error from the HTTP client.
pub fn transport_failure(err: &reqwest::Error) -> Failure {
    if err.is_timeout() {
        return Failure::timeout();
    }
    // Connection refused/reset, TLS, a body cut short: the network, not the request. A builder
    // error is a request we cannot send at all, and retrying it would fail the same way.
    let transient = !err.is_builder();
    Failure {
        error: ApiError::Transport(describe(err)),
        transient,
        server_wait: None,
    }
}

/// A message for `err` without its URL: the error's kind followed by its causes.
pub fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else if err.is_request() {
        "sending the request failed"
    } else if err.is_builder() {
        "the request could not be built"
    } else {
        "request failed"
    };
    let mut message = kind.to_string();
    // The causes (hyper, io, rustls) describe sockets and protocols; the URL lives only in the
    // outermost reqwest error, which is not printed.
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    truncate(message, MAX_MESSAGE_LEN)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16) -> &'static str {
        match classify(status, vec![], b"b".to_vec()) {
            Ok(_) => "ok",
            Err(ApiError::Auth { .. }) => "auth",
            Err(ApiError::RateLimited { .. }) => "rate",
            Err(ApiError::ClientError { .. }) => "client",
            Err(ApiError::ServerError { .. }) => "server",
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn status_table() {
        let table = [
            (200, "ok"),
            (201, "ok"),
            (204, "ok"),
            (299, "ok"),
            (301, "client"),
            (302, "client"),
            (304, "client"),
            (307, "client"),
            (400, "client"),
            (401, "auth"),
            (403, "auth"),
            (404, "client"),
            (409, "client"),
            (422, "client"),
            (429, "rate"),
            (500, "server"),
            (501, "server"),
            (502, "server"),
            (503, "server"),
            (504, "server"),
            (599, "server"),
        ];
        for (status, expected) in table {
            assert_eq!(class(status), expected, "{status}");
        }
    }

    #[test]
    fn errors_keep_status_and_body_and_ok_keeps_headers() {
        assert_eq!(
            classify(422, vec![], b"{\"msg\":\"bad\"}".to_vec()),
            Err(ApiError::ClientError {
                status: 422,
                body: b"{\"msg\":\"bad\"}".to_vec()
            })
        );
        let ok = classify(200, vec![("x-a".into(), "1".into())], b"{}".to_vec()).unwrap();
        assert_eq!(ok.headers, vec![("x-a".to_string(), "1".to_string())]);
        assert_eq!(ok.body, b"{}");
    }

    #[tokio::test]
    async fn connection_refused_is_transient_transport_without_url() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/x?locationId=secret-tenant"
            ))
            .send()
            .await
            .unwrap_err();
        let failure = transport_failure(&err);
        assert!(failure.transient);
        let ApiError::Transport(message) = failure.error else {
            panic!("{failure:?}")
        };
        assert!(message.starts_with("connection failed"), "{message}");
        assert!(!message.contains("secret-tenant"), "{message}");
        assert!(!message.contains("127.0.0.1"), "{message}");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let cut = truncate("é".repeat(400), 301);
        assert!(cut.len() <= 301 + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
