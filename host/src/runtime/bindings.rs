//! The one `bindgen!` of the host: Rust types and traits generated from `wit/plugin.wit`
//! (world `plugin`). Every other runtime file uses the names re-exported from here, so the
//! generated code exists once.
//!
//! Imports and exports are async: host functions may await (the API client, the store) and the
//! guest runs on a fiber so an epoch callback can yield it. Host functions are not `trappable`:
//! every failure a plugin can cause is an error value it sees and can handle (`denied`,
//! `quota-exceeded`, ...), never a trap; limits that must stop a plugin (memory, time) are
//! enforced by the store, not by host functions. The exception is the `pages` resource's
//! constructor and `next`: they trap when the delivery's resource table is full or a handle is
//! not in it, which only a plugin bypassing the SDK can cause.
//!
//! The WIT is `0.1.1`; a plugin built against `0.1.0` links too, because the linker matches
//! semver-compatible import versions and 0.1.1 only adds items.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: {
        "wasmhook:plugin/api.[constructor]pages": async | trappable,
        "wasmhook:plugin/api.[method]pages.next": async | trappable,
        default: async,
    },
    exports: { default: async },
    // A `pages` handle is the host client's own walk, kept in the delivery's resource table.
    with: { "wasmhook:plugin/api.pages": crate::api::Pages },
});

// `self::` because the generated module shares its name with this crate.
pub use self::wasmhook::plugin::{api, config, kv, log, types};
