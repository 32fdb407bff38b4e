//! The accept loop shared by both listeners: HTTP/1.1 and HTTP/2 on one port (hyper-util's
//! auto builder), optionally over TLS, with the header deadline of `watchdog` on every
//! connection, and graceful shutdown that stops accepting and lets in-flight requests finish.
//!
//! Limits applied here, per connection: the TLS handshake must finish within the header
//! timeout; a request's headers must be complete within it (HTTP/1.1 and HTTP/2); HTTP/1.1
//! reads at most 64 KiB at a time (so a body frame is at most that, which bounds what a too
//! large body costs before its 413) and HTTP/2 allows a bounded number of streams.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::watchdog::{Activity, Watched};

/// HTTP/1.1 read buffer, and so the largest body frame: 64 KiB (hyper's minimum is 8 KiB).
/// Request heads larger than this are refused with 431.
const MAX_BUF: usize = 64 * 1024;

/// Concurrent HTTP/2 streams per connection: far more than a webhook sender uses, few enough
/// that one connection cannot occupy the whole ingress concurrency cap.
const MAX_STREAMS: u32 = 128;

/// How one listener serves.
pub struct ServeOptions {
    /// Listener name for logs and metrics (`public`, `admin`).
    pub name: &'static str,
    /// TLS handshake and request-header deadline.
    pub header_timeout: Duration,
    /// Grace for open connections after shutdown begins.
    pub drain: Duration,
    /// Serve HTTPS with this acceptor; `None` serves plain HTTP.
    pub tls: Option<TlsAcceptor>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits up to `drain` for open
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let name = options.name;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog applies the header deadline (and answers 408); hyper's own would close
        // the connection silently.
        .header_read_timeout(None)
        .max_buf_size(MAX_BUF);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Finished connections leave the set here, so it holds only open ones.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            tls: options.tls.clone(),
            header_timeout: options.header_timeout,
            stop: stop_rx.clone(),
            name,
        };
        connections.spawn(async move {
            connection.run(stream).await;
            tracing::trace!(listener = name, %peer, "connection closed");
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(options.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            open = connections.len(),
            "connections still open after the drain period; closing them"
        );
        connections.shutdown().await;
    }
}

/// One accepted connection and what it needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    name: &'static str,
}

impl Connection {
    async fn run(self, stream: tokio::net::TcpStream) {
        match &self.tls {
            None => self.serve(stream).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.header_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls)) => self.serve(tls).await,
                    Ok(Err(e)) => {
                        metrics::counter!("wasmhook_tls_handshake_failures_total", "listener" => self.name)
                            .increment(1);
                        tracing::debug!(listener = self.name, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        metrics::counter!("wasmhook_connections_cut_total", "listener" => self.name, "reason" => "tls_handshake_timeout")
                            .increment(1);
                        tracing::debug!(listener = self.name, "TLS handshake not finished in time");
                    }
                }
            }
        }
    }

    async fn serve<S>(mut self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = TokioIo::new(Watched::new(
            stream,
            activity.clone(),
            self.header_timeout,
            self.name,
        ));
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            // The headers are complete: no header deadline until the response body is done.
            let guard = activity.begin();
            async move {
                let response = router
                    .oneshot(req.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|e| match e {});
                // The guard rides in the body and is dropped with it, when hyper has sent it.
                Ok::<_, Infallible>(response.map(move |body| {
                    axum::body::Body::new(body.map_err(move |e| {
                        let _ = &guard;
                        e
                    }))
                }))
            }
        });
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = self.name, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = self.stop.wait_for(|stop| *stop) => {}
        }
        // Shutdown: finish the request in progress (HTTP/2: GOAWAY), then close. The listener
        // bounds how long this may take.
        connection.as_mut().graceful_shutdown();
        if let Err(e) = connection.await {
            tracing::debug!(listener = self.name, error = %e, "connection ended with an error during shutdown");
        }
    }
}
