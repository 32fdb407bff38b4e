//! A process SIGKILLed right after sending a refresh request (the fake holds the answer, and
//! has already spent the refresh token) recovers on restart: once the persisted refresh lease
//! lapses, the new process redeems the same refresh token within the platform's 30 s window,
//! gets the same new pair, and the tenant is not locked out.

use std::time::Duration;

use serde_json::json;
use wasmhook::store::DeliveryState;
use wasmhook_tests::{ChildServer, FakeOAuth, Installee, signing::HighLevelSigner};

use crate::tokens_support::{body, builder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_cut_by_sigkill_is_redeemed_again_after_restart() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3)).await;
    fake.code(
        "code-a",
        Installee {
            user_type: "Location".into(),
            location: Some("loc-a".into()),
            company: None,
        },
    );
    let (config, dir) = builder(&signer, &fake, "check_interval = \"200ms\"\n").write();
    // A short token request timeout keeps the orphaned refresh lease short (2 s + 2 s).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("request_timeout = \"5s\"", "request_timeout = \"2s\"");
    std::fs::write(&config, text).unwrap();

    let child = ChildServer::start(&config, &[]).await;
    let answer = reqwest::get(child.url("/oauth/callback/fake?code=code-a"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    fake.hold_refreshes(1);
    fake.wait_until(Duration::from_secs(15), "the background refresh", |f| {
        !f.grants("refresh_token").is_empty()
    })
    .await;
    child.kill().await;

    let child = ChildServer::start(&config, &[]).await;
    let (id, event) = body("contact-create", "loc-a", json!({}));
    let response = child
        .post(
            "highlevel",
            &event,
            &[("x-ghl-signature", signer.sign_ed25519(&event))],
        )
        .await;
    assert_eq!(response.status(), 200);
    let done = child
        .admin()
        .wait_final(&id, "recorder", Duration::from_secs(40))
        .await;
    assert_eq!(
        done.state,
        DeliveryState::Succeeded,
        "{done:#?}\n{}",
        child.log_text()
    );

    let refreshes = fake.grants("refresh_token");
    // One cut off, one after the restart; the 3 s tokens may have been refreshed again since.
    assert!(refreshes.len() >= 2, "{refreshes:#?}");
    assert_eq!(
        refreshes[0].form["refresh_token"], refreshes[1].form["refresh_token"],
        "the restart retried with the same refresh token"
    );
    // The delivery succeeded, so its last call carried a token the API took: one issued by
    // the refresh the restart redeemed (or a later one; 3 s tokens keep expiring).
    let calls: Vec<_> = fake
        .api_calls()
        .into_iter()
        .filter(|s| s.path == "/record")
        .collect();
    let last = calls.last().expect("the delivery called the API");
    let issued = fake.issued();
    assert!(
        issued.contains(last.bearer.as_ref().unwrap()),
        "an issued token"
    );
    drop(dir);
}
