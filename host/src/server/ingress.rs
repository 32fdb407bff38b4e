//! `POST /webhooks/{source}`: the ingress endpoint.
//!
//! The path of one request, in order: the source must exist (404); a concurrency permit must be
//! free (503 + `Retry-After`, never a queue); the body is read under a hard size cap enforced
//! while reading (413) and a deadline (408); the source verifies the signature over the raw
//! bytes (401); a verified endpoint check (Slack's `url_verification`) is answered at once; the
//! envelope and the source's rules accept the event (400 / 403); the event, one delivery per
//! subscribed plugin and (for sources that track installations) the installation decision and
//! change are stored in one durable transaction (403 when the tenant is not installed); only
//! then is `200 {"event_id", "duplicate"}` sent.
//!
//! Invariants: nothing is stored and no plugin runs unless verification, the envelope rules and
//! the installation decision passed; a 200 means the store committed (or already had) the
//! event; the body is never logged; every error is JSON via `server::error::HttpError`; one
//! request uses one snapshot of the sources, even across a reload.

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, Request, State, rejection::PathRejection},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};

use super::{
    body::{ReadCounter, read_body},
    error::HttpError,
};
use crate::{
    api::ApiClient,
    ids::{EventId, now_ms},
    installations::{Facts, Gate, GatedOutcome},
    plugins::SharedPlugins,
    sources::{Envelope, LiveSources, Source},
    store::{AnyStore, IngestOutcome, NewDelivery, NewEvent, Store, StoreError},
};

/// What the ingress router needs.
pub struct IngressState {
    /// The sources in force (swapped on SIGHUP).
    pub sources: Arc<LiveSources>,
    /// The live plugin set: `subscribers(source, kind)` decides the deliveries.
    pub plugins: SharedPlugins,
    pub store: AnyStore,
    /// Woken (`notify_one`) after each new insert so idle dispatch workers start at once.
    pub wake: Arc<Notify>,
    /// Largest accepted body in bytes, enforced while reading.
    pub max_body: usize,
    /// Time allowed for the whole body once the handler runs.
    pub body_timeout: Duration,
    /// Ingress requests handled at once; more get 503 `overloaded`.
    pub max_concurrent: usize,
    /// The outbound API client, told about each new event so it drops the tenant's cached
    /// reference data that the event's kind invalidates (None in tests that need no client).
    pub api: Option<ApiClient>,
}

/// What a 503 asks the sender to wait: the in-flight requests finish in well under a second.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The `source` label for requests to a name that is not configured. Request paths are not
/// used as label values, so a scan of random paths cannot grow the metric's series.
const UNKNOWN_SOURCE_LABEL: &str = "_unknown";

/// Serves `POST /webhooks/{source}`; other methods on that path get 405 JSON.
pub fn router(state: IngressState) -> Router {
    build(Shared {
        api: state.api,
        sources: state.sources,
        plugins: state.plugins,
        sink: state.store,
        wake: state.wake,
        max_body: state.max_body,
        body_timeout: state.body_timeout,
        // At least one permit, or every request would be refused; Semaphore::new panics above
        // MAX_PERMITS.
        permits: Arc::new(Semaphore::new(
            state.max_concurrent.clamp(1, Semaphore::MAX_PERMITS),
        )),
        bytes_read: AtomicU64::new(0),
    })
}

/// Where accepted events go: the store in the server, a recorder in unit tests (the handler
/// is generic over these methods so its logic is testable without a database).
trait EventSink: Send + Sync + 'static {
    fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send;

    fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> impl Future<Output = Result<GatedOutcome, StoreError>> + Send;
}

impl EventSink for AnyStore {
    fn ingest(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
    ) -> impl Future<Output = Result<IngestOutcome, StoreError>> + Send {
        Store::ingest(self, event, deliveries)
    }

    fn ingest_gated(
        &self,
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        gate: Gate,
    ) -> impl Future<Output = Result<GatedOutcome, StoreError>> + Send {
        Store::ingest_gated(self, event, deliveries, gate)
    }
}

struct Shared<S> {
    api: Option<ApiClient>,
    sources: Arc<LiveSources>,
    plugins: SharedPlugins,
    sink: S,
    wake: Arc<Notify>,
    max_body: usize,
    body_timeout: Duration,
    permits: Arc<Semaphore>,
    /// Body bytes read by this router, all sources together (tests read it).
    bytes_read: AtomicU64,
}

fn build<S: EventSink>(shared: Shared<S>) -> Router {
    build_shared(Arc::new(shared))
}

fn build_shared<S: EventSink>(shared: Arc<Shared<S>>) -> Router {
    Router::new()
        .route(
            "/webhooks/{source}",
            post(receive::<S>).fallback(|| async { HttpError::method_not_allowed() }),
        )
        .with_state(shared)
}

/// The `200` answer.
#[derive(Serialize)]
struct Ack {
    event_id: EventId,
    duplicate: bool,
}

/// The `200` answer to an endpoint check.
#[derive(Serialize)]
struct Challenge {
    challenge: String,
}

/// What a successful request is answered with.
enum Answer {
    Ack(Ack),
    Challenge(Challenge),
}

async fn receive<S: EventSink>(
    State(shared): State<Arc<Shared<S>>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    // A path that does not even decode cannot name a source either.
    let sources = shared.sources.current();
    let source = path.ok().and_then(|Path(name)| sources.get(&name).cloned());
    let Some(source) = source else {
        count(UNKNOWN_SOURCE_LABEL.to_string(), "unknown_source");
        tracing::debug!("webhook for an unknown source refused");
        return HttpError::unknown_source().into_response();
    };
    let label = source.name().to_string();
    match handle(&shared, &source, request).await {
        Ok(Answer::Ack(ack)) => {
            count(
                label,
                if ack.duplicate {
                    "duplicate"
                } else {
                    "accepted"
                },
            );
            Json(ack).into_response()
        }
        Ok(Answer::Challenge(challenge)) => {
            count(label, "challenge");
            Json(challenge).into_response()
        }
        Err(e) => {
            count(label, e.code());
            e.into_response()
        }
    }
}

fn count(source: String, outcome: &'static str) {
    metrics::counter!("wasmhook_webhooks_total", "source" => source, "outcome" => outcome)
        .increment(1);
}

async fn handle<S: EventSink>(
    shared: &Shared<S>,
    source: &Arc<Source>,
    request: Request,
) -> Result<Answer, HttpError> {
    // Held until the answer is ready, so it bounds everything below, the store included.
    let _permit = Arc::clone(&shared.permits)
        .try_acquire_owned()
        .map_err(|_| HttpError::overloaded(RETRY_AFTER))?;
    let name = source.name().as_str();
    let (parts, body) = request.into_parts();
    let counter = ReadCounter {
        source: name,
        total: &shared.bytes_read,
    };
    let body = read_body(
        body,
        &parts.headers,
        shared.max_body,
        shared.body_timeout,
        counter,
    )
    .await
    .inspect_err(|e| tracing::debug!(source = name, code = e.code(), "webhook body refused"))?;

    let started = Instant::now();
    let verified = source.verify(&parts.headers, body);
    metrics::histogram!("wasmhook_verify_seconds", "source" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    // Anyone can send these, so they are logged at debug level only (and counted).
    let verified = verified.map_err(|e| {
        tracing::debug!(source = name, code = e.code(), error = %e, "webhook signature refused");
        HttpError::from(e)
    })?;
    if let Some(challenge) = verified.challenge() {
        tracing::info!(source = name, "answered the sender's endpoint check");
        return Ok(Answer::Challenge(Challenge { challenge }));
    }
    let proof = verified.proof();

    let received_at_ms = now_ms();
    // Past verification only the genuine sender can reach this, so refusals are worth a warning
    // (a wrong `app_id` or a clock problem shows up here).
    let envelope = verified.envelope(received_at_ms).map_err(|e| {
        tracing::warn!(source = name, code = e.code(), error = %e, "verified webhook refused");
        HttpError::from(e)
    })?;

    let deliveries = shared.plugins.current().subscribers(name, &envelope.kind);
    let (event_id, kind, tenant) = (
        envelope.id.clone(),
        envelope.kind.clone(),
        envelope.tenant.clone(),
    );
    let gate = source
        .tracks_installations()
        .then(|| gate(source, &envelope, received_at_ms));
    let event = envelope.into_new_event(verified, received_at_ms);
    let stored = match gate {
        Some(gate) => shared.sink.ingest_gated(event, deliveries, gate).await,
        None => shared
            .sink
            .ingest(event, deliveries)
            .await
            .map(GatedOutcome::from),
    };
    match stored {
        Ok(GatedOutcome::Inserted { deliveries }) => {
            // Only a new event invalidates: a duplicate says nothing the cache has not seen.
            // Before the wake, so the event's own deliveries read fresh reference data.
            if let (Some(client), Some(api)) = (&shared.api, source.api()) {
                client.invalidate(api, &tenant, &kind);
            }
            shared.wake.notify_one();
            tracing::info!(
                source = name,
                event_id = %event_id,
                kind = %kind,
                tenant = %tenant,
                deliveries = deliveries.len(),
                signature = proof.kind.as_str(),
                key = proof.key,
                "webhook accepted"
            );
            Ok(Answer::Ack(Ack {
                event_id,
                duplicate: false,
            }))
        }
        Ok(GatedOutcome::Duplicate) => {
            tracing::info!(
                source = name,
                event_id = %event_id,
                kind = %kind,
                tenant = %tenant,
                "duplicate webhook acknowledged"
            );
            Ok(Answer::Ack(Ack {
                event_id,
                duplicate: true,
            }))
        }
        Ok(GatedOutcome::Refused(refusal)) => {
            tracing::warn!(
                source = name,
                event_id = %event_id,
                kind = %kind,
                tenant = %tenant,
                code = refusal.code(),
                "webhook refused: the tenant is not installed"
            );
            Err(HttpError::from(refusal))
        }
        Err(e) => {
            tracing::error!(source = name, event_id = %event_id, error = %e, "storing a webhook failed");
            Err(HttpError::internal())
        }
    }
}

/// The installation check of a verified event of `source`.
fn gate(source: &Source, envelope: &Envelope, received_at_ms: i64) -> Gate {
    Gate {
        api: source.installation_api(),
        require: source.require_installation(),
        facts: Facts {
            lifecycle: envelope.lifecycle,
            tenant: envelope.tenant.clone(),
            company: envelope.company.clone(),
            // The sender's time orders lifecycle events; without one, arrival order does.
            at_ms: envelope.sent_at_ms.unwrap_or(received_at_ms),
        },
    }
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
