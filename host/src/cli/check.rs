//! `wasmhook check [--config FILE]`: validates the config file and every plugin in its plugin
//! folder exactly as `serve` would load them (manifest fields, the component compiled and
//! checked against the `wasmhook:plugin` world, its imports), plus the names a manifest uses
//! (APIs in its capabilities, sources in its events) against the config. Prints one line per
//! problem, each naming the file, the field or import, and the fix; exits 0 when all is well,
//! 2 otherwise. Opens no store and binds no port, so it can run beside a live server.

use std::{path::Path, process::ExitCode};

use crate::{
    config::Config,
    plugins::{crosscheck, load_dir},
    runtime::Loader,
};

/// Runs the check of `config_path`; prints what it found.
pub fn run(config_path: &Path) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let problems = match check_plugins(&config) {
        Ok(problems) => problems,
        Err(e) => {
            eprintln!("wasmhook: {e}");
            return ExitCode::FAILURE;
        }
    };
    if problems.is_empty() {
        println!("{}: ok", config_path.display());
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
        eprintln!(
            "{}: {} problem(s) found; fix them and run `wasmhook check` again",
            config_path.display(),
            problems.len()
        );
        ExitCode::from(2)
    }
}

/// Loads every plugin of `config` and returns every problem, as text; prints the plugins that
/// passed.
fn check_plugins(config: &Config) -> anyhow::Result<Vec<String>> {
    let dir = &config.plugins.dir;
    if !dir.exists() {
        // Like `serve`, which starts without plugins and loads them once the folder appears.
        println!(
            "{}: no plugin folder yet (plugins.dir); no plugins to check",
            dir.display()
        );
        return Ok(Vec::new());
    }
    let loader = Loader::standalone()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (set, errors) = runtime.block_on(load_dir(&loader, dir));
    let mut problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for plugin in set.iter() {
        let unknown = crosscheck::check(&plugin.manifest, config);
        if unknown.is_empty() {
            println!(
                "{}: ok (plugin {})",
                plugin.manifest.path.display(),
                plugin.manifest.name
            );
        }
        problems.extend(unknown.iter().map(ToString::to_string));
    }
    Ok(problems)
}
