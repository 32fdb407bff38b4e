//! Walking a list endpoint page by page through the host's `pages` resource (WIT 0.1.1).
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmhook_sdk::{HandlerError, api};
//!
//! #[derive(Deserialize)]
//! struct Contact {
//!     id: String,
//! }
//!
//! fn contact_ids(location: &str) -> Result<Vec<String>, HandlerError> {
//!     let req = api::get("highlevel", "/contacts/").query("locationId", location);
//!     api::pages(req, api::PageStyle::StartAfter, 10)?
//!         .items::<Contact>("/contacts")
//!         .map(|c| c.map(|c| c.id))
//!         .collect()
//! }
//! ```
//!
//! The host follows the endpoint's paging rules (cursors, `nextPageUrl`, page numbers), always
//! sends a `limit`, and stops at `max_pages`. Every page is one API call against the manifest's
//! `max_api_calls`, with the host's capability checks, pacing and retries.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Error, Request, Response, wit};
use crate::{HandlerError, error::JsonError};

/// How a list endpoint pages; the host knows each style's parameters.
pub use wit::{CursorStyle, PageStyle};

/// Starts a walk over the pages of `req` (nothing is sent yet), fetching at most `max_pages`
/// pages; the host may lower that to its own limit for the API. Fails only when `req` has a body
/// that could not be serialised.
///
/// Iterate it for each page's [`Response`], or call [`Pages::items`] for the items inside.
pub fn pages(req: Request, style: PageStyle, max_pages: u32) -> Result<Pages, Error> {
    let req = req.into_wit()?;
    Ok(Pages {
        walk: Some(wit::Pages::new(&req, &style, max_pages)),
    })
}

/// A walk over the pages of one list request. Each `next` fetches one page (one API call); the
/// walk ends after the last page, at `max_pages`, or after the first error (which it yields).
#[derive(Debug)]
pub struct Pages {
    /// None once the walk is over; dropping the handle frees it in the host.
    walk: Option<wit::Pages>,
}

impl Iterator for Pages {
    type Item = Result<Response, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let page = self.walk.as_ref()?.next();
        match page {
            Some(Ok(response)) => Some(Ok(Response::from(response))),
            Some(Err(error)) => {
                self.walk = None;
                Some(Err(Error::from(error)))
            }
            None => {
                self.walk = None;
                None
            }
        }
    }
}

impl Pages {
    /// The items of every page, read from the array at the JSON `pointer` of each page body
    /// (e.g. `/contacts`, `/opportunities`, `/messages/messages`) and parsed as `T`: declare
    /// only the fields you need (HighLevel has no field selection).
    ///
    /// A page without an array at `pointer` ends the walk with an error, as does any API error;
    /// both arrive as [`HandlerError`] so a handler can use `?`.
    pub fn items<T: DeserializeOwned>(self, pointer: impl Into<String>) -> Items<T> {
        Items {
            pages: self,
            pointer: pointer.into(),
            buffer: VecDeque::new(),
            marker: std::marker::PhantomData,
        }
    }
}

/// The items of a walk, page after page. Built by [`Pages::items`].
#[derive(Debug)]
pub struct Items<T> {
    pages: Pages,
    pointer: String,
    buffer: VecDeque<Value>,
    marker: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for Items<T> {
    type Item = Result<T, HandlerError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(
                    serde_json::from_value(item)
                        .map_err(|e| JsonError::new("page item", &e).into()),
                );
            }
            let page = match self.pages.next()? {
                Ok(page) => page,
                Err(error) => return Some(Err(error.into())),
            };
            match items_at(&page, &self.pointer) {
                Ok(items) => self.buffer.extend(items),
                Err(error) => {
                    self.pages.walk = None;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// The array at `pointer` in a page body.
fn items_at(page: &Response, pointer: &str) -> Result<Vec<Value>, HandlerError> {
    let mut body: Value = page.json()?;
    match body.pointer_mut(pointer).map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(HandlerError::fail(format!(
            "the page has no item array at `{pointer}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_from_the_pointer() {
        let page = Response::new(
            200,
            Vec::new(),
            r#"{"contacts":[{"id":"a"},{"id":"b"}],"meta":{"total":2}}"#,
        );
        let items = items_at(&page, "/contacts").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["id"], "b");
    }

    #[test]
    fn a_missing_or_non_array_pointer_is_an_error() {
        let page = Response::new(200, Vec::new(), r#"{"contacts":{"id":"a"}}"#);
        assert!(items_at(&page, "/contacts").is_err());
        assert!(items_at(&page, "/nope").is_err());
        let not_json = Response::new(200, Vec::new(), "<html>");
        assert!(items_at(&not_json, "/contacts").is_err());
    }
}
