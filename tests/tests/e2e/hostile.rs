//! Hostile plugins: each ends as a recorded failure within its budget while the server keeps
//! answering and the well-behaved example plugin keeps working beside it.

use std::time::{Duration, Instant};

use wasmhook::store::{DeliveryRecord, DeliveryState};
use wasmhook_tests::{FakeApi, Reply, TestServer, signing::HighLevelSigner};

use crate::common::{FINAL, contact_create, hostile_manifest, hostile_wasm, server_with};

/// Runs the `hostile` plugin in `mode` next to contact-tagger on one event. While it runs, the
/// server must keep acknowledging webhooks quickly; afterwards contact-tagger must have
/// succeeded. Returns the hostile plugin's final delivery.
async fn run_hostile(
    mode: &str,
    timeout: &str,
    memory: &str,
    extra: &str,
) -> (DeliveryRecord, FakeApi) {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    fake.on(axum::http::Method::GET, "/hang", Reply::Hang);
    let manifest = hostile_manifest("hostile", mode, timeout, memory, extra);
    let server = server_with(&signer, &fake, |b| {
        b.plugin("hostile", &hostile_wasm(), &manifest)
    })
    .await;
    let (webhook_id, body) = contact_create();
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);

    // Ingress stays responsive while the plugin misbehaves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (second_id, second) = contact_create();
    let sent = Instant::now();
    assert_eq!(server.post_highlevel(&signer, &second).await.status(), 200);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "ingress stalled for {:?} while a plugin misbehaved",
        sent.elapsed()
    );

    let hostile = server.wait_final(&webhook_id, "hostile", FINAL).await;
    // The second event runs the same plugin: it must end the same way.
    let again = server.wait_final(&second_id, "hostile", FINAL).await;
    assert_eq!(
        (again.state, again.attempts[0].outcome.as_str()),
        (hostile.state, hostile.attempts[0].outcome.as_str()),
        "both events end alike"
    );
    for id in [&webhook_id, &second_id] {
        let tagger = server.wait_final(id, "contact-tagger", FINAL).await;
        assert_eq!(
            tagger.state,
            DeliveryState::Succeeded,
            "the good plugin is unaffected: {tagger:#?}"
        );
    }
    assert_health(&server).await;
    (hostile, fake)
}

async fn assert_health(server: &TestServer) {
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The single attempt's outcome and how long it ran.
fn attempt(d: &DeliveryRecord) -> (&str, Duration, &str) {
    assert_eq!(d.state, DeliveryState::Dead, "{d:#?}");
    assert_eq!(d.attempts.len(), 1, "{d:#?}");
    let a = &d.attempts[0];
    (
        a.outcome.as_str(),
        Duration::from_millis((a.finished_at_ms - a.started_at_ms) as u64),
        a.error.as_deref().unwrap_or(""),
    )
}

/// The single attempt of a plugin given a 2 s budget ended as a timeout within a second of it.
fn assert_cut_at_the_deadline(d: &DeliveryRecord) {
    let (outcome, took, _) = attempt(d);
    assert_eq!(outcome, "timeout");
    assert!(
        took < Duration::from_secs(3),
        "ran {took:?} for a 2 s budget"
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let (d, _) = run_hostile("loop", "2s", "16MiB", "").await;
    assert_cut_at_the_deadline(&d);
}

#[tokio::test]
async fn a_sixty_second_sleep_through_wasi_clocks_is_stopped_at_the_deadline() {
    let (d, _) = run_hostile("sleep", "2s", "16MiB", "").await;
    assert_cut_at_the_deadline(&d);
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_dropped_at_the_deadline() {
    let (d, fake) = run_hostile("hang-api", "2s", "16MiB", "").await;
    assert_cut_at_the_deadline(&d);
    // One hanging call per event (two events were posted); each is dropped at its deadline.
    assert_eq!(fake.requests_to("/hang").len(), 2);
    fake.wait_until(
        Duration::from_secs(5),
        "the hanging calls to be dropped",
        |f| f.abandoned() == 2,
    )
    .await;
}

#[tokio::test]
async fn allocating_past_the_memory_cap_fails_the_delivery() {
    let (d, _) = run_hostile("alloc", "10s", "16MiB", "").await;
    let (outcome, _, error) = attempt(&d);
    assert!(
        outcome == "memory" || outcome == "trap",
        "{outcome}: {error}"
    );
}

#[tokio::test]
async fn a_stack_overflow_traps() {
    let (d, _) = run_hostile("stack", "10s", "16MiB", "").await;
    let (outcome, _, error) = attempt(&d);
    assert_eq!(outcome, "trap", "{error}");
}

#[tokio::test]
async fn ten_megabytes_of_log_output_are_capped() {
    let (d, _) = run_hostile("log-spam", "20s", "64MiB", "").await;
    let a = &d.attempts[0];
    let bytes: usize = a.logs.iter().map(|l| l.message.len()).sum();
    assert!(bytes > 0, "some output is kept");
    assert!(bytes < 1 << 20, "kept {bytes} bytes of a 20 MB flood");
    assert!(
        a.logs
            .iter()
            .any(|l| l.message.contains("truncated") || l.message.contains("dropped")),
        "the cut is visible: {:?}",
        a.logs.last()
    );
}

#[tokio::test]
async fn a_call_outside_the_allow_list_is_denied_and_never_sent() {
    for path in [
        "/contacts/abc",
        "/allowed/../secret",
        "/allowed/%2e%2e/secret",
        "//evil.example/x",
    ] {
        let (d, fake) =
            run_hostile("denied-path", "5s", "16MiB", &format!("path = \"{path}\"")).await;
        // The plugin returns `fail` unless the host answered `denied`; ok means denied.
        assert_eq!(d.state, DeliveryState::Succeeded, "{path}: {d:#?}");
        let leaked: Vec<_> = fake
            .requests()
            .into_iter()
            .filter(|r| !r.path.starts_with("/contacts/nmFm"))
            .collect();
        assert!(leaked.is_empty(), "{path} reached the fake: {leaked:#?}");
    }
}
