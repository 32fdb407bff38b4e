//! Command-line interface: parses arguments and runs the chosen command.

mod build;
mod check;
mod dev;
mod init;
mod migrate;
mod mock_api;
mod new;
mod plugin_test;
mod responses;
mod scripted_build;
mod send;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    Listeners, admin_client,
    config::{Config, LogFormat},
};

/// wasmhook: verified webhooks in, sandboxed WebAssembly handlers out.
#[derive(Parser, Debug)]
#[command(name = "wasmhook", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Receive webhooks and run plugins until SIGTERM or Ctrl-C.
    Serve {
        /// The config file.
        #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
        config: PathBuf,
        /// Log JSON lines instead of human-readable text (overrides the config).
        #[arg(long)]
        json_logs: bool,
    },
    /// Serve for development: every API answered by a recording mock that logs each call.
    Dev(dev::DevArgs),
    /// Set up a folder for development: config, plugins folder, dev signing key, sample event.
    Init(init::InitArgs),
    /// Create a plugin project that builds as is.
    New(new::NewArgs),
    /// Build a plugin project and install it into the plugins folder.
    Build(build::BuildArgs),
    /// Run a plugin once on an event against canned API answers; prints its calls, logs and
    /// result.
    Test(plugin_test::TestArgs),
    /// Sign a body the way a source's sender does and post it; prints the answer.
    Send(send::SendArgs),
    /// Validate the config file and every plugin (manifest, component, world, imports, the APIs
    /// and sources it names); exits non-zero with a line per problem.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
        config: PathBuf,
    },
    /// List, show, replay or cancel deliveries on a running server (admin API).
    Deliveries(admin_client::DeliveriesArgs),
    /// Replay dead deliveries matching a filter, paced (admin API).
    Replay(admin_client::ReplayArgs),
    /// Delete dead deliveries (admin API).
    Purge(admin_client::PurgeArgs),
    /// Remove everything held about a tenant, or about one contact of it (admin API).
    Erase(admin_client::EraseArgs),
    /// Register, rotate or list stored credentials (admin API).
    Tokens(admin_client::TokensArgs),
    /// Re-seal stored credentials under a new master key (admin API), or make a key.
    Keys(admin_client::KeysArgs),
    /// A live summary: per plugin its last hour, per API its health, installations needing
    /// action, open alerts (admin API).
    Status(admin_client::StatusArgs),
    /// Bring the store's schema up to date (serve does it at start too); safe while PostgreSQL
    /// replicas run.
    Migrate {
        /// The config file.
        #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
        config: PathBuf,
    },
}

/// Runs the parsed command.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config, json_logs } => serve(config, json_logs),
        Command::Dev(args) => dev::run(args),
        Command::Init(args) => init::run(args),
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Test(args) => plugin_test::run(args),
        Command::Send(args) => send::run(args),
        Command::Check { config } => check::run(&config),
        Command::Deliveries(args) => admin(admin_client::run_deliveries(args)),
        Command::Replay(args) => admin(admin_client::run_replay(args)),
        Command::Purge(args) => admin(admin_client::run_purge(args)),
        Command::Erase(args) => admin(admin_client::run_erase(args)),
        Command::Tokens(args) => admin(admin_client::run_tokens(args)),
        Command::Keys(args) => admin(admin_client::run_keys(args)),
        Command::Status(args) => admin(admin_client::run_status(args)),
        Command::Migrate { config } => migrate::run(&config),
    }
}

/// Runs one admin command on a small runtime and prints its answer or its error.
fn admin(
    command: impl std::future::Future<Output = Result<String, admin_client::AdminClientError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmhook: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn serve(path: PathBuf, json_logs: bool) -> ExitCode {
    let mut config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if json_logs {
        config.telemetry.log_format = LogFormat::Json;
    }
    crate::telemetry::init_logging(&config.telemetry);
    let Some(runtime) = multi_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async move {
        let listeners = bind(&config).await?;
        crate::run(config, listeners, shutdown_signal()).await
    });
    report(result)
}

/// The server's runtime; None (after saying why) if it cannot start.
fn multi_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .thread_name("wasmhook-http")
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            None
        }
    }
}

/// Binds the config's listeners; errors name the field and the file.
async fn bind(config: &Config) -> anyhow::Result<Listeners> {
    let bind_one = |addr, field: &'static str| async move {
        tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {addr} ({field} in {}): {e}",
                config.path.display()
            )
        })
    };
    Ok(Listeners {
        public: bind_one(config.server.listen, "server.listen").await?,
        admin: bind_one(config.admin.listen, "admin.listen").await?,
    })
}

/// The exit code of a server run, logging and printing its error.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("wasmhook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
