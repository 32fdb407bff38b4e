//! Shared helpers for wasmhook's end-to-end tests: a server on an ephemeral port, a child
//! process spawner for the real binary, a recording fake API, signing helpers and the plugin
//! builder. The tests themselves live in `tests/tests/`.

pub mod fixtures;
pub mod plugins;
pub mod signing;
