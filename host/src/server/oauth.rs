//! `GET /oauth/callback/{api}` on the public listener: where the platform sends the user back
//! after they approved the app. The code is exchanged for the installation's tokens (see
//! `auth::install`), and deliveries waiting for those credentials are woken.
//!
//! Answers are JSON; errors use the public listener's `{"error": {"code", "message"}}` form and
//! never echo the code or a token.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use tokio::sync::Notify;

use super::error::HttpError;
use crate::{
    auth::{StoredTokens, install},
    ids::ApiName,
};

/// Longest authorization code accepted.
const MAX_CODE: usize = 4096;

#[derive(Clone)]
struct CallbackState {
    tokens: StoredTokens,
    wake: Arc<Notify>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    error: Option<String>,
}

/// The callback route.
pub fn router(tokens: StoredTokens, wake: Arc<Notify>) -> Router {
    Router::new()
        .route("/oauth/callback/{api}", get(callback))
        .with_state(CallbackState { tokens, wake })
}

async fn callback(
    State(state): State<CallbackState>,
    Path(api): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let api = ApiName::new(api);
    if state.tokens.endpoint(&api).is_none() {
        return HttpError::client(
            StatusCode::NOT_FOUND,
            "unknown_api",
            "no API with [apis.<name>.oauth] is configured under this name",
        )
        .into_response();
    }
    let code = match (query.code, query.error) {
        (Some(code), _) if !code.is_empty() && code.len() <= MAX_CODE => code,
        (_, Some(_)) => {
            return HttpError::client(
                StatusCode::BAD_REQUEST,
                "install_declined",
                "the platform reported that the install was declined or failed; start it again from the marketplace",
            )
            .into_response();
        }
        _ => {
            return HttpError::client(
                StatusCode::BAD_REQUEST,
                "missing_code",
                "the callback needs a `code` query parameter (at most 4096 bytes) from the platform",
            )
            .into_response();
        }
    };
    match install::complete(&state.tokens, &api, &code).await {
        Ok(tenant) => {
            state.wake.notify_waiters();
            Json(serde_json::json!({"installed": true, "api": api, "tenant": tenant}))
                .into_response()
        }
        Err(error) => {
            let (status, code) = match &error {
                install::InstallError::Refused(_) => (StatusCode::BAD_REQUEST, "code_refused"),
                install::InstallError::NotConfigured(_) => (StatusCode::NOT_FOUND, "unknown_api"),
                install::InstallError::Unavailable(_) | install::InstallError::NoTenant => {
                    (StatusCode::BAD_GATEWAY, "token_endpoint_failed")
                }
                install::InstallError::Store(_) => {
                    tracing::error!(api = %api, error = %error, "storing an installation's credentials failed");
                    return HttpError::client(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "the installation could not be stored; try the install again",
                    )
                    .into_response();
                }
            };
            tracing::warn!(api = %api, error = %error, "an OAuth install failed");
            HttpError::client(status, code, error.to_string()).into_response()
        }
    }
}
