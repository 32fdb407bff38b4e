//! `wasmhook dev`: `serve` for trying plugins offline. Every API in the config is pointed at an
//! in-process recording mock ([`MockApi`]) that answers canned JSON and logs each call
//! (`mock API call api=... method=... path=... body=...`), so a plugin's effect shows in the
//! terminal without credentials or network.
//!
//! Invariants: the config's tokens are never read or sent (the mock gets none); everything else
//! (sources, signatures, storage, plugins, limits) runs exactly as `serve` runs it.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{mock_api::MockApi, responses::Responses};
use crate::config::{Config, LogFormat};

/// Arguments of `wasmhook dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// The config file.
    #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
    pub config: PathBuf,
    /// Canned API answers: a JSON file mapping "METHOD /path" to { "status", "body" }; calls
    /// nothing matches get 200 {}.
    #[arg(long)]
    pub responses: Option<PathBuf>,
    /// Log JSON lines instead of human-readable text.
    #[arg(long)]
    pub json_logs: bool,
}

/// Runs `wasmhook dev` until SIGTERM or Ctrl-C.
pub fn run(args: DevArgs) -> ExitCode {
    let mut config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let responses = match args.responses.as_deref().map(Responses::load).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            eprintln!("wasmhook dev: --responses: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.json_logs {
        config.telemetry.log_format = LogFormat::Json;
    }
    crate::telemetry::init_logging(&config.telemetry);
    let Some(runtime) = super::multi_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async move {
        let mock = MockApi::start(config.apis.keys().cloned(), responses).await?;
        config.apis = mock.redirect(&config.apis);
        for (name, api) in &config.apis {
            tracing::info!(api = %name, mock = %api.base_url, "dev: API answered by the recording mock");
        }
        let listeners = super::bind(&config).await?;
        // The mock lives until the server has stopped.
        let served = crate::run(config, listeners, super::shutdown_signal()).await;
        drop(mock);
        served
    });
    super::report(result)
}
