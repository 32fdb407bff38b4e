//! wasmhook: receives webhooks, verifies their signatures on the raw bytes, stores each event
//! durably and exactly once, and runs sandboxed WebAssembly component plugins on it.
//!
//! The server is a library that takes its listeners: [`run`] with a validated
//! [`config::Config`], bound [`Listeners`] and a shutdown future. `main.rs` only parses the CLI,
//! loads the config and calls it.

pub mod admin_client;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod ids;
pub mod installations;
pub mod plugins;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod sources;
pub mod store;
pub mod telemetry;

pub use server::{Listeners, run};
