//! HTTP: the public listener (webhooks, `/healthz`) and the admin listener (`/metrics`,
//! `/readyz`), and [`run`], which wires every subsystem together.

pub mod admin;
pub mod admin_tokens;
mod body;
pub mod error;
pub mod ingress;
mod oauth;
pub mod reload;
mod serve;
pub mod status;
pub mod tls;
mod watchdog;

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use axum::{Router, routing::get};
use tokio::sync::Notify;

use crate::{
    api::ApiClient,
    config::Config,
    dispatch::{Deps, Dispatcher},
    plugins::{Reloader, SharedPlugins, WatchOptions, watch},
    runtime::{EngineOptions, Runtime, Services},
    sources::{LiveSources, Sources},
    store::{
        AnyStore, StoreOptions,
        retention::{self, RetentionPolicy},
    },
};

/// Bound listeners handed to [`run`]; tests bind `127.0.0.1:0` and never race for a port.
pub struct Listeners {
    pub public: tokio::net::TcpListener,
    pub admin: tokio::net::TcpListener,
}

/// How often uninstalled tenants whose UNINSTALL deliveries are done are looked for: one
/// indexed query, so a second keeps erasure prompt at no real cost.
const ERASE_INTERVAL: Duration = Duration::from_secs(1);

/// How long running deliveries and open connections get to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs the server until `shutdown` resolves: opens the store, loads the plugins, starts the
/// dispatcher and serves both listeners; then drains connections and deliveries and closes the
/// store.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Install the metrics recorder before anything records: counts made before it exists are
    // lost, and the first `/metrics` request would otherwise install it.
    crate::telemetry::metrics();
    crate::alerts::configure(&config.alerts).context("starting the alert sink")?;
    let store = AnyStore::open_with(
        &config.storage.url,
        StoreOptions {
            keep_payloads: config.storage.keep_payloads,
            pool_size: Some(config.storage.pool_size),
        },
    )
    .await
    .context("opening the store")?;
    let tokens = crate::auth::tokens(&config.credentials, &config.apis, store.clone())
        .await
        .context("setting up credentials")?;
    let api = ApiClient::with_token_source(&config.apis, Arc::new(tokens.clone()))
        .context("building the API client")?;
    if let AnyStore::Postgres(postgres) = &store {
        // Replicas on one database draw each API's configured rate budget from it together.
        api.share_pacing(postgres.clone());
    }
    let runtime = Runtime::with_options(
        Services {
            store: store.clone(),
            api: api.clone(),
        },
        EngineOptions {
            compile_cache: Some(config.plugins.cache_dir.clone()),
            ..EngineOptions::default()
        },
    )
    .context("starting the plugin runtime")?;
    // The start-up load is the first reconcile; the watcher then keeps the set in line with
    // the folder.
    let plugins = SharedPlugins::default();
    let mut plugin_reloader = Reloader::new(
        runtime.loader().clone(),
        config.plugins.dir.clone(),
        plugins.clone(),
    )
    .checking_names_against(config.clone());
    let report = plugin_reloader.reconcile().await;
    for problem in &report.problems {
        crate::alerts::raise(
            crate::alerts::AlertKind::PluginLoad,
            "plugin skipped",
            &problem.to_string(),
        );
    }
    tracing::info!(
        loaded = plugins.current().len(),
        skipped = report.problems.len(),
        compiled = runtime.loader().compiles(),
        dir = %config.plugins.dir.display(),
        "plugins loaded"
    );
    let sources = Arc::new(LiveSources::new(
        Sources::from_config(&config.sources).context("configuring sources")?,
    ));
    let (tls, cert) = match &config.server.tls {
        Some(tls) => {
            let (acceptor, cert) = tls::acceptor(tls).context("loading the TLS certificate")?;
            (Some(acceptor), Some(cert))
        }
        None => (None, None),
    };
    let reloader = tokio::spawn(reload::on_sighup(
        reload::Reloadable {
            sources: sources.clone(),
            cert,
        },
        config.path.clone(),
    ));
    let wake = Arc::new(Notify::new());

    let dispatcher = Dispatcher::start(Deps {
        store: store.clone(),
        plugins: plugins.clone(),
        runtime,
        wake: wake.clone(),
        config: config.plugins.clone(),
    })
    .context("starting the dispatcher")?;

    let shutting_down = Arc::new(AtomicBool::new(false));
    let public = ingress::router(ingress::IngressState {
        sources,
        plugins: plugins.clone(),
        store: store.clone(),
        wake: wake.clone(),
        max_body: config.server.max_body,
        body_timeout: config.server.body_timeout,
        max_concurrent: config.server.max_concurrent_requests,
        api: Some(api.clone()),
    })
    .merge(oauth::router(tokens.clone(), wake.clone()))
    .route("/healthz", get(|| async { "ok\n" }));
    let admin_token = match &config.admin.token {
        Some(r) => Some(Arc::new(
            r.load().context("reading the admin token (admin.token)")?,
        )),
        None => None,
    };
    let admin_router: Router = admin::router(admin::AdminState {
        store: store.clone(),
        shutting_down: shutting_down.clone(),
        token: admin_token,
        wake: wake.clone(),
        plugins: Some(plugins),
        tokens: Some(tokens.clone()),
        apis: config.apis.keys().cloned().collect(),
    });

    // Started last, once nothing above can fail, so an early error leaves no task behind.
    let (watch_stop, watch_stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch::run(
        plugin_reloader,
        WatchOptions {
            events: config.plugins.watch,
            debounce: config.plugins.reload_debounce,
            rescan: config.plugins.rescan_interval,
        },
        watch_stopped,
    ));
    let (gc_stop, gc_stopped) = tokio::sync::watch::channel(false);
    let collector = tokio::spawn(retention::run(
        store.clone(),
        RetentionPolicy {
            retention: config.storage.retention,
            dead_retention: config.storage.dead_retention,
            interval: config.storage.gc_interval,
        },
        gc_stopped.clone(),
    ));
    let refresher = tokio::spawn(crate::auth::refresh::run(
        tokens.clone(),
        gc_stopped.clone(),
    ));
    let monitored_tokens = tokens.clone();
    let eraser = tokio::spawn(crate::auth::uninstall::run(
        store.clone(),
        tokens,
        api,
        ERASE_INTERVAL,
        gc_stopped.clone(),
    ));
    let monitor = tokio::spawn(crate::telemetry::monitor::run(
        store.clone(),
        monitored_tokens,
        config.apis.keys().cloned().collect(),
        gc_stopped,
    ));

    let public_addr = listeners.public.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    if tls.is_none() && !public_addr.ip().is_loopback() {
        tracing::warn!(%public_addr, "serving plain HTTP on a non-loopback address; put a TLS-terminating proxy in front or set [server.tls]");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%public_addr, %admin_addr, scheme, "wasmhook listening");

    // One shutdown signal fans out to both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_flag = shutting_down.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let header_timeout = config.server.header_timeout;
    tokio::join!(
        serve::serve(
            listeners.public,
            public,
            serve::ServeOptions {
                name: "public",
                header_timeout,
                drain: SHUTDOWN_GRACE,
                tls,
            },
            stopped(stop_rx.clone()),
        ),
        serve::serve(
            listeners.admin,
            admin_router,
            serve::ServeOptions {
                name: "admin",
                header_timeout,
                drain: SHUTDOWN_GRACE,
                // The admin listener stays on loopback / a private network: plain HTTP.
                tls: None,
            },
            stopped(stop_rx),
        ),
    );
    reloader.abort();
    let _ = watch_stop.send(true);
    // A reconcile in progress finishes first (it may be compiling); nothing waits on it.
    drop(watcher);
    tracing::info!("listeners closed; finishing running deliveries");
    dispatcher.shutdown(SHUTDOWN_GRACE).await;
    let _ = gc_stop.send(true);
    for (name, task) in [
        ("retention collector", collector),
        ("token refresher", refresher),
        ("uninstall eraser", eraser),
    ] {
        if let Err(e) = task.await {
            tracing::error!(error = %e, task = name, "a background task ended abnormally");
        }
    }
    if let Err(e) = monitor.await {
        tracing::error!(error = %e, "the queue monitor ended abnormally");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
