//! The host state of one delivery: the data a fresh `Store` carries while the plugin runs.
//!
//! Invariants: a `State` lives for exactly one attempt and is dropped with its store, so nothing
//! a plugin does (resources, log lines, the API call count) leaks into the next delivery. The
//! WASI context grants nothing: no preopened directories, no environment, no arguments, no
//! sockets and no name lookup; clocks and random work; stdout/stderr go to the log buffer.

use std::sync::Arc;

use serde_json::{Map, Value};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{
    Services,
    limits::MemoryLimiter,
    logs::{LogBuffer, OutputKind, SharedLogs},
    output::CaptureStream,
};
use crate::{
    api::Capabilities,
    ids::{DeliveryId, EventId, PluginName, TenantId},
};

/// Resources (streams, pollables, ...) a plugin may hold at once.
pub const MAX_RESOURCES: usize = 1024;

/// `pages` walks a plugin may hold open at once: each keeps a request and a cursor, and a
/// handler needs one or two; the cap stops a loop that forgets to drop them.
pub const MAX_PAGE_WALKS: u32 = 16;

/// Who a delivery's log lines are about: attached to every host log line it produces.
#[derive(Clone, Debug)]
pub struct DeliveryTags {
    pub plugin: PluginName,
    pub event_id: EventId,
    pub delivery_id: DeliveryId,
    pub tenant: TenantId,
}

/// What a delivery's state is built from.
pub struct StateParts {
    pub tags: Arc<DeliveryTags>,
    pub idempotency_key: String,
    pub capabilities: Arc<Capabilities>,
    pub config: Arc<Map<String, Value>>,
    pub max_api_calls: u32,
    pub memory: u64,
    pub deadline: tokio::time::Instant,
    pub services: Arc<Services>,
}

/// Host state of one delivery (the `T` of `Store<T>`).
pub struct State {
    /// Built at the plugin's first WASI call: most handlers make none (their I/O is the `api`,
    /// `kv` and `log` imports), and building one (two builders' worth of clocks, random
    /// generators seeded from the thread's CSPRNG, and boxed streams) was the largest host-side
    /// cost of a trivial invocation. Built per delivery either way, never shared.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    /// The memory budget over all linear memories.
    pub limiter: MemoryLimiter,
    /// The wall-clock deadline of this attempt; host waits never extend past it.
    pub deadline: tokio::time::Instant,
    pub tags: Arc<DeliveryTags>,
    /// Stable across attempts; the API client derives per-call keys from it.
    pub idempotency_key: String,
    /// The plugin's grants, shared by all its deliveries.
    pub capabilities: Arc<Capabilities>,
    /// The manifest's `[config]` table.
    pub config: Arc<Map<String, Value>>,
    /// The manifest's `max_api_calls`.
    pub max_api_calls: u32,
    /// API calls made so far (those handed to the client; refused ones are not counted).
    pub api_calls: u32,
    /// `pages` walks open in the resource table (at most [`MAX_PAGE_WALKS`]).
    pub open_walks: u32,
    /// Set when an API call found the tenant must wait (credentials not ready, quota spent):
    /// until when and why (the longest wait seen). Unless the plugin then succeeds or fails for
    /// good, the delivery is deferred.
    pub deferral: Option<Deferral>,
    /// Log lines and captured output.
    pub logs: SharedLogs,
    pub services: Arc<Services>,
}

impl State {
    /// A fresh state; its WASI context, which grants nothing, is built when first used.
    pub fn new(parts: StateParts) -> State {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        State {
            wasi: None,
            table,
            limiter: MemoryLimiter::new(parts.memory),
            deadline: parts.deadline,
            tags: parts.tags,
            idempotency_key: parts.idempotency_key,
            capabilities: parts.capabilities,
            config: parts.config,
            max_api_calls: parts.max_api_calls,
            api_calls: 0,
            open_walks: 0,
            deferral: None,
            logs: LogBuffer::shared(),
            services: parts.services,
        }
    }

    /// The delivery's WASI context: no preopens, no environment, no arguments, no sockets, no
    /// name lookup; stdout and stderr go to the delivery's log lines.
    fn sandbox(logs: &SharedLogs, tags: &Arc<DeliveryTags>) -> WasiCtx {
        WasiCtx::builder()
            .stdout(CaptureStream::new(
                OutputKind::Stdout,
                logs.clone(),
                tags.clone(),
            ))
            .stderr(CaptureStream::new(
                OutputKind::Stderr,
                logs.clone(),
                tags.clone(),
            ))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build()
    }

    /// The delivery's resource table (WASI streams and the plugin's `pages` walks).
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The delivery's log lines, with notes about anything dropped.
    pub fn take_logs(&mut self) -> Vec<crate::store::LogLine> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).finish()
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (logs, tags) = (&self.logs, &self.tags);
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| State::sandbox(logs, tags)),
            table: &mut self.table,
        }
    }
}

// `types` holds only types, but the generated linker code still asks for its (empty) trait.
impl super::bindings::types::Host for State {}

/// Why and until when a delivery's tenant must wait (see [`State::deferral`]).
#[derive(Clone, Debug)]
pub struct Deferral {
    pub until: std::time::Instant,
    /// Shown on the delivery while it waits.
    pub note: String,
}
