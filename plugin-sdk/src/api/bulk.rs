//! Calls that save API budget (WIT 0.1.1): cached reference data, batches, and HighLevel's bulk
//! tag endpoint.
//!
//! ```no_run
//! use wasmhook_sdk::{HandlerError, api};
//!
//! fn tag_winners(location: &str, contacts: &[String]) -> Result<(), HandlerError> {
//!     // One request for all contacts instead of one per contact.
//!     api::bulk_tags("highlevel", location, contacts, &["won"], api::TagAction::Add)
//!         .send()?;
//!     Ok(())
//! }
//! ```

use super::{Error, Request, Response, post, wit};

/// Sends a GET through the host's reference-data cache: a fresh answer to the same request for
/// the same tenant (from any plugin) comes back without an API call; otherwise it is sent and
/// kept for the host's TTL. Use it for data that changes rarely: pipelines and their stages,
/// calendars, custom field definitions, users. The host drops a tenant's cached answers when a
/// webhook says they changed (e.g. a pipeline update).
///
/// Capabilities are checked first, as for [`Request::send`]; a non-GET request is
/// [`Error::Denied`]. It counts as one call against `max_api_calls` even when the cache answers.
pub fn get_cached(req: Request) -> Result<Response, Error> {
    let req = req.into_wit()?;
    wit::get_cached(&req)
        .map(Response::from)
        .map_err(Error::from)
}

/// Sends several requests at once under the tenant's pacing, a few in flight at a time, and
/// returns one result per request, in order. Each request is checked, retried and counted
/// against `max_api_calls` on its own; requests past the cap come back as [`Error::Denied`]
/// without being sent. A request whose body could not be serialised is reported in its place and
/// not sent.
pub fn batch(requests: Vec<Request>) -> Vec<Result<Response, Error>> {
    let mut results: Vec<Option<Result<Response, Error>>> = Vec::with_capacity(requests.len());
    let mut sendable = Vec::with_capacity(requests.len());
    for req in requests {
        match req.into_wit() {
            Ok(req) => {
                sendable.push(req);
                results.push(None);
            }
            Err(error) => results.push(Some(Err(error))),
        }
    }
    let mut answers = if sendable.is_empty() {
        Vec::new()
    } else {
        wit::send_batch(&sendable)
    }
    .into_iter();
    results
        .into_iter()
        .map(|slot| match slot {
            Some(local) => local,
            None => match answers.next() {
                Some(answer) => answer.map(Response::from).map_err(Error::from),
                // The host returns one result per request; a short answer is its bug.
                None => Err(Error::Transport("the host returned too few results".into())),
            },
        })
        .collect()
}

/// Whether [`bulk_tags`] adds or removes the tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagAction {
    /// Adds the tags to every contact (existing tags stay).
    Add,
    /// Removes the tags from every contact (absent tags are ignored).
    Remove,
}

impl TagAction {
    /// The path segment HighLevel uses: `add` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            TagAction::Add => "add",
            TagAction::Remove => "remove",
        }
    }
}

/// One `POST /contacts/bulk/tags/update/{add|remove}` on API `api` that adds or removes `tags`
/// on all `contacts` of `location_id` (the event's tenant) — one call instead of one per
/// contact. Send it with [`Request::send`]; the manifest must allow
/// `POST /contacts/bulk/tags/update/*`. HighLevel caps how many contacts one call may name, so
/// chunk very long lists.
pub fn bulk_tags<C: AsRef<str>, T: AsRef<str>>(
    api: impl Into<String>,
    location_id: &str,
    contacts: &[C],
    tags: &[T],
    action: TagAction,
) -> Request {
    let ids: Vec<&str> = contacts.iter().map(AsRef::as_ref).collect();
    let tags: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
    post(
        api,
        format!("/contacts/bulk/tags/update/{}", action.as_str()),
    )
    .json(&serde_json::json!({ "locationId": location_id, "ids": ids, "tags": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_tags_builds_one_request_for_all_contacts() {
        let contacts = vec!["c1".to_owned(), "c2".to_owned(), "c3".to_owned()];
        let req = bulk_tags("highlevel", "loc-1", &contacts, &["vip"], TagAction::Add)
            .into_wit()
            .unwrap();
        assert_eq!(req.method, wit::Method::Post);
        assert_eq!(req.path, "/contacts/bulk/tags/update/add");
        let body: serde_json::Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"locationId": "loc-1", "ids": ["c1", "c2", "c3"], "tags": ["vip"]})
        );
    }

    #[test]
    fn remove_uses_its_own_path() {
        let req = bulk_tags("highlevel", "loc", &["c"], &["old"], TagAction::Remove);
        assert_eq!(req.path(), "/contacts/bulk/tags/update/remove");
    }
}
