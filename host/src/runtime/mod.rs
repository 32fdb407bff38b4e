//! The plugin runtime: one wasmtime `Engine` and `Linker`, each plugin compiled and
//! pre-instantiated once, and a fresh `Store` per delivery with a memory cap over all its linear
//! memories, a wall-clock deadline covering host calls, and capped log capture.

use std::time::Duration;

use crate::{
    api::ApiClient,
    ids::DeliveryId,
    plugins::Manifest,
    store::{AnyStore, LogLine, StoredEvent},
};

/// What the runtime needs from the rest of the host.
#[derive(Clone)]
pub struct Services {
    pub store: AnyStore,
    pub api: ApiClient,
}

/// A compiled, pre-instantiated plugin.
pub struct LoadedPlugin {
    pub manifest: Manifest,
}

/// The delivery being run.
#[derive(Clone, Debug)]
pub struct DeliveryInfo {
    pub id: DeliveryId,
    pub attempt: u32,
    pub idempotency_key: String,
}

/// How one invocation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The plugin asked to retry.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The plugin said retrying cannot help.
    Fail(String),
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    Trap(String),
    /// The wall-clock deadline passed.
    Timeout,
    /// The guest tried to grow its memories past the manifest's cap.
    MemoryExceeded(String),
}

/// The result of running a plugin once.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub outcome: Outcome,
    pub logs: Vec<LogLine>,
    pub api_calls: u32,
    pub duration: Duration,
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Load(String),
}

// Integration stub, replaced by the runtime branch.
/// The runtime.
#[derive(Clone)]
pub struct Runtime;
impl Runtime {
    /// New.
    pub fn new(_services: Services) -> Result<Runtime, RuntimeError> {
        Ok(Runtime)
    }
    /// Invoke.
    pub async fn invoke(
        &self,
        _p: &LoadedPlugin,
        _e: &StoredEvent,
        _d: &DeliveryInfo,
    ) -> Invocation {
        Invocation {
            outcome: Outcome::Fail("stub".into()),
            logs: vec![],
            api_calls: 0,
            duration: Duration::ZERO,
        }
    }
}
