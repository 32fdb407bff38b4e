//! The admin listener (loopback by default): `/metrics` in Prometheus text format, `/readyz`,
//! and the operators' API under `/admin/...` behind a bearer token compared in constant time.
//! Without a configured token every `/admin` request is refused (deny by default).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use subtle::ConstantTimeEq;

use crate::{
    ids::{DeliveryId, EventId, PluginName, TenantId},
    secret::Secret,
    store::{AnyStore, DeliveryFilter, DeliveryState, Store},
};

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub store: AnyStore,
    /// Set once shutdown begins, so load balancers stop sending traffic.
    pub shutting_down: Arc<AtomicBool>,
    /// The bearer token for `/admin`; None refuses every request.
    pub token: Option<Arc<Secret>>,
}

/// `/metrics`, `/readyz` and `/admin/...`.
pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/deliveries", get(list_deliveries))
        .route("/admin/deliveries/{id}", get(show_delivery))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .merge(admin)
        .with_state(state)
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return refuse(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off: set [admin] token in the config",
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        next.run(req).await
    } else {
        refuse(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "send `Authorization: Bearer <admin token>`",
        )
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics().render(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.shutting_down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n")
        }
    }
}

/// Query of `GET /admin/deliveries`.
#[derive(serde::Deserialize)]
struct ListQuery {
    state: Option<DeliveryState>,
    plugin: Option<String>,
    tenant: Option<String>,
    event_id: Option<String>,
    limit: Option<usize>,
}

async fn list_deliveries(State(state): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    let filter = DeliveryFilter {
        state: q.state,
        plugin: q.plugin.map(PluginName::new),
        tenant: q.tenant.map(TenantId::new),
        event_id: q.event_id.map(EventId::new),
        limit: q.limit.unwrap_or(100).min(1000),
    };
    match state.store.deliveries(filter).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => internal(e),
    }
}

async fn show_delivery(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    match state.store.delivery(&DeliveryId::new(id)).await {
        Ok(Some(record)) => Json(record).into_response(),
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "no delivery with that id",
        ),
        Err(e) => internal(e),
    }
}

fn internal(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "admin request failed");
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the server log",
    )
}
