//! The delivery engine through the real server: per-plugin concurrency, ordering (across a
//! restart and while a delivery waits for its retry), the operators' CLI (backoff schedule,
//! dead state, replay, purge, erase), and retention with dedup inside the window.

use std::time::Duration;

use wasmhook::store::{DeliveryRecord, DeliveryState, Removed, Store, sqlite::SqliteStore};
use wasmhook_tests::{FakeApi, TestServer, signing::HighLevelSigner};

use crate::{
    common::{contact_create, hostile_wasm, tagger_manifest, tagger_wasm},
    engine_support::*,
};

/// With two workers, a plugin that sleeps holds at most its own one slot: the other plugin's
/// deliveries all finish while the sleeper is still working through its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_plugin_does_not_delay_another_plugins_deliveries() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let (config, _dir) = TestServer::builder()
        .api("highlevel", &fake)
        .api("fake", &fake)
        .highlevel(&signer)
        .toml("[plugins]\nworkers = 2\npoll_interval = \"50ms\"\n")
        .plugin(
            "sleeper",
            &hostile_wasm(),
            &manifest(
                "sleeper",
                "slow",
                "concurrency = 1\ntimeout = \"10s\"",
                "ms = \"2000\"",
            ),
        )
        .plugin("contact-tagger", &tagger_wasm(), &tagger_manifest())
        .write();
    let server = InProcess::start(&config).await;
    let client = reqwest::Client::new();
    for _ in 0..6 {
        let (_, body) = contact_create();
        assert_eq!(
            post(&client, server.public, &signer, &body).await.unwrap(),
            200
        );
    }
    let list = wait_deliveries(
        server.admin,
        Duration::from_secs(20),
        "every tagger delivery",
        |l| {
            l.iter()
                .filter(|d| d.plugin.as_str() == "contact-tagger")
                .all(|d| d.state == DeliveryState::Succeeded)
        },
    )
    .await;
    let sleeper_done = list
        .iter()
        .filter(|d| d.plugin.as_str() == "sleeper" && d.state == DeliveryState::Succeeded)
        .count();
    assert!(
        sleeper_done <= 2,
        "the tagger finished while the sleeper was still at {sleeper_done}/6: {list:#?}"
    );
    let running = list
        .iter()
        .filter(|d| d.plugin.as_str() == "sleeper" && d.state == DeliveryState::Running)
        .count();
    assert!(running <= 1, "concurrency = 1 holds: {running} running");
    server.stop().await;
}

/// Same-key deliveries run one at a time in arrival order; the first waits for a retry while
/// the server restarts, and the later ones still wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_deliveries_run_in_order_across_a_restart_and_a_retry() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let (config, _dir) = TestServer::builder()
        .api("fake", &fake)
        .highlevel(&signer)
        .toml("[plugins]\nworkers = 8\npoll_interval = \"50ms\"\n")
        .plugin(
            "recorder",
            &hostile_wasm(),
            &manifest(
                "recorder",
                "record",
                "ordering_key = \"/id\"\nconcurrency = 4",
                "",
            ),
        )
        .write();
    let server = InProcess::start(&config).await;
    let client = reqwest::Client::new();
    // The first one's first attempt asks to retry after 300 ms.
    let ids = ["o-1-retry", "o-2", "o-3"];
    for id in ids {
        let body = contact_body(id, "same-contact");
        assert_eq!(
            post(&client, server.public, &signer, &body).await.unwrap(),
            200
        );
    }
    let other = contact_body("o-other", "another-contact");
    assert_eq!(
        post(&client, server.public, &signer, &other).await.unwrap(),
        200
    );
    fake.wait_until(Duration::from_secs(20), "the first attempt", |f| {
        !f.requests_to("/record").is_empty()
    })
    .await;
    // Restart at once, while o-1 waits for its retry and o-2, o-3 wait behind it.
    server.stop().await;
    let server = InProcess::start(&config).await;
    wait_deliveries(
        server.admin,
        Duration::from_secs(30),
        "all four done",
        |l| l.len() == 4 && l.iter().all(|d| d.state == DeliveryState::Succeeded),
    )
    .await;
    let runs: Vec<(String, u64)> = fake
        .requests_to("/record")
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["event"].as_str().unwrap().to_owned(),
                v["attempt"].as_u64().unwrap(),
            )
        })
        .filter(|(event, _)| event != "o-other")
        .collect();
    assert_eq!(
        runs,
        vec![
            ("o-1-retry".to_owned(), 1),
            ("o-1-retry".to_owned(), 2),
            ("o-2".to_owned(), 1),
            ("o-3".to_owned(), 1)
        ],
        "same-key deliveries in arrival order, the retry first"
    );
    server.stop().await;
}

/// A plugin that always times out: its attempts follow the backoff schedule and it ends dead;
/// the CLI shows it, replays it (one and all), purges the dead, and erases the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_backoff_and_dead_then_replays_purges_and_erases() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let (config, _dir) = TestServer::builder()
        .api("fake", &fake)
        .highlevel(&signer)
        .toml(
            "[plugins]\nworkers = 4\npoll_interval = \"20ms\"\nretry_base = \"200ms\"\nretry_max = \"5s\"\n",
        )
        .plugin(
            "spinner",
            &hostile_wasm(),
            &manifest("spinner", "loop", "timeout = \"100ms\"\nmax_attempts = 4", ""),
        )
        .write();
    let server = InProcess::start(&config).await;
    let client = reqwest::Client::new();
    let (webhook_id, body) = contact_create();
    assert_eq!(
        post(&client, server.public, &signer, &body).await.unwrap(),
        200
    );
    wait_deliveries(
        server.admin,
        Duration::from_secs(30),
        "a dead delivery",
        |l| l.len() == 1 && l[0].state == DeliveryState::Dead,
    )
    .await;

    let list: Vec<DeliveryRecord> = cli_json(
        server.admin,
        &[
            "deliveries",
            "list",
            "--state",
            "dead",
            "--plugin",
            "spinner",
        ],
    )
    .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].event_id.as_str(), webhook_id);
    let id = list[0].id.to_string();
    let shown: DeliveryRecord = cli_json(server.admin, &["deliveries", "show", &id]).await;
    assert_eq!(shown.attempts.len(), 4, "{shown:#?}");
    assert!(shown.attempts.iter().all(|a| a.outcome == "timeout"));
    // The wait before attempt n+1 is 200 ms * 2^(n-1) within ±10% jitter (plus polling).
    for (n, pair) in shown.attempts.windows(2).enumerate() {
        let wait = pair[1].started_at_ms - pair[0].finished_at_ms;
        let nominal = 200 * (1 << n);
        assert!(
            wait >= nominal * 9 / 10 - 5 && wait <= nominal * 11 / 10 + 500,
            "wait before attempt {}: {wait} ms, nominal {nominal} ms",
            n + 2
        );
    }
    let (code, text, _) = cli(server.admin, &["deliveries", "show", &id]).await;
    assert_eq!(code, 0);
    assert!(text.contains("attempt 4 timeout"), "{text}");

    // Replay one: four more attempts, history kept.
    let (code, _, err) = cli(server.admin, &["deliveries", "replay", &id]).await;
    assert_eq!(code, 0, "{err}");
    let record: DeliveryRecord = cli_json(server.admin, &["deliveries", "show", &id]).await;
    assert_eq!(record.max_attempts, 8);
    wait_deliveries(server.admin, Duration::from_secs(30), "dead again", |l| {
        l[0].state == DeliveryState::Dead && l[0].attempts_made == 8
    })
    .await;
    // Replaying a missing delivery is a clear 404.
    let (code, _, err) = cli(server.admin, &["deliveries", "replay", "no-such-id"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not_found"), "{err}");

    // Replay every dead one of the plugin, paced.
    let answer: serde_json::Value = cli_json(
        server.admin,
        &["replay", "--dead", "--plugin", "spinner", "--rate", "100/s"],
    )
    .await;
    assert_eq!(answer["replayed"], 1);
    wait_deliveries(
        server.admin,
        Duration::from_secs(30),
        "dead once more",
        |l| l[0].state == DeliveryState::Dead && l[0].attempts_made == 12,
    )
    .await;

    let removed: Removed = cli_json(server.admin, &["purge", "--plugin", "spinner"]).await;
    assert_eq!((removed.deliveries, removed.attempts), (1, 12));
    assert!(all_deliveries(server.admin).await.is_empty());

    let tenant = shown.tenant.to_string();
    let removed: Removed = cli_json(server.admin, &["erase", "--tenant", &tenant]).await;
    assert_eq!(removed.events, 1, "the event that stayed after the purge");
    let (code, text, _) = cli(server.admin, &["erase", "--tenant", &tenant]).await;
    assert_eq!(code, 0);
    assert!(text.contains("0 events"), "{text}");
    server.stop().await;
}

/// `wasmhook deliveries cancel` deletes a pending delivery (one waiting an hour for its retry)
/// so it never runs again, refuses a succeeded one with the reason, and says when there is no
/// such delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_cancels_a_pending_delivery_and_refuses_others_with_the_reason() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let (config, _dir) = TestServer::builder()
        .api("highlevel", &fake)
        .api("fake", &fake)
        .highlevel(&signer)
        .toml(
            "[plugins]\nworkers = 4\npoll_interval = \"20ms\"\nretry_base = \"1h\"\nretry_max = \"1h\"\n",
        )
        .plugin(
            "spinner",
            &hostile_wasm(),
            &manifest("spinner", "loop", "timeout = \"100ms\"\nmax_attempts = 3", ""),
        )
        .plugin("contact-tagger", &tagger_wasm(), &tagger_manifest())
        .write();
    let server = InProcess::start(&config).await;
    let (webhook_id, body) = contact_create();
    let status = post(&reqwest::Client::new(), server.public, &signer, &body).await;
    assert_eq!(status.unwrap(), 200);
    // The spinner timed out once and waits an hour for its retry; the tagger succeeded.
    let list = wait_deliveries(
        server.admin,
        Duration::from_secs(30),
        "a pending retry and a success",
        |l| {
            l.iter().any(|d| {
                d.plugin.as_str() == "spinner"
                    && d.state == DeliveryState::Pending
                    && d.attempts_made == 1
            }) && l.iter().any(|d| d.state == DeliveryState::Succeeded)
        },
    )
    .await;
    let id_of = |plugin: &str| {
        list.iter()
            .find(|d| d.plugin.as_str() == plugin)
            .map(|d| d.id.to_string())
            .unwrap()
    };
    let (pending, succeeded) = (id_of("spinner"), id_of("contact-tagger"));

    let (code, out, err) = cli(server.admin, &["deliveries", "cancel", &pending]).await;
    assert_eq!(
        (code, out.trim()),
        (0, format!("cancelled {pending}").as_str()),
        "{err}"
    );
    let (code, _, err) = cli(server.admin, &["deliveries", "show", &pending]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not_found"), "{err}");
    let left = all_deliveries(server.admin).await;
    assert_eq!(
        left.len(),
        1,
        "only the tagger's delivery is left: {left:#?}"
    );
    assert_eq!(left[0].event_id.as_str(), webhook_id);

    let (code, _, err) = cli(server.admin, &["deliveries", "cancel", &succeeded]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("wrong_state") && err.contains("only pending deliveries can be cancelled"),
        "{err}"
    );
    let record: DeliveryRecord = cli_json(server.admin, &["deliveries", "show", &succeeded]).await;
    assert_eq!(
        record.state,
        DeliveryState::Succeeded,
        "refused means untouched"
    );
    let (code, _, err) = cli(server.admin, &["deliveries", "cancel", &pending]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not_found"), "{err}");
    server.stop().await;
}

/// A CLI without a token says how to give it one.
#[tokio::test]
async fn the_cli_without_a_token_says_how_to_set_one() {
    let output = tokio::process::Command::new(wasmhook_tests::child::wasmhook_binary())
        .args(["deliveries", "list", "--admin-url", "http://127.0.0.1:9"])
        .arg("--config")
        .arg("no-such-wasmhook.toml")
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("admin token missing: set WASMHOOK_ADMIN_TOKEN"),
        "{err}"
    );
}

/// Events whose deliveries succeeded are deleted after the retention window by the background
/// collector; inside the window a redelivery is still a duplicate, and after it the replay
/// window (shorter than the retention) refuses the old body.
///
/// Nothing here races the collector: the duplicate is sent right after the first answer (the
/// replay window is 2 s, the retention 3 s), success is read from the fake (the collector deletes only events whose
/// deliveries succeeded, so the empty list proves both), and deletion is awaited with a
/// deadline, then confirmed in the store and the collector's metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_rows_and_dedups_inside_the_window() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let (config, dir) = TestServer::builder()
        .api("highlevel", &fake)
        .highlevel_source("highlevel", &signer, "max_age = \"2s\"\n")
        .toml("[storage]\nretention = \"3s\"\ngc_interval = \"200ms\"\n")
        .plugin("contact-tagger", &tagger_wasm(), &tagger_manifest())
        .write();
    let server = InProcess::start(&config).await;
    let client = reqwest::Client::new();
    let (_, body) = contact_create();
    let send = || async {
        let answer = client
            .post(format!("http://{}/webhooks/highlevel", server.public))
            .header("x-ghl-signature", signer.sign_ed25519(&body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json::<serde_json::Value>().await.unwrap())
    };
    let (status, first) = send().await;
    assert_eq!(
        (status, &first["duplicate"]),
        (200, &false.into()),
        "{first}"
    );
    let (status, again) = send().await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &true.into()),
        "inside the window: {again}"
    );

    fake.wait_until(Duration::from_secs(20), "the tag call", |f| {
        f.side_effects() == 1
    })
    .await;
    wait_deliveries(
        server.admin,
        Duration::from_secs(30),
        "retention to delete the succeeded delivery",
        |l| l.is_empty(),
    )
    .await;
    let (status, late) = send().await;
    assert_eq!(
        status, 403,
        "past the window the replay check refuses it: {late}"
    );
    let metrics = wasmhook_tests::Admin::new(server.admin).metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wasmhook_retention_deleted_total")
                && l.contains("events")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    server.stop().await;
    let store = SqliteStore::open(&dir.path().join("data/wasmhook.db"))
        .await
        .unwrap();
    assert_eq!(
        store.event_count().await.unwrap(),
        0,
        "the event row is gone too"
    );
    assert_eq!(fake.side_effects(), 1, "the duplicate ran nothing");
}
