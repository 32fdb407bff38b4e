//! A signed HighLevel webhook through the real server: verified, stored once, delivered to the
//! example plugin, which calls the fake API through the host.

use serde_json::Value;
use wasmhook::store::{DeliveryState, Store};
use wasmhook_tests::{API_TOKEN, APP_ID, FakeApi, fixtures, signing::HighLevelSigner};

use crate::common::{CONTACT_ID, FINAL, contact_create, server_with};

#[tokio::test]
async fn a_signed_contact_create_tags_the_contact_once_and_a_repeat_is_a_duplicate() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let server = server_with(&signer, &fake, |b| b).await;
    let (webhook_id, body) = contact_create();

    let response = server.post_highlevel(&signer, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["event_id"], webhook_id.as_str());
    assert_eq!(answer["duplicate"], false);

    let delivery = server
        .wait_final(&webhook_id, "contact-tagger", FINAL)
        .await;
    assert_eq!(delivery.state, DeliveryState::Succeeded, "{delivery:#?}");
    let path = format!("/contacts/{CONTACT_ID}/tags");
    let calls = fake.requests_to(&path);
    assert_eq!(calls.len(), 1, "exactly one tag call: {calls:#?}");
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.header("authorization"),
        Some(format!("Bearer {API_TOKEN}").as_str())
    );
    assert_eq!(call.header("version"), Some("2021-07-28"));
    assert_eq!(
        call.header("idempotency-key"),
        Some(format!("{}:1", delivery.id).as_str()),
        "the delivery's idempotency key with the call number"
    );
    assert_eq!(call.json()["tags"], serde_json::json!(["new-lead"]));

    // The same body again: acknowledged as a duplicate, nothing new runs.
    let again = server.post_highlevel(&signer, &body).await;
    assert_eq!(again.status(), 200);
    let answer: Value = again.json().await.unwrap();
    assert_eq!(answer["duplicate"], true);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        fake.requests_to(&path).len(),
        1,
        "a duplicate must not call the API again"
    );
    assert_eq!(
        server
            .deliveries(&format!("event_id={webhook_id}"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn the_legacy_rsa_signature_is_accepted_when_the_ed25519_header_is_absent() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let server = server_with(&signer, &fake, |b| b).await;
    let (webhook_id, body) = contact_create();
    let response = server
        .post(
            "highlevel",
            &body,
            &[("x-wh-signature", signer.sign_rsa(&body))],
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let delivery = server
        .wait_final(&webhook_id, "contact-tagger", FINAL)
        .await;
    assert_eq!(delivery.state, DeliveryState::Succeeded);
}

#[tokio::test]
async fn forged_unsigned_and_foreign_webhooks_are_refused_and_leave_no_trace() {
    let signer = HighLevelSigner::new();
    let stranger = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let mut server = server_with(&signer, &fake, |b| b).await;
    let (_, body) = contact_create();

    // Tampered body: signed, then one byte changed.
    let signature = signer.sign_ed25519(&body);
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'J').unwrap();
    tampered[at] = b'K';
    let r = server
        .post(
            "highlevel",
            &tampered,
            &[("x-ghl-signature", signature.clone())],
        )
        .await;
    assert_eq!(r.status(), 401);
    let error: Value = r.json().await.unwrap();
    assert!(error["error"]["code"].is_string(), "{error}");

    // Signed with a key the source does not trust.
    let r = server.post_highlevel(&stranger, &body).await;
    assert_eq!(r.status(), 401);

    // No signature at all.
    let r = server.post("highlevel", &body, &[]).await;
    assert_eq!(r.status(), 401);

    // A valid Ed25519 header wins: a bad one is not rescued by a good legacy signature.
    let r = server
        .post(
            "highlevel",
            &body,
            &[
                ("x-ghl-signature", stranger.sign_ed25519(&body)),
                ("x-wh-signature", signer.sign_rsa(&body)),
            ],
        )
        .await;
    assert_eq!(r.status(), 401, "no fallback to the legacy header");

    // Genuinely signed, but for another marketplace app.
    let other_app =
        fixtures::highlevel_signed_body("contact-create", "someone-elses-app", "wh-other");
    let r = server.post_highlevel(&signer, &other_app).await;
    assert_eq!(r.status(), 403);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "wrong_app");

    // An unknown source.
    let r = server.post("nope", &body, &[]).await;
    assert_eq!(r.status(), 404);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        fake.requests().is_empty(),
        "no API call for refused webhooks"
    );
    assert!(server.deliveries("").await.is_empty(), "no deliveries");
    server.stop().await.unwrap();
    let store = wasmhook::store::sqlite::SqliteStore::open(&server.db_path())
        .await
        .unwrap();
    assert_eq!(store.event_count().await.unwrap(), 0, "nothing stored");
    let _ = APP_ID;
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_with_413() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let server = server_with(&signer, &fake, |b| b.toml("")).await;
    let big = vec![b' '; 2 << 20];
    let r = server
        .post(
            "highlevel",
            &big,
            &[("x-ghl-signature", signer.sign_ed25519(&big))],
        )
        .await;
    assert_eq!(r.status(), 413);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "body_too_large");
}
