//! Loading the plugin folder: good pairs load, every broken file is reported and skipped.

use super::*;
use crate::{ids::PluginName, runtime::test_support};

fn write(dir: &Path, file: &str, contents: &[u8]) {
    std::fs::write(dir.join(file), contents).unwrap();
}

fn manifest_text(name: &str) -> String {
    format!("name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\n")
}

#[tokio::test]
async fn loads_good_pairs_and_reports_every_broken_file() {
    let loader = Loader::standalone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ok = test_support::component(test_support::OK);

    write(dir.path(), "good.toml", manifest_text("good").as_bytes());
    write(dir.path(), "good.wasm", &ok);
    write(
        dir.path(),
        "no-wasm.toml",
        manifest_text("no-wasm").as_bytes(),
    );
    write(dir.path(), "no-manifest.wasm", &ok);
    write(
        dir.path(),
        "bad-manifest.toml",
        b"name = \"bad-manifest\"\nevents = []\n",
    );
    write(dir.path(), "bad-manifest.wasm", &ok);
    write(
        dir.path(),
        "garbage.toml",
        manifest_text("garbage").as_bytes(),
    );
    write(dir.path(), "garbage.wasm", b"\0asm but not really");
    write(dir.path(), "net.toml", manifest_text("net").as_bytes());
    write(
        dir.path(),
        "net.wasm",
        &test_support::component_importing(
            r#"(import "wasi:http/outgoing-handler@0.2.0" (instance))"#,
            test_support::OK,
        ),
    );
    write(dir.path(), "README.md", b"not a plugin");

    let (set, errors) = load_dir(&loader, dir.path()).await;

    assert_eq!(set.len(), 1);
    let good = set.get(&PluginName::new("good")).expect("good is loaded");
    assert_eq!(good.sha256.len(), 64);
    assert_eq!(set.subscribers("highlevel", "ContactCreate").len(), 1);
    assert!(set.subscribers("highlevel", "ContactDelete").is_empty());

    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 5, "{messages:#?}");
    let find = |file: &str| {
        messages
            .iter()
            .find(|m| m.contains(file))
            .unwrap_or_else(|| panic!("no error names {file}: {messages:#?}"))
            .clone()
    };
    assert!(find("no-wasm.toml").contains("no component"));
    assert!(find("no-manifest.wasm").contains("no manifest"));
    assert!(find("bad-manifest.toml").contains("events"));
    assert!(find("garbage.wasm").contains("compile failed"));
    assert!(find("net.wasm").contains("wasi:http/outgoing-handler@0.2.0"));
}

#[tokio::test]
async fn a_missing_folder_is_reported() {
    let parent = tempfile::tempdir().unwrap();
    let loader = Loader::standalone().unwrap();
    let missing = parent.path().join("no-such-folder");
    let (set, errors) = load_dir(&loader, &missing).await;
    assert!(set.is_empty());
    assert!(matches!(errors.as_slice(), [LoadError::ReadDir { .. }]));
    assert!(errors[0].to_string().contains("no-such-folder"));
}

#[tokio::test]
async fn one_pair_loads_on_its_own() {
    let loader = Loader::standalone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "solo.toml", manifest_text("solo").as_bytes());
    write(
        dir.path(),
        "solo.wasm",
        &test_support::component(test_support::OK),
    );
    let plugin = load_pair(
        &loader,
        &dir.path().join("solo.toml"),
        &dir.path().join("solo.wasm"),
    )
    .await
    .unwrap();
    assert_eq!(plugin.manifest.name.as_str(), "solo");

    let err = load_pair(
        &loader,
        &dir.path().join("solo.toml"),
        &dir.path().join("absent.wasm"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
}
