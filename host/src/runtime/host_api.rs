//! The `api` import: converts the plugin's WIT request into the host's [`ApiRequest`], enforces
//! the manifest's per-delivery call cap, and hands it to the shared [`crate::api::ApiClient`]
//! with a [`CallContext`] naming the plugin, the tenant, its grants, the call's number and the
//! delivery's deadline. Capability checks, credentials, retries and pacing are the client's.
//!
//! Invariant: a call past `max_api_calls` is refused with `denied` before the client sees it,
//! and is not counted; `call_number` is 1-based and counts only calls handed to the client, so
//! a redelivery that makes the same calls repeats the same idempotency keys.

use super::{
    bindings::api::{
        ApiError as WitApiError, Host, HttpFailure, Method, Request, Response,
        RetryMode as WitRetry,
    },
    state::State,
};
use crate::{
    api::{ApiError, ApiRequest, ApiResponse, CallContext, RetryMode},
    ids::ApiName,
};

impl Host for State {
    async fn send(&mut self, req: Request) -> Result<Response, WitApiError> {
        if self.api_calls >= self.max_api_calls {
            return Err(WitApiError::Denied(format!(
                "max_api_calls ({}) reached for this delivery",
                self.max_api_calls
            )));
        }
        self.api_calls += 1;
        let ctx = CallContext {
            plugin: self.tags.plugin.clone(),
            tenant: self.tags.tenant.clone(),
            capabilities: self.capabilities.clone(),
            idempotency_key: self.idempotency_key.clone(),
            call_number: self.api_calls,
            deadline: self.deadline,
        };
        self.services
            .api
            .send(&ctx, to_host_request(req))
            .await
            .map(to_wit_response)
            .map_err(to_wit_error)
    }
}

/// The WIT request in host types.
fn to_host_request(req: Request) -> ApiRequest {
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

fn to_wit_response(resp: ApiResponse) -> Response {
    Response {
        status: resp.status,
        headers: resp.headers,
        body: resp.body,
    }
}

fn to_wit_error(err: ApiError) -> WitApiError {
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
