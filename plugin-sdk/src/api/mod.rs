//! The host's outbound API client: build a [`Request`], [`send`](Request::send) it, read the
//! [`Response`] or match on the [`Error`].
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmhook_sdk::{HandlerError, api};
//!
//! #[derive(Deserialize)]
//! struct Pipelines {
//!     pipelines: Vec<serde_json::Value>,
//! }
//!
//! fn pipeline_count(location: &str) -> Result<usize, HandlerError> {
//!     let found: Pipelines = api::get("highlevel", "/opportunities/pipelines")
//!         .query("locationId", location)
//!         .send()?
//!         .json()?;
//!     Ok(found.pipelines.len())
//! }
//! ```
//!
//! The host adds credentials, the `Version` header and the idempotency header, paces requests
//! per tenant and retries transient failures (429, 5xx, timeouts, connection errors) within the
//! delivery's time budget, unless the request says [`no_retry`](Request::no_retry). Every
//! request is checked against the manifest's `[capabilities.api.<name>]` allow-list first; one
//! outside it is never sent and comes back as [`Error::Denied`].
//!
//! Since WIT 0.1.1: [`pages`] walks list endpoints, [`get_cached`] reads reference data through
//! the host's cache, [`batch`] sends several requests at once and [`bulk_tags`] tags many
//! contacts in one call. HighLevel has no field selection: declare only the fields you read.

mod bulk;
mod error;
mod pages;
mod response;

pub use bulk::{TagAction, batch, bulk_tags, get_cached};
pub use error::{Error, HttpFailure};
pub use pages::{CursorStyle, Items, PageStyle, Pages, pages};
pub use response::Response;

use serde::{Serialize, de::DeserializeOwned};

use crate::{HandlerError, bindings::wasmhook::plugin::api as wit};

/// HTTP methods a plugin may use.
pub use wit::Method;

/// A request to one of the APIs configured in the host (`[apis.<name>]`), built step by step.
///
/// Start with [`get`], [`post`], [`put`], [`patch`], [`delete`] or [`Request::new`].
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    api: String,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<String>,
    retry: Option<wit::RetryMode>,
    headers: Vec<(String, String)>,
    /// A `.json()` body that failed to serialise; reported by `send` so the builder stays
    /// chainable.
    body_error: Option<String>,
}

/// `GET path` on the API named `api`.
pub fn get(api: impl Into<String>, path: impl Into<String>) -> Request {
    Request::new(api, Method::Get, path)
}

/// `POST path` on the API named `api`.
pub fn post(api: impl Into<String>, path: impl Into<String>) -> Request {
    Request::new(api, Method::Post, path)
}

/// `PUT path` on the API named `api`.
pub fn put(api: impl Into<String>, path: impl Into<String>) -> Request {
    Request::new(api, Method::Put, path)
}

/// `PATCH path` on the API named `api`.
pub fn patch(api: impl Into<String>, path: impl Into<String>) -> Request {
    Request::new(api, Method::Patch, path)
}

/// `DELETE path` on the API named `api`.
pub fn delete(api: impl Into<String>, path: impl Into<String>) -> Request {
    Request::new(api, Method::Delete, path)
}

impl Request {
    /// A request with no query, body or extra headers.
    ///
    /// `api` is the API's name in the host config (e.g. `highlevel`). `path` is below the API's
    /// base URL: one leading `/`, no query string (use [`query`](Self::query)), no `.` or `..`
    /// segments; the host refuses anything else with [`Error::Denied`].
    pub fn new(api: impl Into<String>, method: Method, path: impl Into<String>) -> Self {
        Self {
            api: api.into(),
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            retry: None,
            headers: Vec::new(),
            body_error: None,
        }
    }

    /// Adds a query parameter. The host percent-encodes it; repeat the name for list values.
    pub fn query(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.query.push((name.into(), value.to_string()));
        self
    }

    /// Sets the body to `body` serialised as JSON (replacing any earlier body).
    ///
    /// Serialisation errors (e.g. a map with non-string keys) are reported by
    /// [`send`](Self::send) as [`Error::InvalidBody`].
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_string(body) {
            Ok(text) => {
                self.body = Some(text);
                self.body_error = None;
            }
            Err(e) => {
                self.body = None;
                self.body_error = Some(e.to_string());
            }
        }
        self
    }

    /// Sets the body to JSON text the plugin already has (replacing any earlier body). The host
    /// checks that it is JSON.
    pub fn json_text(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self.body_error = None;
        self
    }

    /// Adds a header. Only names the host allows (e.g. `content-type`, `accept`) get through;
    /// credentials, `Version` and the idempotency header are the host's.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request once, whatever happens: no retries of 429, 5xx or timeouts. For calls
    /// that must not be repeated and have no idempotency key support upstream.
    pub fn no_retry(mut self) -> Self {
        self.retry = Some(wit::RetryMode::Never);
        self
    }

    /// The API's name.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The path below the API's base URL.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The JSON body, if any.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// Sends the request through the host and waits for a 2xx response or an error.
    ///
    /// This blocks until the host's retries finish, bounded by the delivery's time budget; a
    /// budget that runs out first comes back as [`Error::BudgetExhausted`].
    pub fn send(self) -> Result<Response, Error> {
        let req = self.into_wit()?;
        wit::send(&req).map(Response::from).map_err(Error::from)
    }

    /// Sends the request and parses the 2xx body as JSON into `T`: [`send`](Self::send) and
    /// [`Response::json`] in one step, for handlers that only need the decoded answer. Errors
    /// convert as they would separately: API errors by [`Error`]'s retry policy, a body that
    /// does not decode into a permanent failure.
    pub fn send_json<T: DeserializeOwned>(self) -> Result<T, HandlerError> {
        Ok(self.send()?.json()?)
    }

    /// The WIT record the host receives.
    fn into_wit(self) -> Result<wit::Request, Error> {
        if let Some(reason) = self.body_error {
            return Err(Error::InvalidBody(reason));
        }
        Ok(wit::Request {
            api: self.api,
            method: self.method,
            path: self.path,
            query: self.query,
            body: self.body,
            retry: self.retry,
            headers: self.headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize)]
    struct Tags<'a> {
        tags: &'a [&'a str],
    }

    #[test]
    fn builder_fills_every_field_of_the_wit_request() {
        let req = post("highlevel", "/contacts/c-1/tags")
            .query("locationId", "loc-1")
            .query("limit", 100)
            .json(&Tags {
                tags: &["new-lead"],
            })
            .header("accept", "application/json")
            .no_retry()
            .into_wit()
            .unwrap();
        assert_eq!(req.api, "highlevel");
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.path, "/contacts/c-1/tags");
        assert_eq!(
            req.query,
            [
                ("locationId".to_owned(), "loc-1".to_owned()),
                ("limit".to_owned(), "100".to_owned())
            ]
        );
        assert_eq!(req.body.as_deref(), Some(r#"{"tags":["new-lead"]}"#));
        assert_eq!(req.retry, Some(wit::RetryMode::Never));
        assert_eq!(
            req.headers,
            [("accept".to_owned(), "application/json".to_owned())]
        );
    }

    #[test]
    fn defaults_leave_retry_to_the_host() {
        let req = get("highlevel", "/contacts/c-1").into_wit().unwrap();
        assert_eq!(req.method, Method::Get);
        assert!(req.query.is_empty() && req.headers.is_empty());
        assert_eq!(req.body, None);
        assert_eq!(req.retry, None);
    }

    #[test]
    fn each_helper_sets_its_method() {
        assert_eq!(put("a", "/x").method(), Method::Put);
        assert_eq!(patch("a", "/x").method(), Method::Patch);
        assert_eq!(delete("a", "/x").method(), Method::Delete);
    }

    #[test]
    fn unserialisable_body_is_reported_at_send() {
        // JSON object keys must be strings; a map keyed by tuples cannot serialise.
        let mut bad = BTreeMap::new();
        bad.insert((1, 2), "x");
        let err = post("a", "/x").json(&bad).into_wit().unwrap_err();
        assert!(matches!(err, Error::InvalidBody(_)), "{err}");
    }

    #[test]
    fn a_later_body_replaces_an_earlier_one() {
        let mut bad = BTreeMap::new();
        bad.insert((1, 2), "x");
        let req = post("a", "/x")
            .json(&bad)
            .json_text("{}")
            .into_wit()
            .unwrap();
        assert_eq!(req.body.as_deref(), Some("{}"));
    }
}
