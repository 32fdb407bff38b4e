//! `wasmhook send`, as a user runs it: the real binary signs a file the way the source expects
//! and posts it to a running server, printing the answer.

use std::process::Command;

use wasmhook_tests::{
    APP_ID, TestServer,
    child::wasmhook_binary,
    fixtures,
    signing::{HighLevelSigner, Scheme},
};

use crate::schemes::with_scheme;

/// Runs `wasmhook send` with `args` off the async threads; (success, stdout, stderr).
async fn send(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(wasmhook_binary())
            .arg("send")
            .args(&args)
            .output()
            .expect("running wasmhook send");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    })
    .await
    .expect("the send task")
}

fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
        .collect()
}

#[tokio::test]
async fn send_signs_for_the_source_and_prints_the_answer() {
    let signer = HighLevelSigner::new();
    let builder = TestServer::builder().highlevel(&signer);
    let (builder, _secret) = with_scheme(builder, Scheme::Stripe);
    let server = builder.spawn().await;
    let dir = server.dir.path();
    let config = dir.join("wasmhook.toml").display().to_string();

    let stripe_body = dir.join("stripe.json");
    std::fs::write(
        &stripe_body,
        Scheme::Stripe.body("evt_send_1", "invoice.paid", "acct_1"),
    )
    .unwrap();
    let (ok, out, err) = send(args(&[
        ("config", &config),
        ("source", "stripe"),
        ("file", &stripe_body.display().to_string()),
        ("url", &server.url("/webhooks/stripe")),
    ]))
    .await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("HTTP 200") && out.contains("evt_send_1"),
        "{out}"
    );

    // HighLevel is signed with a private key given as --key.
    let key = dir.join("ed25519.pem");
    std::fs::write(&key, signer.ed25519_private_pem()).unwrap();
    let hl_body = dir.join("contact.json");
    std::fs::write(
        &hl_body,
        fixtures::highlevel_signed_body("contact-create", APP_ID, "wh-send-1"),
    )
    .unwrap();
    let hl = [
        ("config", config.as_str()),
        ("source", "highlevel"),
        ("file", &hl_body.display().to_string()),
        ("url", &server.url("/webhooks/highlevel")),
    ]
    .map(|(k, v)| (k, v.to_string()));
    let with_key: Vec<(&str, &str)> = hl
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("key", key.to_str().unwrap())])
        .collect();
    let (ok, out, err) = send(args(&with_key)).await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("wh-send-1"), "{out}");

    // Without the key it says what is missing.
    let without: Vec<(&str, &str)> = hl.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, _, err) = send(args(&without)).await;
    assert!(!ok);
    assert!(err.contains("--key"), "{err}");
}
