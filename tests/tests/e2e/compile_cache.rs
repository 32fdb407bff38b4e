//! The compile cache through the real binary: a restart with 20 unchanged plugins compiles none
//! of them, and the cache folder is private to the server's user.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use wasmhook_tests::{ChildServer, TestServer, plugins::variant};

use crate::common::hostile_wasm;

/// Plugins in the folder: distinct components (each a rebuilt variant), so each is compiled.
const PLUGINS: usize = 20;

/// The value of the metric line starting with `name`, 0 when absent (never recorded).
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_20_cached_plugins_compiles_none() {
    let build = tempfile::tempdir().unwrap();
    let hostile = hostile_wasm();
    let mut builder = TestServer::builder();
    for n in 0..PLUGINS {
        let name = format!("trivial-{n:02}");
        let wasm = variant(&hostile, &name, &build.path().join(format!("{name}.wasm")));
        builder = builder.plugin(
            &name,
            &wasm,
            &format!(
                "name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\n\n\
                 [config]\nmode = \"ok\"\n"
            ),
        );
    }
    let (config, dir) = builder.write();

    let started = std::time::Instant::now();
    let cold = ChildServer::start(&config, &[]).await;
    let cold_start = started.elapsed();
    let metrics = cold.admin().metrics().await;
    assert_eq!(
        metric(&metrics, "wasmhook_plugin_compiles_total"),
        PLUGINS as f64,
        "{}",
        cold.log_text()
    );
    assert!(cold.terminate(Duration::from_secs(30)).await.success());

    let cache = dir.path().join("data/compile-cache");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache folder is private");
    let entries = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".cwasm")
        })
        .count();
    assert_eq!(entries, PLUGINS);

    let started = std::time::Instant::now();
    let warm = ChildServer::start(&config, &[]).await;
    let warm_start = started.elapsed();
    let metrics = warm.admin().metrics().await;
    assert_eq!(
        metric(&metrics, "wasmhook_plugin_compiles_total"),
        0.0,
        "the restart compiled: {}",
        warm.log_text()
    );
    assert_eq!(
        metric(&metrics, "wasmhook_plugin_cache_hits_total"),
        PLUGINS as f64
    );
    assert!(
        warm.log_text().contains("loaded=20"),
        "all 20 are live: {}",
        warm.log_text()
    );
    eprintln!(
        "compile cache: {PLUGINS} plugins, start to listening {cold_start:?} cold (debug host), \
         {warm_start:?} warm"
    );
    assert!(warm.terminate(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_folder_others_can_write_to_is_refused_at_start() {
    let (config, dir) = TestServer::builder().write();
    let cache = dir.path().join("data/compile-cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new(wasmhook_tests::child::wasmhook_binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&cache.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("777") && stderr.contains("chmod 700"),
        "{stderr}"
    );
}
