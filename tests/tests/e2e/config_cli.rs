//! The binary's handling of config files: the shipped example validates; a bad field stops
//! `serve` before any port is bound, with a message naming the file, the field and the fix.

use std::path::Path;

use wasmhook_tests::child::wasmhook_binary;

/// Runs `wasmhook <command> --config <config>`; returns the exit code and stderr.
fn run(command: &str, config: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(wasmhook_binary())
        .args([command, "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_example_configs_pass_check() {
    for file in ["wasmhook.example.toml", "examples/wasmhook.toml"] {
        let (code, stderr) = run("check", &wasmhook_tests::repo_root().join(file));
        assert_eq!(code, Some(0), "{file}: {stderr}");
    }
}

#[test]
fn serve_refuses_a_bad_field_naming_file_field_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhook.toml");

    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[plugins]\nworkerz = 3\n",
    )
    .unwrap();
    let (code, stderr) = run("serve", &path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("workerz"),
        "names the unknown field: {stderr}"
    );

    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body = \"a lot\"\n",
    )
    .unwrap();
    let (code, stderr) = run("serve", &path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("server.max_body"),
        "names the field: {stderr}"
    );
    assert!(stderr.contains("64MiB"), "says how to write it: {stderr}");
}
