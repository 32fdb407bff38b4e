//! frozen-v010: a plugin generated from the released `wit/frozen/0.1.0/plugin.wit`, not the
//! live contract, so its imports are `wasmhook:plugin/*@0.1.0`. It makes one API call and logs,
//! which is enough to show a later 0.1.y host links and serves it.

wit_bindgen::generate!({
    world: "plugin",
    path: "../../../wit/frozen/0.1.0",
});

use wasmhook::plugin::{api, log};

struct Frozen;

impl Guest for Frozen {
    fn handle(_event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        let req = api::Request {
            api: "fake".into(),
            method: api::Method::Get,
            path: "/allowed/frozen".into(),
            query: Vec::new(),
            body: None,
            retry: None,
            headers: Vec::new(),
        };
        api::send(&req).map_err(|e| HandlerError::Fail(format!("{e:?}")))?;
        log::write(log::Level::Info, "0.1.0 plugin ran", &[]);
        Ok(())
    }
}

export!(Frozen);
