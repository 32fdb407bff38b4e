//! The binary's handling of config files: the shipped example validates; a bad field stops
//! `serve` before any port is bound, with a message naming the file, the field and the fix.

use wasmhook_tests::child::wasmhook_binary;

#[test]
fn the_shipped_example_config_passes_check() {
    let example = wasmhook_tests::repo_root().join("wasmhook.example.toml");
    let out = std::process::Command::new(wasmhook_binary())
        .args(["check", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_refuses_a_bad_field_naming_file_field_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhook.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body = \"a lot\"\n\n[plugins]\nworkerz = 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(wasmhook_binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    let out = std::process::Command::new(wasmhook_binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.max_body"),
        "names the field: {stderr}"
    );
    assert!(stderr.contains("64MiB"), "says how to write it: {stderr}");
}
