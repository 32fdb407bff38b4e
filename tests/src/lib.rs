//! Shared helpers for wasmhook's end-to-end tests: a server on an ephemeral port
//! (`TestServer`), a child-process spawner for the real binary (`ChildServer`), a recording fake
//! API (`FakeApi`), signing helpers and the plugin builder. The tests live in `tests/tests/`.

pub mod admin;
pub mod child;
pub mod fake_api;
pub mod fake_oauth;
pub mod fixtures;
pub mod plugins;
pub mod server;
pub mod signing;

use std::path::PathBuf;

pub use admin::Admin;
pub use child::ChildServer;
pub use fake_api::{FakeApi, Reply};
pub use fake_oauth::{FakeOAuth, Installee};
pub use server::{ADMIN_TOKEN, API_TOKEN, APP_ID, TestServer};

/// The repository root (the tests crate is `<root>/tests`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent folder")
        .to_path_buf()
}

/// Sends the host's logs to the test's captured output (once per process).
pub fn init_test_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmhook=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Posts `body` to `http://<public>/webhooks/{source}` with `headers`, as a sender would.
pub async fn post_webhook(
    client: &reqwest::Client,
    public: std::net::SocketAddr,
    source: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut req = client
        .post(format!("http://{public}/webhooks/{source}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap()
}
