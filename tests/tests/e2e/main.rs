//! End-to-end tests: the real server on ephemeral ports, real signed requests, real plugins
//! built from source, and a recording fake API on loopback. One test binary, one module per
//! capability.

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
mod newcomer;
mod python;
mod quota;
mod reload;
mod sandbox;
mod schemes;
mod secrets;
mod send;
mod tls_reload;
mod tokens;
mod tokens_at_rest;
mod tokens_crash;
mod tokens_support;
mod tokens_uninstall;
