//! The admin listener (loopback by default): `/metrics` in Prometheus text format and `/readyz`.
//! Operators' endpoints under `/admin/...` join here behind the bearer token.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use crate::store::{AnyStore, Store};

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub store: AnyStore,
    /// Set once shutdown begins, so load balancers stop sending traffic.
    pub shutting_down: Arc<AtomicBool>,
}

/// `/metrics` and `/readyz`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics().render(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.shutting_down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".to_string());
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n".to_string())
        }
    }
}
