//! An exhausted daily quota through the real server: the API answers 429 with
//! `X-RateLimit-Daily-Remaining: 0` and a reset, and the delivery waits for the reset without
//! spending an attempt, then runs and succeeds.

use std::time::Duration;

use axum::http::Method;
use wasmhook::{ids::now_ms, store::DeliveryState};
use wasmhook_tests::{FakeApi, TestServer, fake_api::Reply, signing::HighLevelSigner};

use crate::common::{CONTACT_ID, FINAL, contact_create, tagger_manifest, tagger_wasm};

/// The delivery is deferred (pending, no attempt recorded, a note naming the quota) until the
/// reset; with `max_attempts = 1` a spent attempt would have made it dead. After the reset it
/// runs once more, with the same idempotency value, and succeeds on its only attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_daily_quota_defers_the_delivery_to_the_reset_without_spending_an_attempt() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let path = format!("/contacts/{CONTACT_ID}/tags");
    let manifest = tagger_manifest()
        .replace("timeout = \"10s\"", "timeout = \"1s\"")
        .replace("max_attempts = 5", "max_attempts = 1");
    assert!(manifest.contains("max_attempts = 1") && manifest.contains("timeout = \"1s\""));
    // The only plugin calling the API, so every request the fake sees is this delivery's.
    let server = TestServer::builder()
        .api("highlevel", &fake)
        .highlevel(&signer)
        .plugin("contact-tagger", &tagger_wasm(), &manifest)
        .spawn()
        .await;
    // The reset is 19-20 s away, in epoch seconds as HighLevel sends it: longer than the plugin's
    // 1 s timeout, so the host cannot wait it out inside the attempt. Set only now, after the
    // server has started (compiling the plugin takes seconds on a busy machine), so the reset is
    // still ahead when the call is made; a fully loaded CI machine has taken over 12 s from here
    // to the call.
    let reset_ms = (now_ms() / 1000 + 20) * 1000;
    fake.on(
        Method::POST,
        &path,
        Reply::Full(
            429,
            vec![
                ("X-RateLimit-Limit-Daily".into(), "200000".into()),
                ("X-RateLimit-Daily-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), (reset_ms / 1000).to_string()),
            ],
            r#"{"message":"daily limit reached"}"#.into(),
        ),
    );
    let (webhook_id, body) = contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);

    // Deferred: pending, its one attempt unspent, due no earlier than the reset.
    let admin = server.admin();
    let deadline = tokio::time::Instant::now() + FINAL;
    let deferred = loop {
        let list = admin
            .deliveries(&format!("event_id={webhook_id}&plugin=contact-tagger"))
            .await;
        if let Some(d) = list.first()
            && d.state == DeliveryState::Pending
            && d.note.is_some()
        {
            break admin.delivery(d.id.as_str()).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery was not deferred: {list:#?}; fake saw {:#?}",
            fake.requests()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(deferred.attempts_made, 0, "{deferred:#?}");
    assert!(deferred.attempts.is_empty(), "{deferred:#?}");
    let note = deferred.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("quota") && note.contains("highlevel"),
        "{note}"
    );
    assert!(
        (reset_ms - 1000..=reset_ms + 5000).contains(&deferred.due_at_ms),
        "due at {} but the reset is at {reset_ms} (a due time a day later means the call came \
         after the reset, on a machine too busy for this test)",
        deferred.due_at_ms
    );
    assert_eq!(fake.requests_to(&path).len(), 1, "nothing sent while spent");

    // The quota is back at the reset.
    fake.on(Method::POST, &path, Reply::Json(200, serde_json::json!({})));
    let done = server
        .wait_final(&webhook_id, "contact-tagger", FINAL)
        .await;
    assert_eq!(done.state, DeliveryState::Succeeded, "{done:#?}");
    assert_eq!(
        done.attempts_made, 1,
        "the deferral spent nothing: {done:#?}"
    );
    let calls = fake.requests_to(&path);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let key = format!("{}:1", done.id);
    for call in &calls {
        assert_eq!(call.header("idempotency-key"), Some(key.as_str()));
    }
    assert!(
        done.attempts[0].started_at_ms >= reset_ms - 1000,
        "ran at {} before the reset at {reset_ms}",
        done.attempts[0].started_at_ms
    );
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wasmhook_deferrals_total") && l.contains("contact-tagger")),
        "{metrics}"
    );
}
