//! Helpers of the delivery-engine tests: signed bodies with chosen ids, a server that can be
//! stopped and started again on the same data dir ([`InProcess`], from the shared helpers),
//! admin API calls against any address, and the `wasmhook` CLI run against a server.

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use wasmhook::store::{DeliveryRecord, DeliveryState};
pub use wasmhook_tests::server::InProcess;
use wasmhook_tests::{
    ADMIN_TOKEN, APP_ID, child::wasmhook_binary, fixtures, signing::HighLevelSigner,
};

/// A ContactCreate body for our app with webhook id `webhook_id` and contact id `contact`.
pub fn contact_body(webhook_id: &str, contact: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixtures::highlevel_signed_body(
        "contact-create",
        APP_ID,
        webhook_id,
    ))
    .unwrap();
    body["id"] = Value::from(contact);
    serde_json::to_vec(&body).unwrap()
}

/// Posts a signed body to the `highlevel` source at `public`; returns the status.
pub async fn post(
    client: &reqwest::Client,
    public: SocketAddr,
    signer: &HighLevelSigner,
    body: &[u8],
) -> reqwest::Result<u16> {
    let response = client
        .post(format!("http://{public}/webhooks/highlevel"))
        .header("content-type", "application/json")
        .header("x-ghl-signature", signer.sign_ed25519(body))
        .body(body.to_vec())
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// `GET` an admin path at `admin` and decode the JSON.
pub async fn admin_get<T: serde::de::DeserializeOwned>(admin: SocketAddr, path: &str) -> T {
    let response = reqwest::Client::new()
        .get(format!("http://{admin}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Every delivery (up to 1000) at `admin`, newest first.
pub async fn all_deliveries(admin: SocketAddr) -> Vec<DeliveryRecord> {
    admin_get(admin, "/admin/deliveries?limit=1000").await
}

/// Waits until `check` holds for the deliveries at `admin`, polling; panics after `timeout`.
pub async fn wait_deliveries(
    admin: SocketAddr,
    timeout: Duration,
    what: &str,
    check: impl Fn(&[DeliveryRecord]) -> bool,
) -> Vec<DeliveryRecord> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = all_deliveries(admin).await;
        if check(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every delivery is final (succeeded or dead).
pub fn all_final(list: &[DeliveryRecord]) -> bool {
    list.iter()
        .all(|d| matches!(d.state, DeliveryState::Succeeded | DeliveryState::Dead))
}

/// Runs the `wasmhook` CLI with `args` against the admin API at `admin` (token from the
/// environment, as an operator would); returns (exit code, stdout, stderr).
pub async fn cli(admin: SocketAddr, args: &[&str]) -> (i32, String, String) {
    let binary = wasmhook_binary().to_path_buf();
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .arg("--admin-url")
        .arg(format!("http://{admin}"))
        .env_clear()
        .env("WASMHOOK_ADMIN_TOKEN", ADMIN_TOKEN);
    let output = command.output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Like [`cli`] with `--json`, decoding stdout; panics with stderr on failure.
pub async fn cli_json<T: serde::de::DeserializeOwned>(admin: SocketAddr, args: &[&str]) -> T {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = cli(admin, &all).await;
    assert_eq!(code, 0, "wasmhook {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("wasmhook {args:?}: {e}: {out}"))
}

/// A manifest for the hostile plugin `name` in `mode`, with `extra` top-level lines and
/// `config` lines under `[config]`; it may call `POST /**` on api `fake`.
pub fn manifest(name: &str, mode: &str, extra: &str, config: &str) -> String {
    format!(
        "name = \"{name}\"\nevents = [\"highlevel:ContactCreate\"]\n{extra}\n\
         [capabilities.api.fake]\nallow = [\"POST /**\"]\n\n[config]\nmode = \"{mode}\"\n{config}\n"
    )
}
