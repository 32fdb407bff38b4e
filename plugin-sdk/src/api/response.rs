//! A successful (2xx) answer from an API, after the host's retries.

use std::borrow::Cow;

use serde::de::DeserializeOwned;

use crate::{bindings::wasmhook::plugin::api as wit, error::JsonError};

/// A 2xx response. Header names are lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// Builds a response by hand, e.g. to unit-test code that reads one.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// The HTTP status, 200..=299.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (matched case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers in the order received, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taking it out of the response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text; invalid UTF-8 sequences become U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Parses the body as JSON into `T`: declare only the fields you need.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, JsonError> {
        serde_json::from_slice(&self.body).map_err(|e| JsonError::new("response body", &e))
    }
}

impl From<wit::Response> for Response {
    fn from(r: wit::Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn response(body: &str) -> Response {
        Response::from(wit::Response {
            status: 201,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-ratelimit-remaining".into(), "99".into()),
            ],
            body: body.as_bytes().to_vec(),
        })
    }

    #[derive(Debug, Deserialize)]
    struct Tags {
        tags: Vec<String>,
    }

    #[test]
    fn headers_match_case_insensitively() {
        let r = response("{}");
        assert_eq!(r.status(), 201);
        assert_eq!(r.header("X-RateLimit-Remaining"), Some("99"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("etag"), None);
    }

    #[test]
    fn json_and_text_read_the_body() {
        let r = response(r#"{"tags":["new-lead"]}"#);
        assert_eq!(r.json::<Tags>().unwrap().tags, ["new-lead"]);
        assert_eq!(r.text(), r#"{"tags":["new-lead"]}"#);
        let err = response("not json").json::<Tags>().unwrap_err();
        assert_eq!(err.what(), "response body");
    }

    #[test]
    fn text_survives_invalid_utf8() {
        let r = Response::new(200, Vec::new(), vec![b'o', b'k', 0xff]);
        assert_eq!(r.text(), "ok\u{fffd}");
        assert_eq!(r.into_body(), [b'o', b'k', 0xff]);
    }
}
