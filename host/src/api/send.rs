//! One attempt on the wire: build the HTTP request from a [`Prepared`] one plus the host's
//! headers, send it, and read the response body under a size cap, all within one timeout.
//!
//! Invariants: the whole attempt (connect, send, headers, body) is bounded by `timeout`; at most
//! `max_response` body bytes are held (a larger declared length is refused before reading, a
//! larger streamed body as soon as it crosses the cap); the token header is marked sensitive so
//! the HTTP stack never prints it.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{ApiError, classify::Failure, prepare::Prepared};

/// Headers the host adds to every attempt.
#[derive(Clone, Debug, Default)]
pub struct HostHeaders {
    /// `Authorization: Bearer <token>`, marked sensitive.
    pub authorization: Option<HeaderValue>,
    /// `Version`.
    pub version: Option<HeaderValue>,
    /// The API's idempotency header and `<key>:<call_number>`.
    pub idempotency: Option<(HeaderName, HeaderValue)>,
}

/// A complete answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers (names are lower case by construction of `HeaderName`).
    pub headers: HeaderMap,
    /// The body, at most `max_response` bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The headers as (lower-case name, value) pairs; non-UTF-8 values are converted lossily.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect()
    }
}

/// Sends `prepared` once with `host` headers; fails with a timeout after `timeout`.
pub async fn send_once(
    http: &reqwest::Client,
    prepared: &Prepared,
    host: &HostHeaders,
    max_response: usize,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let request = build(prepared, host);
    // One timer around everything, so a server trickling its body cannot outlast the budget.
    match tokio::time::timeout(timeout, exchange(http, request, max_response)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(Failure::timeout()),
    }
}

fn build(prepared: &Prepared, host: &HostHeaders) -> reqwest::Request {
    let mut request = reqwest::Request::new(prepared.method.clone(), prepared.url.clone());
    let headers = request.headers_mut();
    headers.clone_from(&prepared.headers);
    // Host headers go in last so they win; `prepare` already refused plugin attempts to set them.
    if let Some(value) = &host.authorization {
        headers.insert(http::header::AUTHORIZATION, value.clone());
    }
    if let Some(value) = &host.version {
        headers.insert(HeaderName::from_static("version"), value.clone());
    }
    if let Some((name, value)) = &host.idempotency {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(body) = &prepared.body {
        *request.body_mut() = Some(reqwest::Body::from(body.clone()));
    }
    request
}

async fn exchange(
    http: &reqwest::Client,
    request: reqwest::Request,
    max_response: usize,
) -> Result<Answer, Failure> {
    let mut response = http
        .execute(request)
        .await
        .map_err(|e| super::classify::transport_failure(&e))?;
    let too_large = || {
        Failure::permanent(ApiError::Transport(format!(
            "response larger than {max_response} bytes"
        )))
    };
    if response
        .content_length()
        .is_some_and(|len| len > max_response as u64)
    {
        return Err(too_large());
    }
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| super::classify::transport_failure(&e))?
    {
        if body.len() + chunk.len() > max_response {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}
