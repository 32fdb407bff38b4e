//! Logs and metrics. Logs go through `tracing` (human-readable by default, JSON with
//! `log_format = "json"`); metrics through the `metrics` facade into a Prometheus recorder whose
//! text output the admin listener serves at `/metrics`.
//!
//! The `metrics` facade is process-global by design (every module records with `counter!`
//! without plumbing a registry), so the recorder is installed once per process and shared by
//! every server the process runs (tests run several).

pub mod monitor;

use std::{io::IsTerminal, sync::OnceLock, thread, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global `tracing` subscriber. A second call (tests, `run` after `main`) keeps the
/// first subscriber and returns false.
pub fn init_logging(config: &TelemetryConfig) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        // Colours only on a terminal: escape codes in a log file or a pipe (systemd, a test's
        // child process) garble every `key=value` for the tools that read it.
        LogFormat::Human => registry
            .with(
                fmt::layer()
                    // Colour only for a person at a terminal, never into files or pipes.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.is_ok()
}

/// The process's Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            // Only fails for an empty bucket list, which this is not.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding application's); then our
        // handle still renders what is recorded through it, which is nothing — say so.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        spawn_upkeep(handle.clone());
        handle
    })
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample (several per webhook) until it is folded into the
/// buckets, which otherwise happens only when `/metrics` is scraped: a server nobody scrapes
/// would grow by megabytes a minute under load. A thread folds them every few seconds.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = thread::Builder::new()
        .name("wasmhook-metrics".into())
        .spawn(move || {
            loop {
                thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            error = %e,
            "cannot start the metrics upkeep thread; histogram samples are folded only when \
             /metrics is scraped"
        );
    }
}
