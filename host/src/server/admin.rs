//! The admin listener (loopback by default): `/metrics` in Prometheus text format, `/readyz`
//! (store reachable, plugins loaded, not shutting down),
//! and the operators' API under `/admin/...` behind a bearer token compared in constant time.
//! Without a configured token every `/admin` request is refused (deny by default).
//!
//! The operators' API (the `wasmhook deliveries|replay|purge|erase` commands call it):
//! - `GET /admin/deliveries?state=&plugin=&tenant=&event_id=&since_ms=&limit=` list, newest first
//! - `GET /admin/deliveries/{id}` one delivery with its attempts, errors and plugin logs
//! - `POST /admin/deliveries/{id}/replay` run a dead or succeeded delivery again
//! - `DELETE /admin/deliveries/{id}` cancel (delete) a pending delivery
//! - `POST /admin/replay` `{plugin?, tenant?, since_ms?, rate_per_sec?}` replay dead ones, paced
//! - `POST /admin/purge` `{plugin?, died_before_ms?}` delete dead deliveries
//! - `POST /admin/erase` `{tenant, contact?}` remove what is held about a tenant or a contact
//! - `/admin/tokens`, `/admin/keys/rotate`: credentials (see `admin_tokens`)
//! - `GET /admin/status` the live summary of `wasmhook status` (see `server::status`)
//!
//! Errors are `{"error": {"code", "message"}}`: 404 `not_found`, 409 `wrong_state` /
//! `payload_dropped`, 400 `bad_request`; store failures are a generic 500 and are logged.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::Notify;

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use subtle::ConstantTimeEq;

use crate::{
    ids::{ApiName, DeliveryId, EventId, PluginName, TenantId},
    plugins::{PluginSet, SharedPlugins},
    secret::Secret,
    store::{
        AnyStore, DeliveryFilter, DeliveryRecord, DeliveryState, EraseRequest, Pacing, PurgeFilter,
        Removed, ReplayFilter, Store, StoreError,
    },
};

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub store: AnyStore,
    /// Set once shutdown begins, so load balancers stop sending traffic.
    pub shutting_down: Arc<AtomicBool>,
    /// The bearer token for `/admin`; None refuses every request.
    pub token: Option<Arc<Secret>>,
    /// Wakes the dispatcher after a replay made deliveries due.
    pub wake: Arc<Notify>,
    /// The live plugins: a pending delivery of a plugin that is not loaded is listed with a note
    /// saying that it waits for it, and `/readyz` needs one loaded. `None` (tests of the API
    /// alone) adds no notes and skips that readiness check.
    pub plugins: Option<SharedPlugins>,
    /// The credential store, for `/admin/tokens` and `/admin/keys/rotate`.
    pub tokens: Option<crate::auth::StoredTokens>,
    /// The configured APIs, for `/admin/status`.
    pub apis: Arc<[ApiName]>,
}

/// `/metrics`, `/readyz` and `/admin/...`.
pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/deliveries", get(list_deliveries))
        .route(
            "/admin/deliveries/{id}",
            get(show_delivery).delete(cancel_delivery),
        )
        .route("/admin/deliveries/{id}/replay", post(replay_delivery))
        .route("/admin/replay", post(replay_dead))
        .route("/admin/purge", post(purge))
        .route("/admin/erase", post(erase))
        .route("/admin/tokens", get(super::admin_tokens::list))
        .route(
            "/admin/tokens/{api}",
            axum::routing::put(super::admin_tokens::set),
        )
        .route("/admin/keys/rotate", post(super::admin_tokens::rotate_keys))
        .route("/admin/status", get(super::status::status))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .merge(admin)
        .with_state(state)
}

pub(super) fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
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

/// Ready when not shutting down, the store answers and at least one plugin is loaded (a server
/// without handlers would store events that nothing runs, so traffic is better sent elsewhere
/// until the plugin folder is fixed).
async fn readyz(State(state): State<AdminState>) -> (StatusCode, String) {
    let unavailable = |why: &str| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    if state.shutting_down.load(Ordering::Relaxed) {
        return unavailable("shutting down");
    }
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness: store unreachable");
        return unavailable("store unreachable");
    }
    match state.plugins.as_ref().map(|p| p.current().len()) {
        Some(0) => unavailable("no plugins loaded: see the log for why each was skipped"),
        Some(n) => (StatusCode::OK, format!("ready: {n} plugin(s) loaded\n")),
        None => (StatusCode::OK, "ready\n".to_string()),
    }
}

/// Query of `GET /admin/deliveries`.
#[derive(serde::Deserialize)]
struct ListQuery {
    state: Option<DeliveryState>,
    plugin: Option<String>,
    tenant: Option<String>,
    event_id: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
}

/// Most deliveries one list returns.
const MAX_LIST: usize = 1000;

/// Dead deliveries revived per store command of a bulk replay.
const REPLAY_BATCH: usize = 256;

/// Dead deliveries deleted per store command of a purge.
const PURGE_BATCH: usize = 256;

async fn list_deliveries(State(state): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    let filter = DeliveryFilter {
        state: q.state,
        plugin: q.plugin.map(PluginName::new),
        tenant: q.tenant.map(TenantId::new),
        event_id: q.event_id.map(EventId::new),
        since_ms: q.since_ms,
        limit: q.limit.unwrap_or(100).min(MAX_LIST),
    };
    match state.store.deliveries(filter).await {
        Ok(mut list) => {
            if let Some(plugins) = &state.plugins {
                let live = plugins.current();
                for record in &mut list {
                    note_missing_plugin(&live, record);
                }
            }
            Json(list).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Notes on a pending delivery whose plugin is not loaded (deleted from the plugin folder, or
/// failing to load) that it waits for the plugin: it is not claimed, and spends no attempts,
/// until the plugin returns or an operator cancels it.
fn note_missing_plugin(live: &PluginSet, record: &mut DeliveryRecord) {
    if record.state == DeliveryState::Pending && live.get(&record.plugin).is_none() {
        record.note = Some(format!(
            "waiting: plugin {} is not loaded; it runs when the plugin returns, or cancel it",
            record.plugin
        ));
    }
}

async fn show_delivery(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    match state.store.delivery(&DeliveryId::new(id)).await {
        Ok(Some(mut record)) => {
            if let Some(plugins) = &state.plugins {
                note_missing_plugin(&plugins.current(), &mut record);
            }
            Json(record).into_response()
        }
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "no delivery with that id",
        ),
        Err(e) => store_error(e),
    }
}

async fn replay_delivery(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let id = DeliveryId::new(id);
    match state.store.replay(&id).await {
        Ok(()) => {
            tracing::info!(delivery = %id, "delivery replayed by an operator");
            state.wake.notify_one();
            Json(serde_json::json!({ "replayed": id })).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn cancel_delivery(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let id = DeliveryId::new(id);
    match state.store.cancel(&id).await {
        Ok(()) => {
            tracing::info!(delivery = %id, "delivery cancelled by an operator");
            Json(serde_json::json!({ "cancelled": id })).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Body of `POST /admin/replay`.
#[derive(serde::Deserialize, serde::Serialize, Debug, Default, PartialEq)]
pub struct ReplayBody {
    pub plugin: Option<String>,
    pub tenant: Option<String>,
    /// Only deliveries that died at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Pace: deliveries made due per second (None: all at once).
    pub rate_per_sec: Option<f64>,
}

/// Answer of `POST /admin/replay`.
#[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
pub struct ReplayAnswer {
    pub replayed: u64,
    /// When the last revived delivery is due (ms since the epoch); None if none was.
    pub last_due_ms: Option<i64>,
}

async fn replay_dead(State(state): State<AdminState>, Json(body): Json<ReplayBody>) -> Response {
    let spacing_ms = match body.rate_per_sec {
        None => 0,
        Some(rate) if rate.is_finite() && rate > 0.0 => (1000.0 / rate).round() as i64,
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "rate_per_sec must be a positive number",
            );
        }
    };
    let filter = ReplayFilter {
        plugin: body.plugin.map(PluginName::new),
        tenant: body.tenant.map(TenantId::new),
        since_ms: body.since_ms,
    };
    let mut pacing = Pacing {
        first_due_ms: crate::ids::now_ms(),
        spacing_ms,
    };
    let mut replayed = 0u64;
    let mut last_due_ms = None;
    // Batches keep each store command short; due times continue from one batch to the next,
    // so the dispatcher itself paces the replay (the request returns at once).
    loop {
        match state
            .store
            .replay_dead(filter.clone(), pacing, REPLAY_BATCH)
            .await
        {
            Ok(ids) => {
                let n = ids.len() as i64;
                if n > 0 {
                    last_due_ms = Some(pacing.first_due_ms + (n - 1) * spacing_ms);
                    pacing.first_due_ms += n * spacing_ms;
                    replayed += n as u64;
                    state.wake.notify_one();
                }
                if ids.len() < REPLAY_BATCH {
                    break;
                }
            }
            Err(e) => return store_error(e),
        }
    }
    tracing::info!(
        replayed,
        spacing_ms,
        "dead deliveries replayed by an operator"
    );
    Json(ReplayAnswer {
        replayed,
        last_due_ms,
    })
    .into_response()
}

/// Body of `POST /admin/purge`.
#[derive(serde::Deserialize, serde::Serialize, Debug, Default, PartialEq)]
pub struct PurgeBody {
    pub plugin: Option<String>,
    /// Only deliveries that died before this time (ms since the epoch).
    pub died_before_ms: Option<i64>,
}

async fn purge(State(state): State<AdminState>, Json(body): Json<PurgeBody>) -> Response {
    let filter = PurgeFilter {
        plugin: body.plugin.map(PluginName::new),
        died_before_ms: body.died_before_ms,
    };
    let mut total = Removed::default();
    loop {
        match state.store.purge_dead(filter.clone(), PURGE_BATCH).await {
            Ok(removed) => {
                total.add(removed);
                if (removed.deliveries as usize) < PURGE_BATCH {
                    break;
                }
            }
            Err(e) => return store_error(e),
        }
    }
    tracing::info!(
        deliveries = total.deliveries,
        "dead deliveries purged by an operator"
    );
    Json(total).into_response()
}

async fn erase(State(state): State<AdminState>, Json(body): Json<EraseRequest>) -> Response {
    if body.tenant.as_str().is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "tenant is required");
    }
    match state.store.erase(body.clone()).await {
        Ok(removed) => {
            // The ids are the operator's own input; logging them lets the erasure be audited.
            tracing::info!(
                tenant = %body.tenant,
                contact = body.contact.as_deref().unwrap_or(""),
                events = removed.events,
                deliveries = removed.deliveries,
                kv_entries = removed.kv_entries,
                "erased by an operator"
            );
            Json(removed).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Maps a store error to its answer: the operator's mistakes with their code, failures as a
/// generic 500 (logged).
pub(super) fn store_error(e: StoreError) -> Response {
    match &e {
        StoreError::NotFound(_) => refuse(StatusCode::NOT_FOUND, "not_found", &e.to_string()),
        StoreError::WrongState { .. } => {
            refuse(StatusCode::CONFLICT, "wrong_state", &e.to_string())
        }
        StoreError::PayloadDropped(_) => {
            refuse(StatusCode::CONFLICT, "payload_dropped", &e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "admin request failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        ids::SourceName,
        store::{NewDelivery, NewEvent, sqlite::SqliteStore},
    };

    const TOKEN: &str = "admin-unit-token";

    async fn state(dir: &std::path::Path) -> AdminState {
        AdminState {
            store: AnyStore::Sqlite(SqliteStore::open(&dir.join("s.db")).await.unwrap()),
            shutting_down: Arc::new(AtomicBool::new(false)),
            token: Some(Arc::new(Secret::new(TOKEN))),
            wake: Arc::new(Notify::new()),
            plugins: None,
            tokens: None,
            apis: Arc::from([]),
        }
    }

    async fn readiness(state: &AdminState) -> (StatusCode, String) {
        let response = router(state.clone())
            .oneshot(
                axum::http::Request::get("/readyz")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Without a plugin and while shutting down the server is not ready, and says why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_needs_plugins_and_no_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let state = AdminState {
            plugins: Some(SharedPlugins::default()),
            ..state(dir.path()).await
        };
        let (status, body) = readiness(&state).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no plugins loaded"), "{body}");
        state.shutting_down.store(true, Ordering::Relaxed);
        let (status, body) = readiness(&state).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "shutting down\n");
    }

    async fn call(
        state: &AdminState,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = router(state.clone())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_calls_need_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let (status, body) = call(&state, "GET", "/admin/deliveries", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "bad_token");
        let (status, _) = call(&state, "GET", "/admin/deliveries", Some("wrong"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = call(&state, "GET", "/admin/deliveries", Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!([]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_replay_purge_and_erase_answer_with_codes() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let event = NewEvent {
            source: SourceName::new("highlevel"),
            id: EventId::new("e1"),
            kind: "ContactCreate".into(),
            tenant: TenantId::new("loc-1"),
            received_at_ms: crate::ids::now_ms(),
            payload: br#"{"contactId":"c-1"}"#.to_vec(),
        };
        let delivery = NewDelivery::new(PluginName::new("p"), 1);
        let ids = match state.store.ingest(event, vec![delivery]).await.unwrap() {
            crate::store::IngestOutcome::Inserted { deliveries } => deliveries,
            other => panic!("{other:?}"),
        };
        let uri = format!("/admin/deliveries/{}/replay", ids[0]);
        let (status, body) = call(&state, "POST", &uri, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "a pending delivery: {body}");
        assert_eq!(body["error"]["code"], "wrong_state");
        let (status, body) = call(
            &state,
            "POST",
            "/admin/deliveries/nope/replay",
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        let uri = format!("/admin/deliveries/{}", ids[0]);
        let (status, body) = call(&state, "DELETE", &uri, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = call(&state, "GET", &uri, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "cancelled means deleted");

        let (status, body) = call(
            &state,
            "POST",
            "/admin/replay",
            Some(TOKEN),
            Some(serde_json::json!({"plugin": "p", "rate_per_sec": 0})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = call(
            &state,
            "POST",
            "/admin/replay",
            Some(TOKEN),
            Some(serde_json::json!({"plugin": "p"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["replayed"], 0);
        let (status, body) = call(
            &state,
            "POST",
            "/admin/purge",
            Some(TOKEN),
            Some(serde_json::json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["deliveries"], 0);
        let (status, body) = call(
            &state,
            "POST",
            "/admin/erase",
            Some(TOKEN),
            Some(serde_json::json!({"tenant": "loc-1"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["events"], 1);
    }
}
