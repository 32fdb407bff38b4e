//! The client against loopback fakes, one file per concern; `fake` holds the shared server and
//! helpers, `metrics` a per-test recorder.

mod auth;
mod batch;
mod breaker;
mod cache;
mod client;
pub(crate) mod fake;
mod metrics;
mod pacing;
mod pages;
mod retry_config;
