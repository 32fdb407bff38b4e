//! No secret leaves the host: the real binary's whole log (debug level), the admin API's
//! delivery views, `/metrics`, the CLI's output and the error answers of a run that made
//! successful, refused (401) and failing (503) API calls never contain the API token or the
//! admin token, although the token demonstrably went upstream.

use std::time::Duration;

use axum::http::Method;
use wasmhook::store::DeliveryState::{Dead, Succeeded};
use wasmhook_tests::{
    ADMIN_TOKEN, API_TOKEN, ChildServer, FakeApi, TestServer, fake_api::Reply,
    signing::HighLevelSigner,
};

use crate::{
    common::{tagger_manifest, tagger_wasm},
    engine_support::{all_final, cli, contact_body, wait_deliveries},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_appears_in_logs_admin_views_metrics_or_errors() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    // One contact's call succeeds, one is refused as unauthenticated, one meets a failing API.
    let outcomes = [
        ("okContact", 200),
        ("authContact", 401),
        ("downContact", 503),
    ];
    for (contact, status) in outcomes {
        fake.on(
            Method::POST,
            &format!("/contacts/{contact}/tags"),
            Reply::Json(
                status,
                serde_json::json!({"message": format!("status {status}")}),
            ),
        );
    }
    let manifest = tagger_manifest()
        .replace("timeout = \"10s\"", "timeout = \"2s\"")
        .replace("max_attempts = 5", "max_attempts = 2");
    let (config, _dir) = TestServer::builder()
        .api("highlevel", &fake)
        .highlevel(&signer)
        .toml("[plugins]\npoll_interval = \"50ms\"\nretry_base = \"100ms\"\nretry_max = \"1s\"\n")
        .plugin("contact-tagger", &tagger_wasm(), &manifest)
        .write();
    let server = ChildServer::start(&config, &[("RUST_LOG", "debug")]).await;
    let client = reqwest::Client::new();
    let mut texts = Vec::new();

    for (i, (contact, _)) in outcomes.iter().enumerate() {
        let body = contact_body(&format!("wh-secret-{i}"), contact);
        let sig = signer.sign_ed25519(&body);
        let answer = server
            .post("highlevel", &body, &[("x-ghl-signature", sig)])
            .await;
        assert_eq!(answer.status(), 200);
    }
    // Refused requests: their error answers are part of what a caller sees.
    let forged = server
        .post("highlevel", b"{}", &[("x-ghl-signature", "AAAA".into())])
        .await;
    assert_eq!(forged.status(), 401);
    texts.push(forged.text().await.unwrap());
    let unauthorised = client
        .get(format!("http://{}/admin/deliveries", server.admin))
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    texts.push(unauthorised.text().await.unwrap());

    let list = wait_deliveries(
        server.admin,
        Duration::from_secs(60),
        "all three deliveries final",
        |l| l.len() == 3 && all_final(l),
    )
    .await;
    for delivery in &list {
        let view = client
            .get(format!(
                "http://{}/admin/deliveries/{}",
                server.admin, delivery.id
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(view.status(), 200);
        texts.push(view.text().await.unwrap());
        let (code, out, err) =
            cli(server.admin, &["deliveries", "show", delivery.id.as_str()]).await;
        assert_eq!(code, 0, "{err}");
        texts.push(out);
        texts.push(err);
    }
    let state = |i: usize| {
        let d = list
            .iter()
            .find(|d| d.event_id.as_str() == format!("wh-secret-{i}"));
        d.map(|d| d.state)
    };
    assert_eq!(
        [state(0), state(1), state(2)],
        [Some(Succeeded), Some(Dead), Some(Dead)],
        "{list:#?}"
    );
    texts.push(server.admin().metrics().await);

    // The token really was in play: every upstream call carried it.
    let calls = fake.requests();
    assert!(calls.len() >= 3, "{calls:#?}");
    let bearer = format!("Bearer {API_TOKEN}");
    assert!(
        calls
            .iter()
            .all(|c| c.header("authorization") == Some(bearer.as_str()))
    );

    let log = server.log_text();
    // The log is not empty of what matters: each outcome's API call is in it.
    for status in ["200", "401", "503"] {
        assert!(
            log.lines()
                .any(|l| l.contains("api call") && l.contains(&format!("status={status}"))),
            "no api call line with status {status} in:\n{log}"
        );
    }
    texts.push(log);
    for text in &texts {
        for secret in [API_TOKEN, ADMIN_TOKEN] {
            assert!(!text.contains(secret), "a secret leaked into:\n{text}");
        }
    }
    server.kill().await;
}
