//! Pagination: [`Pages`] walks a list endpoint one page per [`Pages::next`], each page being one
//! ordinary `send` (so capabilities, tenant checks, pacing, retries and the breaker apply to
//! every page, `nextPageUrl` pages included). The styles are the ones HighLevel uses
//! ([`PageStyle`]); `walk.rs` holds the per-style rules, `next_url.rs` the `nextPageUrl` checks.
//!
//! Invariants: `limit` is always sent (the plugin's, else the endpoint's declared one, else the
//! API's `page_limit`); no walk fetches more than `min(max_pages, the API's max_pages)` pages; a
//! walk ends after an error (the plugin may start a new one); a refused `nextPageUrl` sends
//! nothing and is returned as `Denied` by the following `next`.

mod next_url;
mod walk;

use super::{ApiClient, ApiError, ApiRequest, ApiResponse, CallContext};
use crate::ids::ApiName;

/// How an endpoint pages. Query styles send `limit` in the query; body styles (`Search*`) send
/// `pageLimit` in a POST JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageStyle {
    /// `startAfter` + `startAfterId` in the query, taken from the answer's `meta`, or the
    /// answer's `meta.nextPageUrl` followed as is (e.g. `GET /contacts`).
    StartAfter,
    /// `page` = 1, 2, ... in the query (e.g. `GET /opportunities/search`).
    Page,
    /// `skip` = 0, n, 2n, ... in the query (e.g. `GET /users/search`).
    Skip,
    /// `offset` = 0, n, 2n, ... in the query (e.g. `GET /products`).
    Offset,
    /// `page` = 1, 2, ... in a POST search body (e.g. `POST /contacts/search`).
    SearchPage,
    /// `searchAfter` in a POST search body, copied from the last item's `searchAfter`.
    SearchAfter,
    /// `lastMessageId` in the query while the answer says `nextPage: true` (conversation
    /// messages: `{"messages": {"lastMessageId", "nextPage", "messages": [...]}}`).
    LastMessageId,
    /// An opaque cursor: query parameter `param` set from the answer's `field` (top level, in
    /// `meta`, or at a JSON pointer when `field` starts with `/`).
    Cursor {
        /// The query parameter carrying the cursor, e.g. `cursor` or `pageToken`.
        param: String,
        /// Where the answer names the next cursor, e.g. `nextCursor` or `nextPageToken`.
        field: String,
    },
}

impl PageStyle {
    /// `cursor` from `nextCursor`.
    pub fn next_cursor() -> PageStyle {
        PageStyle::Cursor {
            param: "cursor".into(),
            field: "nextCursor".into(),
        }
    }

    /// `pageToken` from `nextPageToken`.
    pub fn page_token() -> PageStyle {
        PageStyle::Cursor {
            param: "pageToken".into(),
            field: "nextPageToken".into(),
        }
    }

    /// Whether the style pages through a POST body rather than the query.
    pub fn uses_body(&self) -> bool {
        matches!(self, PageStyle::SearchPage | PageStyle::SearchAfter)
    }
}

/// A walk over the pages of one list request. Build it with [`ApiClient::pages`].
#[derive(Debug)]
pub struct Pages {
    client: ApiClient,
    ctx: CallContext,
    /// The API every page is sent to.
    api: ApiName,
    base_url: Option<reqwest::Url>,
    walk: Option<walk::Walk>,
    next: Option<ApiRequest>,
    /// An error to return from the next `next` (a refused setup or `nextPageUrl`).
    pending: Option<ApiError>,
    pages_left: u32,
    pages_sent: u32,
    truncated: bool,
}

impl Pages {
    pub(super) fn new(
        client: ApiClient,
        ctx: CallContext,
        mut req: ApiRequest,
        style: PageStyle,
        max_pages: u32,
    ) -> Pages {
        let api = client.inner.api(&req.api).map(|api| &api.config);
        let default_limit = api.map_or(crate::config::DEFAULT_PAGE_LIMIT, |c| {
            c.page_limit_for(&req.path)
        });
        let ceiling = api.map_or(crate::config::DEFAULT_MAX_PAGES, |c| c.max_pages);
        let base_url = api.map(|c| c.base_url.clone());
        let api = req.api.clone();
        let (walk, next, pending) = match walk::first(style, &mut req, default_limit) {
            Ok(walk) => (Some(walk), Some(req), None),
            Err(reason) => (None, None, Some(ApiError::Denied(reason))),
        };
        Pages {
            client,
            ctx,
            api,
            base_url,
            walk,
            next,
            pending,
            pages_left: max_pages.clamp(1, ceiling.max(1)),
            pages_sent: 0,
            truncated: false,
        }
    }

    /// Names where the items of a page are (a JSON pointer such as `/messages/messages`), for
    /// answers whose longest array is not the item list.
    pub fn items_at(mut self, pointer: impl Into<String>) -> Pages {
        if let Some(walk) = &mut self.walk {
            walk.items_at = Some(pointer.into());
        }
        self
    }

    /// The API the walk's pages are sent to.
    pub fn api(&self) -> &ApiName {
        &self.api
    }

    /// Sets the call number (for the idempotency header) the next page is sent with; later
    /// pages count up from it. By default the first page uses the context's `call_number`.
    pub fn set_call_number(&mut self, call_number: u32) {
        self.ctx.call_number = call_number;
    }

    /// Fetches the next page: None when the walk is over (the last page was short, the cursor
    /// ran out, `max_pages` was reached, or the previous page failed).
    pub async fn next(&mut self) -> Option<Result<ApiResponse, ApiError>> {
        if let Some(error) = self.pending.take() {
            self.next = None;
            return Some(Err(error));
        }
        let req = self.next.take()?;
        if self.pages_left == 0 {
            // There was a next page, but the guard stops here.
            self.truncated = true;
            return None;
        }
        self.pages_left -= 1;
        let result = self.client.send(&self.ctx, req.clone()).await;
        self.ctx.call_number = self.ctx.call_number.saturating_add(1);
        self.pages_sent += 1;
        let response = match result {
            Ok(response) => response,
            Err(error) => return Some(Err(error)),
        };
        if let Some(walk) = &mut self.walk {
            match walk::next(walk, &req, &response.body, self.base_url.as_ref()) {
                Ok(next) => self.next = next,
                Err(reason) => {
                    tracing::warn!(
                        plugin = %self.ctx.plugin, tenant = %self.ctx.tenant, api = %req.api,
                        %reason, "next page refused; nothing sent"
                    );
                    self.pending = Some(ApiError::Denied(reason));
                }
            }
        }
        Some(Ok(response))
    }

    /// Whether the next [`Pages::next`] would send a request (rather than return an error
    /// or None without sending). Callers that count calls check their cap with it.
    pub fn would_send(&self) -> bool {
        self.pending.is_none() && self.next.is_some() && self.pages_left > 0
    }

    /// Pages sent so far (each one API call).
    pub fn pages_sent(&self) -> u32 {
        self.pages_sent
    }

    /// Whether the walk stopped at `max_pages` while the API had more.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}
