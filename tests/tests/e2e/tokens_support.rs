//! Helpers of the credential tests: a server whose API `fake` is a [`FakeOAuth`] with OAuth
//! configured, the hostile plugin in `record` mode calling it, signed INSTALL / UNINSTALL /
//! ContactCreate bodies for a chosen tenant, and the OAuth callback.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{
    ADMIN_TOKEN, APP_ID, FakeOAuth, TestServer, fixtures, server::TestServerBuilder,
    signing::HighLevelSigner,
};

use crate::common::hostile_wasm;

/// The master key tests seal with (32 bytes, base64).
pub const MASTER_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// Writes the client id/secret and master key files into `dir`.
pub fn write_secrets(dir: &Path, key: &str) {
    std::fs::write(dir.join("client.id"), "client-id-1\n").unwrap();
    std::fs::write(dir.join("client.secret"), "client-secret-1\n").unwrap();
    std::fs::write(dir.join("master.key"), format!("{key}\n")).unwrap();
}

/// The hostile plugin in `record` mode (one `POST /record` on api `fake` per event), on
/// ContactCreate and UNINSTALL.
pub fn recorder_manifest() -> String {
    "name = \"recorder\"\nevents = [\"highlevel:ContactCreate\", \"highlevel:UNINSTALL\"]\n\
     timeout = \"20s\"\nmemory = \"32MiB\"\nmax_attempts = 3\nmax_api_calls = 5\nconcurrency = 32\n\n\
     [capabilities.api.fake]\nallow = [\"POST /record\"]\n\n[config]\nmode = \"record\"\n"
        .to_string()
}

/// A builder: source `highlevel` requiring installations of api `fake` (the [`FakeOAuth`]),
/// the recorder plugin, and `[credentials]` with the test key plus `credentials` lines.
pub fn builder(signer: &HighLevelSigner, fake: &FakeOAuth, credentials: &str) -> TestServerBuilder {
    let builder = TestServer::builder();
    write_secrets(builder.dir(), MASTER_KEY);
    builder
        .highlevel_source(
            "highlevel",
            signer,
            "require_installation = true\napi = \"fake\"\n",
        )
        .toml(&format!(
            "[apis.fake]\nbase_url = \"{}\"\nrequest_timeout = \"5s\"\n{}",
            fake.url(),
            fake.oauth_toml("fake", "5s")
        ))
        .toml(&format!(
            "[credentials]\nmaster_key = {{ file = \"master.key\" }}\nwait_recheck = \"300ms\"\n{credentials}\n"
        ))
        .toml("[plugins]\nworkers = 32\npoll_interval = \"50ms\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n")
        .plugin("recorder", &hostile_wasm(), &recorder_manifest())
}

/// A signed HighLevel body of fixture `fixture` for `tenant`, with a fresh webhook id.
pub fn body(fixture: &str, tenant: &str, extra: Value) -> (String, Vec<u8>) {
    let id = format!("wh-{}", uuid::Uuid::new_v4().simple());
    let mut changes = json!({ "locationId": tenant });
    for (k, v) in extra.as_object().unwrap() {
        changes[k] = v.clone();
    }
    (
        id.clone(),
        fixtures::highlevel_body_with(fixture, APP_ID, &id, changes),
    )
}

/// Posts a ContactCreate for `tenant`; returns its webhook id.
pub async fn contact(server: &TestServer, signer: &HighLevelSigner, tenant: &str) -> String {
    let (id, body) = body("contact-create", tenant, json!({}));
    let response = server.post_highlevel(signer, &body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    id
}

/// Posts an INSTALL (or UNINSTALL) of `tenant`; returns the status.
pub async fn lifecycle(
    server: &TestServer,
    signer: &HighLevelSigner,
    fixture: &str,
    tenant: &str,
) -> u16 {
    let (_, body) = body(fixture, tenant, json!({ "companyId": null }));
    server.post_highlevel(signer, &body).await.status().as_u16()
}

/// `GET /oauth/callback/fake?code=...`: status and JSON answer.
pub async fn callback(server: &TestServer, code: &str) -> (u16, Value) {
    let response = reqwest::get(server.url(&format!("/oauth/callback/fake?code={code}")))
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until the recorder's delivery of `webhook_id` is final; asserts it succeeded.
pub async fn succeeded(server: &TestServer, webhook_id: &str) -> DeliveryRecord {
    let d = server
        .wait_final(webhook_id, "recorder", Duration::from_secs(30))
        .await;
    assert_eq!(d.state, DeliveryState::Succeeded, "{d:#?}");
    d
}

/// Waits until a delivery of `webhook_id` shows a note containing `note` (a delivery waiting
/// visibly for credentials); returns it.
pub async fn waiting(server: &TestServer, webhook_id: &str, note: &str) -> DeliveryRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = server.deliveries(&format!("event_id={webhook_id}")).await;
        if let Some(d) = list
            .into_iter()
            .find(|d| d.note.as_deref().is_some_and(|n| n.contains(note)))
        {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery of {webhook_id} never showed the note `{note}`"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls an admin endpoint with a JSON body; returns status and JSON.
pub async fn admin_call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, server.admin().url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `wasmhook_alerts_total{kind="<kind>"}` in the server's metrics (0 when absent).
pub async fn alerts(server: &TestServer, kind: &str) -> u64 {
    let needle = format!("wasmhook_alerts_total{{kind=\"{kind}\"}} ");
    server
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&needle).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}
