//! The operators' credential endpoints (behind the admin token, like the rest of `/admin`):
//! - `GET /admin/tokens` every stored credential: api, tenant, kind, key id, age, expiry,
//!   overlap — never a token value
//! - `PUT /admin/tokens/{api}` `{tenant?, token, rotate?, overlap_ms?}` registers a static
//!   token (tenant `*` or absent: every tenant of the API); with `rotate`, the current one stays
//!   usable on 401 for the overlap (default `[credentials] overlap`)
//! - `POST /admin/keys/rotate` re-seals every credential under the current master key
//!
//! Tokens arrive only in request bodies (never in a URL), and are never logged or echoed.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::admin::{AdminState, refuse};
use crate::{
    auth::tokens::SetStaticError,
    ids::{ApiName, TenantId, now_ms},
    secret::Secret,
    store::{API_WIDE, CredentialKind, Store},
};

/// Largest token accepted.
const MAX_TOKEN: usize = 8192;
/// Rows listed at most.
const MAX_LISTED: usize = 10_000;

/// One credential as listed.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenInfo {
    pub api: ApiName,
    pub tenant: TenantId,
    pub kind: CredentialKind,
    pub key_id: String,
    /// Seconds since the token was obtained or registered.
    pub age_s: i64,
    /// Seconds until the access token expires (negative: expired); None: it does not.
    pub expires_in_s: Option<i64>,
    /// Until when (ms since the epoch) a rotated-out static token is still tried.
    pub previous_until_ms: Option<i64>,
    pub scopes: String,
}

#[derive(Deserialize)]
pub struct SetBody {
    pub tenant: Option<String>,
    pub token: String,
    #[serde(default)]
    pub rotate: bool,
    pub overlap_ms: Option<u64>,
}

fn disabled() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "credentials_off",
        "this server has no credential store",
    )
}

pub(super) async fn list(State(state): State<AdminState>) -> Response {
    let Some(tokens) = &state.tokens else {
        return disabled();
    };
    let store = tokens.vault().store();
    let (mut listed, mut after) = (Vec::new(), None);
    let now = now_ms();
    while listed.len() < MAX_LISTED {
        let page = match store.credentials(after, 256).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "listing credentials failed");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "listing failed",
                );
            }
        };
        let Some(last) = page.last() else { break };
        after = Some((last.api.clone(), last.tenant.clone()));
        listed.extend(page.into_iter().map(|r| TokenInfo {
            age_s: (now - r.issued_at_ms) / 1000,
            expires_in_s: r.expires_at_ms.map(|e| (e - now) / 1000),
            api: r.api,
            tenant: r.tenant,
            kind: r.kind,
            key_id: r.key_id,
            previous_until_ms: r.previous_until_ms,
            scopes: r.scopes,
        }));
    }
    Json(listed).into_response()
}

pub(super) async fn set(
    State(state): State<AdminState>,
    Path(api): Path<String>,
    Json(body): Json<SetBody>,
) -> Response {
    let Some(tokens) = &state.tokens else {
        return disabled();
    };
    let token = body.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN || http::HeaderValue::from_str(token).is_err() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_token",
            "the token must be 1-8192 characters that can go into an HTTP header",
        );
    }
    let api = ApiName::new(api);
    let tenant = TenantId::new(body.tenant.unwrap_or_else(|| API_WIDE.to_string()));
    let overlap = body.rotate.then(|| {
        body.overlap_ms
            .map(Duration::from_millis)
            .unwrap_or(tokens.config().overlap)
    });
    match tokens
        .set_static(&api, &tenant, Secret::new(token), overlap)
        .await
    {
        Ok(opened) => {
            tracing::info!(api = %api, tenant = %tenant, rotated = body.rotate, "static token registered by an operator");
            Json(serde_json::json!({
                "api": api,
                "tenant": tenant,
                "key_id": opened.record.key_id,
                "previous_until_ms": opened.record.previous_until_ms,
            }))
            .into_response()
        }
        Err(e @ (SetStaticError::NothingToRotate | SetStaticError::Unchanged)) => {
            refuse(StatusCode::CONFLICT, "wrong_state", &e.to_string())
        }
        Err(e) => {
            tracing::error!(api = %api, error = %e, "registering a static token failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                &e.to_string(),
            )
        }
    }
}

pub(super) async fn rotate_keys(State(state): State<AdminState>) -> Response {
    let Some(tokens) = &state.tokens else {
        return disabled();
    };
    match tokens.vault().rotate().await {
        Ok(resealed) => {
            tracing::info!(
                resealed,
                "credentials re-sealed under the current master key"
            );
            Json(serde_json::json!({ "resealed": resealed })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "re-sealing credentials failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rotate_failed",
                &e.to_string(),
            )
        }
    }
}
