//! The wasmtime engines: the main one (Cranelift, the pooling allocator with a fallback to
//! on-demand allocation), the hot swap's fast tier (Winch, on-demand allocation), and the epoch
//! ticker that drives wall-clock deadlines on both.
//!
//! Invariants: every store of either engine runs with epoch interruption, so a guest that never
//! calls the host still reaches its deadline; the ticker advances every engine and runs while
//! any `Runtime` clone is alive, exiting when the last one drops (its channel disconnects).

use std::{path::PathBuf, sync::mpsc, thread, time::Duration};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use super::{RuntimeError, limits};

/// Tuning of the engine. `Default` is the production sizing.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Plugin instances alive at once (across all deliveries) that the pooling allocator
    /// reserves slots for. Each slot reserves address space (not memory) for its linear
    /// memories: about 4 GiB each.
    pub pooled_instances: u32,
    /// Largest wasm stack; deeper recursion traps with "stack overflow".
    pub max_wasm_stack: usize,
    /// How often the epoch advances: the granularity of deadlines and of yields.
    pub epoch_tick: Duration,
    /// Try the pooling allocator first (falls back to on-demand if it cannot be built).
    pub pooling: bool,
    /// Folder of the on-disk compile cache; `None` compiles every plugin at every load.
    pub compile_cache: Option<PathBuf>,
    /// Also build the fast compiler tier, so a hot swap goes live on a quick Winch build while
    /// the Cranelift build is made in the background.
    pub fast_tier: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pooled_instances: 1000,
            max_wasm_stack: 512 * 1024,
            epoch_tick: Duration::from_millis(10),
            pooling: true,
            compile_cache: None,
            fast_tier: true,
        }
    }
}

/// Which instance allocator the engine ended up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    Pooling,
    OnDemand,
}

/// Bytes of a slot kept resident between uses instead of being decommitted. Measured: this
/// removes the TLB-shootdown cost of decommitting and re-faulting small slots, which doubled
/// throughput on two cores.
const KEEP_RESIDENT: usize = 4 * 1024 * 1024;

/// Builds the engine: pooling when the address space allows, else on-demand with a warning.
pub fn build(options: &EngineOptions) -> Result<(Engine, Allocator), RuntimeError> {
    if options.pooling {
        let mut config = base_config(options);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(options)));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "cannot reserve the plugin instance pool (is `ulimit -v` set?); falling back to \
                 on-demand allocation, which is slower per delivery"
            ),
        }
    }
    let mut config = base_config(options);
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
    Ok((engine, Allocator::OnDemand))
}

/// The fast tier's engine: Winch, wasmtime's baseline compiler, which compiles the trivial Rust
/// plugin several times faster than Cranelift but emits slower code (figures in
/// `plugins/reload.rs`). On-demand allocation: its plugins only run until the Cranelift build
/// replaces them, which does not justify a second pool reservation. `None` (with a warning) if
/// it cannot be built; hot swaps then compile with Cranelift alone.
pub fn build_fast(options: &EngineOptions) -> Option<Engine> {
    let mut config = base_config(options);
    config.strategy(Strategy::Winch);
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    match Engine::new(&config) {
        Ok(engine) => Some(engine),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"),
                "cannot build the fast compiler tier; hot swaps wait for the optimising compile");
            None
        }
    }
}

fn base_config(options: &EngineOptions) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(options.max_wasm_stack);
    config
}

fn pool(options: &EngineOptions) -> PoolingAllocationConfig {
    let n = options.pooled_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // Interpreted-language components hold many core instances and tables each; Rust ones
        // a few. Metadata slots are cheap, so allow several per component.
        .total_core_instances(n.saturating_mul(4))
        .total_tables(n.saturating_mul(4))
        .total_memories(n)
        .total_stacks(n)
        .max_memories_per_component(limits::MAX_MEMORIES as u32)
        // Multi-memory core modules exist (and are how a plugin spreads its allocations); the
        // pool's default of one memory per module would refuse them at instantiation.
        .max_memories_per_module(limits::MAX_MEMORIES as u32)
        .max_tables_per_component(limits::MAX_TABLES as u32)
        .max_core_instances_per_component(limits::MAX_INSTANCES as u32)
        .table_elements(limits::MAX_TABLE_ELEMENTS)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT);
    pool
}

/// Advances the engines' epochs every tick until dropped.
pub struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engines`.
    pub fn start(engines: Vec<Engine>, tick: Duration) -> Result<EpochTicker, RuntimeError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("wasmhook-epoch".into())
            .spawn(move || {
                // Ends when the sender is dropped (`Disconnected`), at once, not after a tick.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // Returns promptly: the loop wakes on disconnect. A panic there has nothing to
            // report beyond what the panic hook already printed.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_demand_engine_builds() {
        let options = EngineOptions {
            pooling: false,
            ..EngineOptions::default()
        };
        let (_, allocator) = build(&options).unwrap();
        assert_eq!(allocator, Allocator::OnDemand);
    }

    #[test]
    fn a_small_pool_builds() {
        let options = EngineOptions {
            pooled_instances: 4,
            ..EngineOptions::default()
        };
        let (_, allocator) = build(&options).unwrap();
        assert_eq!(allocator, Allocator::Pooling);
    }

    #[test]
    fn the_fast_tier_builds() {
        assert!(build_fast(&EngineOptions::default()).is_some());
    }

    #[test]
    fn dropping_the_ticker_stops_its_thread_at_once() {
        let (engine, _) = build(&EngineOptions {
            pooling: false,
            ..EngineOptions::default()
        })
        .unwrap();
        // With a one-hour tick, only the disconnect can end the thread's wait; the drop joins
        // it. (That the epoch advances is shown by the runtime's infinite-loop test.)
        let ticker = EpochTicker::start(vec![engine], Duration::from_secs(3600)).unwrap();
        let started = std::time::Instant::now();
        drop(ticker);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
