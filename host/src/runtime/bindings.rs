//! The one `bindgen!` of the host: Rust types and traits generated from `wit/plugin.wit`
//! (world `plugin`). Every other runtime file uses the names re-exported from here, so the
//! generated code exists once.
//!
//! Imports and exports are async: host functions may await (the API client, the store) and the
//! guest runs on a fiber so an epoch callback can yield it. Host functions are not `trappable`:
//! every failure a plugin can cause is an error value it sees and can handle (`denied`,
//! `quota-exceeded`, ...), never a trap; limits that must stop a plugin (memory, time) are
//! enforced by the store, not by host functions.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

// `self::` because the generated module shares its name with this crate.
pub use self::wasmhook::plugin::{api, config, kv, log, types};
