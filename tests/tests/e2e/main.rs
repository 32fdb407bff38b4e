//! End-to-end tests: the real server on ephemeral ports, real signed requests, real plugins
//! built from source, and a recording fake API on loopback. One test binary, one module per
//! capability.

mod alerts;
mod api;
mod check;
mod common;
mod compile_cache;
mod config_cli;
mod crash;
mod engine;
mod engine_support;
mod guest_sdks;
mod hostile;
mod ingress;
mod installations;
mod interop;
mod javascript;
mod kv;
mod limits;
mod logs;
mod metrics;
mod monitoring_support;
mod newcomer;
mod python;
mod quota;
mod reload;
mod sandbox;
mod schemes;
mod secrets;
mod send;
mod status;
mod tls_reload;
