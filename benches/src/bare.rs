//! The invocation baseline: bare wasmtime, no wasmhook. An empty component (one core function,
//! no imports, no memory, written in WAT) pre-instantiated once; each call is a fresh `Store`,
//! `instantiate_async`, `call_async` and drop, the same entry points the runtime uses.

use wasmtime::{
    Engine, Store,
    component::{Component, ComponentExportIndex, InstancePre, Linker},
};

/// The empty component: exports `run: func()`, whose core function does nothing.
const EMPTY: &str = r#"
(component
  (core module $m (func (export "run")))
  (core instance $i (instantiate $m))
  (func (export "run") (canon lift (core func $i "run")))
)"#;

/// Epoch ticks a call may run: far more than a call takes (the engine interrupts on epochs).
const DEADLINE_TICKS: u64 = 1_000_000;

/// The pre-instantiated empty component.
pub struct Bare {
    engine: Engine,
    pre: InstancePre<()>,
    run: ComponentExportIndex,
}

impl Bare {
    /// Compiles and pre-instantiates the empty component on `engine` (pass the runtime's, so
    /// the engine settings are the same).
    pub fn new(engine: &Engine) -> anyhow::Result<Bare> {
        let bytes = wat::parse_str(EMPTY)?;
        let component = Component::new(engine, &bytes).map_err(wasmtime_error)?;
        let run = component
            .get_export_index(None, "run")
            .ok_or_else(|| anyhow::anyhow!("the empty component exports no `run`"))?;
        let pre = Linker::<()>::new(engine)
            .instantiate_pre(&component)
            .map_err(wasmtime_error)?;
        Ok(Bare {
            engine: engine.clone(),
            pre,
            run,
        })
    }

    /// One fresh instance, one call of `run`, drop.
    pub async fn call(&self) -> anyhow::Result<()> {
        let mut store = Store::new(&self.engine, ());
        store.set_epoch_deadline(DEADLINE_TICKS);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(wasmtime_error)?;
        let run = instance
            .get_typed_func::<(), ()>(&mut store, &self.run)
            .map_err(wasmtime_error)?;
        run.call_async(&mut store, ())
            .await
            .map_err(wasmtime_error)?;
        Ok(())
    }
}

/// wasmtime's own error type as an `anyhow` error, with its whole chain.
fn wasmtime_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_empty_component_instantiates_and_runs() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).unwrap();
        let bare = Bare::new(&engine).unwrap();
        bare.call().await.unwrap();
        bare.call().await.unwrap();
    }
}
