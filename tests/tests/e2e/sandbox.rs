//! The sandbox seen from inside and at its edges: nothing ambient (files, environment, sockets)
//! is visible to a plugin; memory is capped over all its memories together; an import the host
//! does not grant is refused at load, naming it.

use wasmhook::store::DeliveryState;
use wasmhook_tests::{ChildServer, FakeApi, TestServer, signing::HighLevelSigner};

use crate::common::{
    FINAL, contact_create, hostile_manifest, hostile_wasm, server_with, tagger_manifest,
    tagger_wasm,
};

/// Builds a component from a WAT file in `tests/fixtures/components/` into `dir`.
fn component_from_wat(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let src = wasmhook_tests::repo_root().join(format!("tests/fixtures/components/{name}.wat"));
    let bytes = wat::parse_file(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let out = dir.join(format!("{name}.wasm"));
    std::fs::write(&out, bytes).unwrap();
    out
}

#[tokio::test]
async fn files_environment_and_sockets_are_invisible_even_with_the_token_in_the_environment() {
    const TOKEN_VAR: &str = "WASMHOOK_SECRET_API_TOKEN";
    const TOKEN: &str = "super-secret-token-value";
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let wasm = hostile_wasm();
    let manifest =
        |name: &str, mode: &str, extra: &str| hostile_manifest(name, mode, "5s", "16MiB", extra);
    let (config, _dir) = TestServer::builder()
        .api("highlevel", &fake)
        .api("fake", &fake)
        .highlevel(&signer)
        .toml(&format!(
            "[apis.secret]\nbase_url = \"{}\"\ntoken = {{ env = \"{TOKEN_VAR}\" }}\n",
            fake.url()
        ))
        .plugin(
            "reads-files",
            &wasm,
            &manifest("reads-files", "read-file", ""),
        )
        .plugin(
            "reads-env",
            &wasm,
            &manifest(
                "reads-env",
                "read-env",
                &format!("env_name = \"{TOKEN_VAR}\""),
            ),
        )
        .plugin(
            "opens-socket",
            &wasm,
            &manifest(
                "opens-socket",
                "socket",
                &format!("addr = \"{}\"", fake.addr),
            ),
        )
        .write();
    let child = ChildServer::start(&config, &[(TOKEN_VAR, TOKEN)]).await;

    let (webhook_id, body) = contact_create();
    let r = child
        .post(
            "highlevel",
            &body,
            &[("x-ghl-signature", signer.sign_ed25519(&body))],
        )
        .await;
    assert_eq!(r.status(), 200);

    for plugin in ["reads-files", "reads-env", "opens-socket"] {
        let d = child.admin().wait_final(&webhook_id, plugin, FINAL).await;
        // Each plugin fails (with what it saw) if anything was visible; ok means sealed off.
        assert_eq!(
            d.state,
            DeliveryState::Succeeded,
            "{plugin} saw something: {d:#?}"
        );
    }
    assert!(
        fake.requests().is_empty(),
        "no plugin reached the fake directly: {:#?}",
        fake.requests()
    );
    assert!(
        !child.log_text().contains(TOKEN),
        "the token leaked into the log"
    );
}

/// Runs the two-memory component (each memory grows by 10 MiB) under a `memory` cap.
async fn two_memories_under(memory: &str) -> wasmhook::store::DeliveryRecord {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let wasm = component_from_wat("two-memories", scratch.path());
    let manifest = format!(
        "name = \"two-memories\"\nevents = [\"highlevel:ContactCreate\"]\n\
         timeout = \"5s\"\nmemory = \"{memory}\"\nmax_attempts = 1\n"
    );
    let server = server_with(&signer, &fake, |b| {
        b.plugin("two-memories", &wasm, &manifest)
    })
    .await;
    let (webhook_id, body) = contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    let tagger = server
        .wait_final(&webhook_id, "contact-tagger", FINAL)
        .await;
    assert_eq!(
        tagger.state,
        DeliveryState::Succeeded,
        "the good plugin is unaffected"
    );
    server.wait_final(&webhook_id, "two-memories", FINAL).await
}

#[tokio::test]
async fn two_memories_that_pass_the_cap_together_are_stopped() {
    let d = two_memories_under("16MiB").await;
    assert_eq!(d.state, DeliveryState::Dead, "{d:#?}");
    assert_eq!(d.attempts[0].outcome, "memory", "{d:#?}");
}

#[tokio::test]
async fn two_memories_under_the_cap_together_run() {
    // The control for the test above: the same component with room for both memories succeeds.
    let d = two_memories_under("32MiB").await;
    assert_eq!(d.state, DeliveryState::Succeeded, "{d:#?}");
}

#[tokio::test]
async fn a_component_importing_wasi_http_is_refused_at_load_naming_the_import() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let wasm = component_from_wat("imports-wasi-http", scratch.path());
    let manifest = "name = \"wants-http\"\nevents = [\"highlevel:ContactCreate\"]\n";
    let (config, _dir) = TestServer::builder()
        .api("highlevel", &fake)
        .highlevel(&signer)
        .plugin("wants-http", &wasm, manifest)
        .plugin("contact-tagger", &tagger_wasm(), &tagger_manifest())
        .write();
    let child = ChildServer::start(&config, &[]).await;
    let (webhook_id, body) = contact_create();
    let r = child
        .post(
            "highlevel",
            &body,
            &[("x-ghl-signature", signer.sign_ed25519(&body))],
        )
        .await;
    assert_eq!(r.status(), 200);
    let tagger = child
        .admin()
        .wait_final(&webhook_id, "contact-tagger", FINAL)
        .await;
    assert_eq!(tagger.state, DeliveryState::Succeeded);
    let log = child.log_text();
    assert!(
        log.contains("wasi:http/outgoing-handler@0.2.0") && log.contains("wants-http"),
        "the refusal names the plugin and the import:\n{log}"
    );
    assert!(
        child
            .admin()
            .deliveries("plugin=wants-http")
            .await
            .is_empty(),
        "a refused plugin receives nothing"
    );
}
