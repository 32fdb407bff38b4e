//! `wasmhook status` (the real binary) against a running server with known traffic: two
//! delivered, one dead, the API's attempts and headroom, the open alert.

use std::time::Duration;

use http::Method;
use wasmhook_tests::{FakeApi, Reply, child::wasmhook_binary, signing::HighLevelSigner};

use crate::{
    common::{CONTACT_ID, contact_create},
    monitoring_support::{config, start},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_summarises_a_running_servers_last_hour() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let receiver = FakeApi::start().await;
    let tags = format!("/contacts/{CONTACT_ID}/tags");
    let answer = |status: u16| {
        Reply::Full(
            status,
            vec![
                ("content-type".into(), "application/json".into()),
                ("x-ratelimit-remaining".into(), "42".into()),
            ],
            "{}".into(),
        )
    };
    let (path, dir) = config(&signer, &fake, &receiver, "", |b| b);
    let server = start(&path).await;
    for status in [200, 200, 422] {
        fake.on(Method::POST, &tags, answer(status));
        let (id, body) = contact_create();
        server
            .post(
                "highlevel",
                &body,
                &[("x-ghl-signature", signer.sign_ed25519(&body))],
            )
            .await;
        server
            .admin()
            .wait_final(&id, "contact-tagger", Duration::from_secs(30))
            .await;
    }

    let run = |json: bool| {
        let mut cmd = std::process::Command::new(wasmhook_binary());
        cmd.arg("status")
            .arg("--config")
            .arg(&path)
            .arg("--admin-url")
            .arg(format!("http://{}", server.admin))
            .env_remove("WASMHOOK_ADMIN_TOKEN")
            .current_dir(dir.path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(false);
    let tagger = text
        .lines()
        .find(|l| l.trim_start().starts_with("contact-tagger"))
        .unwrap_or_else(|| panic!("no plugin line:\n{text}"));
    assert!(
        tagger.contains("delivered      2  failed      1  dead      1"),
        "{text}"
    );
    let api = text
        .lines()
        .find(|l| l.trim_start().starts_with("highlevel"))
        .unwrap_or_else(|| panic!("no API line:\n{text}"));
    assert!(api.contains("errors 0% of 3 attempts"), "{text}");
    assert!(api.contains("headroom 42"), "{text}");
    assert!(api.contains("breaker closed"), "{text}");
    assert!(text.contains("installations needing action: 0"), "{text}");
    assert!(
        text.contains("open alerts: 1\n  delivery_dead contact-tagger"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let plugin = &json["plugins"][0];
    assert_eq!(plugin["plugin"], "contact-tagger");
    assert_eq!(
        (plugin["delivered"].as_u64(), plugin["dead"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(plugin["p95_ms"].as_i64().is_some(), "{json}");
}
