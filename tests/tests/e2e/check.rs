//! `wasmhook check` on the real binary: every plugin is loaded and checked as `serve` would, and
//! a wrong world, a refused import, a bad manifest field and an unknown API each get a message
//! naming the file, the field or import, and the fix.

use std::path::Path;

use wasmhook_tests::{FakeApi, TestServer, child::wasmhook_binary, signing::HighLevelSigner};

use crate::common::hostile_wasm;

/// Runs `wasmhook check --config <config>`; returns the exit code, stdout and stderr.
fn check(config: &Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(wasmhook_binary())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest(name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\n{extra}\n\
         [config]\nmode = \"ok\"\n"
    )
}

#[tokio::test]
async fn check_names_each_broken_plugin_and_what_to_fix() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let parts = tempfile::tempdir().unwrap();
    let not_our_world = parts.path().join("not-our-world.wasm");
    std::fs::write(&not_our_world, wat::parse_str("(component)").unwrap()).unwrap();
    let foreign_import = parts.path().join("foreign-import.wasm");
    std::fs::write(
        &foreign_import,
        wat::parse_str(r#"(component (import "acme:net/sockets@1.0.0" (instance)))"#).unwrap(),
    )
    .unwrap();
    let hostile = hostile_wasm();

    let builder = TestServer::builder()
        .api("fake", &fake)
        .highlevel(&signer)
        .plugin("good", &hostile, &manifest("good", ""))
        .plugin("wrong-world", &not_our_world, &manifest("wrong-world", ""))
        .plugin("foreign", &foreign_import, &manifest("foreign", ""))
        .plugin(
            "bad-field",
            &hostile,
            &manifest("bad-field", "timeout = \"forever\""),
        )
        .plugin(
            "unknown-api",
            &hostile,
            &manifest(
                "unknown-api",
                "[capabilities.api.crm]\nallow = [\"GET /contacts/*\"]",
            ),
        )
        .plugin(
            "unknown-source",
            &hostile,
            &manifest("unknown-source", "").replace(
                "events = [\"highlevel:ContactCreate\"]",
                "events = [\"stripe:charge.succeeded\"]",
            ),
        );
    let (config, dir) = builder.write();
    let plugins = dir.path().join("plugins");

    let (code, stdout, stderr) = check(&config);
    assert_eq!(code, Some(2), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = |file: &str| -> String {
        let path = plugins.join(file).display().to_string();
        stderr
            .lines()
            .find(|l| l.starts_with(&path))
            .unwrap_or_else(|| panic!("no line about {file}:\n{stderr}"))
            .to_string()
    };
    let wrong_world = line("wrong-world.wasm");
    assert!(
        wrong_world.contains("does not export `handle`") && wrong_world.contains("wasmhook:plugin"),
        "{wrong_world}"
    );
    let foreign = line("foreign.wasm");
    assert!(
        foreign.contains("import `acme:net/sockets@1.0.0` is not allowed"),
        "{foreign}"
    );
    let bad_field = line("bad-field.toml");
    assert!(bad_field.contains(": timeout: "), "{bad_field}");
    assert!(bad_field.contains("forever"), "{bad_field}");
    let unknown_api = line("unknown-api.toml");
    assert!(
        unknown_api.contains("capabilities.api.crm: no API `crm` is configured")
            && unknown_api.contains("configured APIs: fake")
            && unknown_api.contains("[apis.crm]"),
        "{unknown_api}"
    );
    let unknown_source = line("unknown-source.toml");
    assert!(
        unknown_source.contains("events: entry 1: no source `stripe`")
            && unknown_source.contains("configured sources: highlevel"),
        "{unknown_source}"
    );
    assert!(stderr.contains("5 problem(s) found"), "{stderr}");
    assert!(
        stdout.contains("good.toml: ok (plugin good)"),
        "the good plugin passes: {stdout}"
    );

    // Fixed (the broken ones removed): check passes.
    for name in [
        "wrong-world",
        "foreign",
        "bad-field",
        "unknown-api",
        "unknown-source",
    ] {
        for ext in ["wasm", "toml"] {
            std::fs::remove_file(plugins.join(format!("{name}.{ext}"))).unwrap();
        }
    }
    let (code, stdout, stderr) = check(&config);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
}
