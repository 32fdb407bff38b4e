//! The sandbox seen from inside and at its edges: nothing ambient (files, environment, sockets)
//! is visible to a plugin; memory is capped over all its memories together; an import the host
//! does not grant is refused at load, naming it.

use std::time::Duration;

use wasmhook::store::DeliveryState;
use wasmhook_tests::{ChildServer, FakeApi, TestServer, fixtures, signing::HighLevelSigner};

use crate::common::{FINAL, contact_create, hostile_manifest, hostile_wasm, server_with};

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
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let wasm = hostile_wasm();
    let builder = TestServer::builder()
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
            &hostile_manifest("reads-files", "read-file", "5s", "16MiB", ""),
        )
        .plugin(
            "reads-env",
            &wasm,
            &hostile_manifest(
                "reads-env",
                "read-env",
                "5s",
                "16MiB",
                &format!("env_name = \"{TOKEN_VAR}\""),
            ),
        )
        .plugin(
            "opens-socket",
            &wasm,
            &hostile_manifest(
                "opens-socket",
                "socket",
                "5s",
                "16MiB",
                &format!("addr = \"{}\"", fake.addr),
            ),
        );
    let (config, _dir) = builder.write();
    let child = ChildServer::start(&config, &[(TOKEN_VAR, "super-secret-token-value")]).await;

    let (webhook_id, body) = contact_create();
    let client = reqwest::Client::new();
    let r = client
        .post(child.url("/webhooks/highlevel"))
        .header("x-ghl-signature", signer.sign_ed25519(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    for plugin in ["reads-files", "reads-env", "opens-socket"] {
        let d = wait_final_child(&child, &webhook_id, plugin).await;
        // Each plugin fails (with what it saw) if anything was visible; ok means sealed off.
        assert_eq!(d["state"], "succeeded", "{plugin} saw something: {d:#}");
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.is_empty() && r.path.starts_with("/contacts")),
        "no plugin reached the fake directly: {:#?}",
        fake.requests()
    );
    assert!(
        !child.log_text().contains("super-secret-token-value"),
        "the token leaked into the log"
    );
}

async fn wait_final_child(child: &ChildServer, event_id: &str, plugin: &str) -> serde_json::Value {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + FINAL;
    loop {
        let list: serde_json::Value = client
            .get(format!(
                "http://{}/admin/deliveries?event_id={event_id}&plugin={plugin}",
                child.admin
            ))
            .bearer_auth(wasmhook_tests::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(d) = list.as_array().and_then(|l| l.first())
            && (d["state"] == "succeeded" || d["state"] == "dead")
        {
            let id = d["id"].as_str().unwrap();
            return client
                .get(format!("http://{}/admin/deliveries/{id}", child.admin))
                .bearer_auth(wasmhook_tests::ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{plugin}: not final: {list:#}\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_memories_that_pass_the_cap_together_are_stopped() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let wasm = component_from_wat("two-memories", scratch.path());
    let manifest = "name = \"two-memories\"\nevents = [\"highlevel:ContactCreate\"]\n\
                    timeout = \"5s\"\nmemory = \"16MiB\"\nmax_attempts = 1\n";
    let server = server_with(&signer, &fake, |b| {
        b.plugin("two-memories", &wasm, manifest)
    })
    .await;
    let (webhook_id, body) = contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    let d = server.wait_final(&webhook_id, "two-memories", FINAL).await;
    assert_eq!(d.state, DeliveryState::Dead, "{d:#?}");
    assert_eq!(d.attempts[0].outcome, "memory", "{d:#?}");
    let tagger = server
        .wait_final(&webhook_id, "contact-tagger", FINAL)
        .await;
    assert_eq!(tagger.state, DeliveryState::Succeeded);
}

#[tokio::test]
async fn two_memories_under_the_cap_together_run() {
    // The control for the test above: the same component with room for both memories succeeds.
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let wasm = component_from_wat("two-memories", scratch.path());
    let manifest = "name = \"two-memories\"\nevents = [\"highlevel:ContactCreate\"]\n\
                    timeout = \"5s\"\nmemory = \"32MiB\"\nmax_attempts = 1\n";
    let server = server_with(&signer, &fake, |b| {
        b.plugin("two-memories", &wasm, manifest)
    })
    .await;
    let (webhook_id, body) = contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    let d = server.wait_final(&webhook_id, "two-memories", FINAL).await;
    assert_eq!(d.state, DeliveryState::Succeeded, "{d:#?}");
}

#[tokio::test]
async fn a_component_importing_wasi_http_is_refused_at_load_naming_the_import() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let wasm = component_from_wat("imports-wasi-http", scratch.path());
    let manifest = "name = \"wants-http\"\nevents = [\"highlevel:ContactCreate\"]\n";
    let builder = TestServer::builder()
        .api("highlevel", &fake)
        .highlevel(&signer)
        .plugin("wants-http", &wasm, manifest)
        .plugin(
            "contact-tagger",
            &crate::common::tagger_wasm(),
            &crate::common::tagger_manifest(),
        );
    let (config, _dir) = builder.write();
    let child = ChildServer::start(&config, &[]).await;
    let (webhook_id, body) = contact_create();
    let r = reqwest::Client::new()
        .post(child.url("/webhooks/highlevel"))
        .header("x-ghl-signature", signer.sign_ed25519(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tagger = wait_final_child(&child, &webhook_id, "contact-tagger").await;
    assert_eq!(tagger["state"], "succeeded");
    let log = child.log_text();
    assert!(
        log.contains("wasi:http/outgoing-handler@0.2.0") && log.contains("wants-http"),
        "the refusal names the plugin and the import:\n{log}"
    );
    let none: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://{}/admin/deliveries?plugin=wants-http",
            child.admin
        ))
        .bearer_auth(wasmhook_tests::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        none,
        serde_json::json!([]),
        "a refused plugin receives nothing"
    );
    let _ = fixtures::highlevel;
}
