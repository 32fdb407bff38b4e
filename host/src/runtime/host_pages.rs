//! The `pages` resource of the `api` import: a plugin's walk over a list endpoint, kept in the
//! delivery's resource table as the host client's own [`Pages`].
//!
//! Invariants: at most [`MAX_PAGE_WALKS`] walks are open at once (one more traps the plugin:
//! only code that leaks handles gets there); every page actually sent is one call against
//! `max_api_calls` with its own call number, so its idempotency value differs from every other
//! call of the delivery; a page the cap forbids is not sent and comes back as `denied`.

use wasmtime::component::Resource;

use super::{
    bindings::api::{
        ApiError as WitApiError, CursorStyle, HostPages, PageStyle as WitStyle, Request, Response,
    },
    host_api::to_host_request,
    state::{MAX_PAGE_WALKS, State},
};
use crate::api::{PageStyle, Pages};

impl HostPages for State {
    async fn new(
        &mut self,
        req: Request,
        style: WitStyle,
        max_pages: u32,
    ) -> wasmtime::Result<Resource<Pages>> {
        if self.open_walks >= MAX_PAGE_WALKS {
            return Err(wasmtime::format_err!(
                "the plugin holds {MAX_PAGE_WALKS} `pages` walks open; drop finished ones"
            ));
        }
        // The call number is set before each page is sent; 0 here is never used.
        let ctx = self.call_context(0);
        let walk =
            self.services
                .api
                .pages(&ctx, to_host_request(req), to_host_style(style), max_pages);
        let handle = self.table().push(walk)?;
        self.open_walks += 1;
        Ok(handle)
    }

    async fn next(
        &mut self,
        walk: Resource<Pages>,
    ) -> wasmtime::Result<Option<Result<Response, WitApiError>>> {
        let would_send = self.table().get(&walk)?.would_send();
        if would_send {
            let (granted, number) = self.reserve_calls(1);
            if granted == 0 {
                return Ok(Some(Err(self.cap_reached())));
            }
            self.table().get_mut(&walk)?.set_call_number(number);
        }
        let pages = self.table().get_mut(&walk)?;
        let api = pages.api().clone();
        let page = pages.next().await;
        Ok(page.map(|r| self.answer(&api, r)))
    }

    async fn drop(&mut self, walk: Resource<Pages>) -> wasmtime::Result<()> {
        self.table().delete(walk)?;
        self.open_walks = self.open_walks.saturating_sub(1);
        Ok(())
    }
}

/// The WIT page style in host terms.
fn to_host_style(style: WitStyle) -> PageStyle {
    match style {
        WitStyle::StartAfter => PageStyle::StartAfter,
        WitStyle::Page => PageStyle::Page,
        WitStyle::Skip => PageStyle::Skip,
        WitStyle::Offset => PageStyle::Offset,
        WitStyle::SearchPage => PageStyle::SearchPage,
        WitStyle::SearchAfter => PageStyle::SearchAfter,
        WitStyle::LastMessageId => PageStyle::LastMessageId,
        WitStyle::Cursor(CursorStyle { param, field }) => PageStyle::Cursor { param, field },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_converts() {
        assert_eq!(to_host_style(WitStyle::StartAfter), PageStyle::StartAfter);
        assert_eq!(to_host_style(WitStyle::Page), PageStyle::Page);
        assert_eq!(to_host_style(WitStyle::Skip), PageStyle::Skip);
        assert_eq!(to_host_style(WitStyle::Offset), PageStyle::Offset);
        assert_eq!(to_host_style(WitStyle::SearchPage), PageStyle::SearchPage);
        assert_eq!(to_host_style(WitStyle::SearchAfter), PageStyle::SearchAfter);
        assert_eq!(
            to_host_style(WitStyle::LastMessageId),
            PageStyle::LastMessageId
        );
        assert_eq!(
            to_host_style(WitStyle::Cursor(CursorStyle {
                param: "pageToken".into(),
                field: "nextPageToken".into(),
            })),
            PageStyle::page_token()
        );
    }
}
