//! JSON logs through the real binary: every line parses; the lines of a delivery carry its
//! event id, delivery id, plugin and tenant; the plugin's own lines are marked as such; no
//! token or secret appears anywhere in the log.

use std::time::Duration;

use wasmhook_tests::{ADMIN_TOKEN, API_TOKEN, FakeApi, signing::HighLevelSigner};

use crate::{
    common::contact_create,
    monitoring_support::{alert_secret, config, start},
};

/// `key` of a JSON line, at the top level or in its span.
fn field<'a>(line: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    line.get(key)
        .or_else(|| line.get("span").and_then(|s| s.get(key)))
        .and_then(|v| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse_carry_the_delivery_ids_and_hold_no_secret() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let receiver = FakeApi::start().await;
    let (path, _dir) = config(&signer, &fake, &receiver, "", |b| {
        b.toml("[telemetry]\nlog_format = \"json\"\nlog_filter = \"info\"\n")
    });
    let server = start(&path).await;
    let (id, body) = contact_create();
    let signature = signer.sign_ed25519(&body);
    server
        .post(
            "highlevel",
            &body,
            &[("x-ghl-signature", signature.clone())],
        )
        .await;
    let delivery = server
        .admin()
        .wait_final(&id, "contact-tagger", Duration::from_secs(30))
        .await;
    // The success line is written right after the state is recorded; allow it to reach us.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("delivery succeeded") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let log = server.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let about = |message: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| field(l, "message") == Some(message) || l["fields"]["message"] == message)
            .collect()
    };
    let delivery_id = delivery.id.to_string();
    for message in ["delivery succeeded", "tagged contact", "api call"] {
        let found = about(message);
        assert_eq!(found.len(), 1, "one {message:?} line in:\n{log}");
        let line = found[0];
        assert_eq!(field(line, "event_id"), Some(id.as_str()), "{line}");
        assert_eq!(
            field(line, "delivery_id"),
            Some(delivery_id.as_str()),
            "{line}"
        );
        assert_eq!(field(line, "plugin"), Some("contact-tagger"), "{line}");
        assert_eq!(
            field(line, "tenant"),
            Some(delivery.tenant.to_string().as_str()),
            "{line}"
        );
    }
    assert_eq!(
        about("tagged contact")[0]["plugin_log"],
        true,
        "the plugin's line is marked"
    );
    assert!(about("delivery succeeded")[0].get("plugin_log").is_none());

    for secret in [
        API_TOKEN,
        ADMIN_TOKEN,
        alert_secret().as_str(),
        signature.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret is in the log:\n{log}");
    }
}
