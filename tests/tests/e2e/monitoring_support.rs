//! Helpers of the monitoring tests: a child server with the contact-tagger and a scripted
//! fake API, reading one family out of `/metrics`, and checking a POSTed alert's Standard
//! Webhooks signature the way any receiver would.

use std::{path::PathBuf, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use wasmhook_tests::{
    ChildServer, FakeApi, TestServer,
    fake_api::Recorded,
    server::TestServerBuilder,
    signing::{HighLevelSigner, hmac_sha256, now_secs},
};

use crate::common::{tagger_manifest, tagger_wasm};

/// The alert secret the tests configure (from a file, as a user would).
pub fn alert_secret() -> String {
    format!(
        "whsec_{}",
        STANDARD.encode(b"monitoring-test-alert-key-0123")
    )
}

/// The contact-tagger with one attempt per delivery, so each failure is a dead delivery.
pub fn one_shot_tagger() -> String {
    tagger_manifest().replace("max_attempts = 5", "max_attempts = 1")
}

/// A config with the `highlevel` source and API (on `fake`), the one-shot tagger, `[alerts]`
/// POSTing to `receiver` with `rules`, and whatever `more` adds. Returns the config path and
/// the folder holding it.
pub fn config(
    signer: &HighLevelSigner,
    fake: &FakeApi,
    receiver: &FakeApi,
    rules: &str,
    more: impl FnOnce(TestServerBuilder) -> TestServerBuilder,
) -> (PathBuf, tempfile::TempDir) {
    let builder = TestServer::builder()
        .api("highlevel", fake)
        .highlevel(signer)
        .plugin("contact-tagger", &tagger_wasm(), &one_shot_tagger())
        .toml(&format!(
            "[alerts]\nurl = \"{}/alerts\"\nsecret = {{ file = \"alert.secret\" }}\n\
             check_interval = \"200ms\"\n{rules}\n",
            receiver.url()
        ));
    std::fs::write(builder.dir().join("alert.secret"), alert_secret()).unwrap();
    more(builder).write()
}

/// Starts the real binary on `config`.
pub async fn start(config: &std::path::Path) -> ChildServer {
    ChildServer::start(config, &[]).await
}

/// The sum of every sample of `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `/metrics` of `server` satisfies `pred`, or panics with the text.
pub async fn wait_metrics(server: &ChildServer, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = server.admin().metrics().await;
        if pred(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; /metrics:\n{text}\nlog:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The alert POSTs `receiver` got, each checked like a Standard Webhooks receiver checks it:
/// `v1` HMAC over `id.timestamp.body` with the shared secret, a timestamp within 5 minutes.
/// Returns their JSON bodies in arrival order.
pub fn verified_alerts(receiver: &FakeApi) -> Vec<serde_json::Value> {
    receiver.requests_to("/alerts").iter().map(verify).collect()
}

/// Waits up to `within` for a verified alert POST of `kind`; returns every one of that kind
/// so far, in arrival order.
pub async fn alerts_of_kind(
    receiver: &FakeApi,
    kind: &str,
    within: Duration,
) -> Vec<serde_json::Value> {
    let of_kind = |r: &FakeApi| {
        verified_alerts(r)
            .into_iter()
            .filter(|a| a["data"]["kind"] == kind)
            .collect::<Vec<_>>()
    };
    receiver
        .wait_until(within, &format!("a `{kind}` alert"), |r| {
            !of_kind(r).is_empty()
        })
        .await;
    of_kind(receiver)
}

fn verify(request: &Recorded) -> serde_json::Value {
    let id = request.header("webhook-id").expect("webhook-id");
    let ts = request
        .header("webhook-timestamp")
        .expect("webhook-timestamp");
    let ts_secs: i64 = ts.parse().expect("the timestamp is Unix seconds");
    assert!((now_secs() - ts_secs).abs() < 300, "stale timestamp {ts}");
    let key = STANDARD
        .decode(alert_secret().strip_prefix("whsec_").unwrap())
        .unwrap();
    let expected = STANDARD.encode(hmac_sha256(
        &key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", &request.body],
    ));
    let signatures = request
        .header("webhook-signature")
        .expect("webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == format!("v1,{expected}")),
        "the alert's signature does not verify: {signatures}"
    );
    request.json()
}

/// `(type, kind, subject)` of each alert, for compact asserts.
pub fn summary(alerts: &[serde_json::Value]) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap_or("").to_string(),
                a["data"]["kind"].as_str().unwrap_or("").to_string(),
                a["data"]["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}
