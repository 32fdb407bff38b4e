//! Write wasmhook plugins in Rust.
//!
//! A plugin is a WASI 0.2 component that handles one stored webhook event at a time. This crate
//! owns the plugin side of the contract in `wit/plugin.wit` (package `wasmhook:plugin@0.1.1`):
//! the bindings are generated once, here, and wrapped in a small ergonomic layer:
//!
//! - [`Event`] and [`Delivery`]: what the handler receives, with typed access to the payload;
//! - [`highlevel`]: HighLevel's webhook bodies as structs (contacts, opportunities,
//!   appointments, messages, INSTALL / UNINSTALL), tolerant of extra and missing keys;
//! - [`HandlerError`]: `retry`, `retry_after` or `fail`, and `?` works on every SDK error;
//! - [`api`]: the host's capability-limited API client (`api::get("highlevel", "/contacts/x")`);
//! - [`kv`]: a small key-value store scoped to (plugin, tenant);
//! - [`config`]: the plugin's own `[config]` table from its manifest;
//! - [`info!`], [`warn!`], ...: structured logs into the host's log;
//! - [`Handler`] and [`export!`]: the entry point.
//!
//! The plugin never sees credentials and never touches the network: the host adds tokens,
//! retries transient failures, paces requests and checks every request against the plugin's
//! manifest.
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "contact-greeter"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! wasmhook-sdk = { path = "../plugin-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use serde::Serialize;
//! use wasmhook_sdk::{Delivery, Event, Handler, HandlerError, api, config, highlevel, info};
//!
//! #[derive(Serialize)]
//! struct Note<'a> {
//!     body: &'a str,
//! }
//!
//! struct Greeter;
//!
//! impl Handler for Greeter {
//!     fn handle(event: Event, delivery: Delivery) -> Result<(), HandlerError> {
//!         // A malformed payload fails the delivery; other kinds are not ours to handle.
//!         let highlevel::HighLevelEvent::Contact(contact) = event.highlevel()? else {
//!             return Ok(());
//!         };
//!         let greeting = config::get("greeting").unwrap_or_else(|| "Welcome!".to_owned());
//!         api::post("highlevel", format!("/contacts/{}/notes", contact.id))
//!             .json(&Note { body: &greeting })
//!             .send()?; // transient API errors retry the delivery, client errors fail it
//!         info!("greeted contact"; "contact" => contact.id, "attempt" => delivery.attempt());
//!         Ok(())
//!     }
//! }
//!
//! wasmhook_sdk::export!(Greeter);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is already a component. Drop it into the host's plugin folder
//! next to a manifest (`contact-greeter.toml`) that subscribes it to events and allows
//! `POST /contacts/*/notes` on the `highlevel` API.
//!
//! # Idempotency
//!
//! Delivery is at least once: a crash between a side effect and the host's commit repeats the
//! delivery. The host sends `<idempotency key>:<n>` upstream with the n-th API call of a
//! delivery, so APIs that honour idempotency keys see a repeat as a repeat. For the rest, record
//! finished work in [`kv`] under [`Delivery::idempotency_key`] and skip it on a redelivery.

#![deny(missing_docs)]

pub mod api;
pub mod config;
mod error;
mod event;
mod handler;
pub mod highlevel;
pub mod kv;
pub mod log;

pub use error::{HandlerError, JsonError};
pub use event::{Delivery, Event};
pub use handler::Handler;

/// The raw bindings generated from `wit/plugin.wit`.
///
/// Plugins rarely need these: the rest of the crate wraps them. They are public so that
/// [`export!`] can reach them from the plugin crate, and for the rare case the ergonomic layer
/// does not cover.
#[allow(
    missing_docs,
    reason = "generated code; the WIT carries the documentation"
)]
#[allow(
    clippy::too_many_arguments,
    reason = "the generated canonical-ABI shim takes one argument per flattened field"
)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        // The export macro must be reachable from plugin crates, which export through this one.
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "wasmhook_sdk::bindings",
    });
}

/// Implementation details of [`export!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::handler::run;
}
