//! The `api` import: converts the plugin's WIT requests into the host's [`ApiRequest`], enforces
//! the manifest's per-delivery call cap, and hands them to the shared [`crate::api::ApiClient`]
//! with a [`CallContext`] naming the plugin, the tenant, its grants, the call's number and the
//! delivery's deadline. Capability checks, credentials, retries, pacing and caching are the
//! client's. The `pages` resource lives in `host_pages.rs`.
//!
//! Invariants: a call past `max_api_calls` is refused with `denied` before the client sees it,
//! and is not counted; `call_number` is 1-based and counts only calls handed to the client, so
//! a redelivery that makes the same calls repeats the same idempotency keys. A batch item and a
//! page are one call each; a `get-cached` is one call even when the cache answers (the plugin
//! cannot know which it will be, so its cap does not depend on the cache's state).
//!
//! Every answer goes through [`State::answer`]: when the client says a call failed because the
//! API told the tenant to wait (its daily quota is spent), the delivery's state remembers until
//! when, so the dispatcher defers the delivery instead of spending an attempt.

use super::{
    QuotaWait,
    bindings::api::{
        ApiError as WitApiError, Host, HttpFailure, Method, Request, Response,
        RetryMode as WitRetry,
    },
    state::State,
};
use crate::{
    api::{ApiError, ApiRequest, ApiResponse, CallContext, RetryMode},
    ids::{ApiName, now_ms},
};

impl State {
    /// Reserves `n` calls against `max_api_calls`: how many of them fit (maybe 0), and the
    /// call number of the first. The reserved calls are counted at once.
    pub(super) fn reserve_calls(&mut self, n: u32) -> (u32, u32) {
        let granted = n.min(self.max_api_calls.saturating_sub(self.api_calls));
        let first = self.api_calls.saturating_add(1);
        self.api_calls = self.api_calls.saturating_add(granted);
        (granted, first)
    }

    /// The context for calls starting at `call_number`.
    pub(super) fn call_context(&self, call_number: u32) -> CallContext {
        CallContext {
            plugin: self.tags.plugin.clone(),
            tenant: self.tags.tenant.clone(),
            capabilities: self.capabilities.clone(),
            idempotency_key: self.idempotency_key.clone(),
            call_number,
            deadline: self.deadline,
        }
    }

    /// The `denied` answer for a call past the cap.
    pub(super) fn cap_reached(&self) -> WitApiError {
        WitApiError::Denied(format!(
            "max_api_calls ({}) reached for this delivery",
            self.max_api_calls
        ))
    }

    /// The plugin's view of the client's answer to a call on `api`. A failure that is a quota
    /// deferral (the API told the tenant to wait) is remembered, keeping the latest end, so
    /// the dispatcher can defer the delivery without spending an attempt.
    pub(super) fn answer(
        &mut self,
        api: &ApiName,
        result: Result<ApiResponse, ApiError>,
    ) -> Result<Response, WitApiError> {
        result.map(to_wit_response).map_err(|err| {
            let tenant = &self.tags.tenant;
            if let Some(wait) = self.services.api.quota_deferral(api, tenant, &err) {
                let until_ms = now_ms().saturating_add(wait.as_millis() as i64);
                if self
                    .quota_wait
                    .as_ref()
                    .is_none_or(|w| w.until_ms < until_ms)
                {
                    self.quota_wait = Some(QuotaWait {
                        api: api.clone(),
                        until_ms,
                    });
                }
            }
            to_wit_error(err)
        })
    }

    /// One call (`send`, or `get-cached` when `cached`), counted against the cap.
    async fn call(&mut self, req: Request, cached: bool) -> Result<Response, WitApiError> {
        let (granted, number) = self.reserve_calls(1);
        if granted == 0 {
            return Err(self.cap_reached());
        }
        let ctx = self.call_context(number);
        let req = to_host_request(req);
        let api = req.api.clone();
        let client = &self.services.api;
        let result = if cached {
            client.get_cached(&ctx, req).await
        } else {
            client.send(&ctx, req).await
        };
        self.answer(&api, result)
    }
}

impl Host for State {
    async fn send(&mut self, req: Request) -> Result<Response, WitApiError> {
        self.call(req, false).await
    }

    async fn get_cached(&mut self, req: Request) -> Result<Response, WitApiError> {
        self.call(req, true).await
    }

    async fn send_batch(&mut self, reqs: Vec<Request>) -> Vec<Result<Response, WitApiError>> {
        let wanted = u32::try_from(reqs.len()).unwrap_or(u32::MAX);
        let (granted, first) = self.reserve_calls(wanted);
        let mut reqs = reqs.into_iter();
        // The first `granted` requests run; the rest are past the cap and refused in place, so
        // the answer still has one result per request, in order.
        let allowed: Vec<ApiRequest> = reqs
            .by_ref()
            .take(granted as usize)
            .map(to_host_request)
            .collect();
        let ctx = self.call_context(first);
        let apis: Vec<ApiName> = allowed.iter().map(|r| r.api.clone()).collect();
        let answers = self.services.api.send_batch(&ctx, allowed).await;
        let mut results: Vec<Result<Response, WitApiError>> = apis
            .iter()
            .zip(answers)
            .map(|(api, r)| self.answer(api, r))
            .collect();
        results.extend(reqs.map(|_| Err(self.cap_reached())));
        results
    }
}

/// The WIT request in host types.
pub(super) fn to_host_request(req: Request) -> ApiRequest {
    ApiRequest {
        api: ApiName::new(req.api),
        method: match req.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        },
        path: req.path,
        query: req.query,
        body: req.body,
        retry: match req.retry {
            None | Some(WitRetry::Auto) => RetryMode::Auto,
            Some(WitRetry::Never) => RetryMode::Never,
        },
        headers: req.headers,
    }
}

/// The host's 2xx answer as the WIT record.
pub(super) fn to_wit_response(resp: ApiResponse) -> Response {
    Response {
        status: resp.status,
        headers: resp.headers,
        body: resp.body,
    }
}

/// The host's error as the WIT variant the plugin matches on.
pub(super) fn to_wit_error(err: ApiError) -> WitApiError {
    match err {
        ApiError::Denied(why) => WitApiError::Denied(why),
        ApiError::ClientError { status, body } => {
            WitApiError::ClientError(HttpFailure { status, body })
        }
        ApiError::Auth { status, body } => WitApiError::Auth(HttpFailure { status, body }),
        ApiError::RateLimited { status, body } => {
            WitApiError::RateLimited(HttpFailure { status, body })
        }
        ApiError::ServerError { status, body } => {
            WitApiError::ServerError(HttpFailure { status, body })
        }
        ApiError::Timeout => WitApiError::Timeout,
        ApiError::Transport(why) => WitApiError::Transport(why),
        ApiError::BudgetExhausted { retry_after_ms } => {
            WitApiError::BudgetExhausted(retry_after_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_convert_with_auto_retry_by_default() {
        let req = Request {
            api: "highlevel".into(),
            method: Method::Patch,
            path: "/contacts/c1".into(),
            query: vec![("locationId".into(), "loc".into())],
            body: Some("{}".into()),
            retry: None,
            headers: vec![("accept".into(), "application/json".into())],
        };
        let host = to_host_request(req);
        assert_eq!(host.api.as_str(), "highlevel");
        assert_eq!(host.method, http::Method::PATCH);
        assert_eq!(host.path, "/contacts/c1");
        assert_eq!(host.query, vec![("locationId".into(), "loc".into())]);
        assert_eq!(host.retry, RetryMode::Auto);

        let never = Request {
            api: "a".into(),
            method: Method::Delete,
            path: "/x".into(),
            query: vec![],
            body: None,
            retry: Some(WitRetry::Never),
            headers: vec![],
        };
        let host = to_host_request(never);
        assert_eq!(host.method, http::Method::DELETE);
        assert_eq!(host.retry, RetryMode::Never);
    }

    #[test]
    fn errors_keep_their_status_and_body() {
        let err = to_wit_error(ApiError::ClientError {
            status: 422,
            body: b"bad".to_vec(),
        });
        match err {
            WitApiError::ClientError(f) => {
                assert_eq!(f.status, 422);
                assert_eq!(f.body, b"bad");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            to_wit_error(ApiError::BudgetExhausted {
                retry_after_ms: 1500
            }),
            WitApiError::BudgetExhausted(1500)
        ));
        assert!(matches!(
            to_wit_error(ApiError::Timeout),
            WitApiError::Timeout
        ));
    }
}
