//! HTTP: the public listener (webhooks, `/healthz`) and the admin listener (`/metrics`, ...).

use std::future::Future;

/// Bound listeners handed to [`run`]; tests bind `127.0.0.1:0`.
pub struct Listeners {
    pub public: tokio::net::TcpListener,
    pub admin: tokio::net::TcpListener,
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    config: crate::config::Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (config, listeners);
    shutdown.await;
    Ok(())
}
