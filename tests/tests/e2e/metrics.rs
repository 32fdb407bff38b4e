//! `/metrics` after scripted traffic through the real binary: every family moves by exactly
//! what was sent, with bounded labels (no tenant anywhere); `/metrics`, `/readyz` and `/admin`
//! are not served on the public listener.

use http::Method;
use wasmhook_tests::{FakeApi, Reply, signing::HighLevelSigner};

use crate::{
    common::{CONTACT_ID, contact_create, hostile_manifest, hostile_wasm},
    monitoring_support::{config, metric, start, wait_metrics},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_family_moves_by_the_traffic_sent() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let receiver = FakeApi::start().await;
    fake.on(
        Method::POST,
        &format!("/contacts/{CONTACT_ID}/tags"),
        Reply::Full(
            200,
            vec![
                ("content-type".into(), "application/json".into()),
                ("x-ratelimit-remaining".into(), "87".into()),
                ("x-ratelimit-daily-remaining".into(), "199000".into()),
            ],
            "{}".into(),
        ),
    );
    let spinner = hostile_manifest("spinner", "loop", "1s", "16MiB", "")
        .replace("max_attempts = 1", "max_attempts = 1\nconcurrency = 1");
    let (path, _dir) = config(&signer, &fake, &receiver, "", |b| {
        b.api("fake", &fake)
            .plugin("spinner", &hostile_wasm(), &spinner)
            .plugin(
                "hog",
                &hostile_wasm(),
                &hostile_manifest("hog", "alloc", "10s", "16MiB", ""),
            )
    });
    let server = start(&path).await;
    let client = reqwest::Client::new();

    // Public listener: webhooks and /healthz only.
    for path in ["/metrics", "/readyz", "/admin/deliveries"] {
        let status = client.get(server.url(path)).send().await.unwrap().status();
        assert_eq!(status, 404, "{path} must not be served publicly");
    }
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = client
        .get(server.admin().url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("3 plugin(s) loaded"));

    // Traffic: three new events (one sent twice), one bad signature, one unknown source.
    let sign = |body: &[u8]| [("x-ghl-signature", signer.sign_ed25519(body))];
    let (_, first) = contact_create();
    assert_eq!(
        server
            .post("highlevel", &first, &sign(&first))
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .post("highlevel", &first, &sign(&first))
            .await
            .status(),
        200
    );
    for _ in 0..2 {
        let (_, body) = contact_create();
        assert_eq!(
            server.post("highlevel", &body, &sign(&body)).await.status(),
            200
        );
    }
    let (_, body) = contact_create();
    let forged = [("x-ghl-signature", signer.sign_ed25519(b"something else"))];
    assert_eq!(server.post("highlevel", &body, &forged).await.status(), 401);
    assert_eq!(server.post("nope", &body, &sign(&body)).await.status(), 404);

    // The spinner runs one delivery at a time for 1 s each: the others wait in the queue.
    wait_metrics(&server, "a queue of waiting deliveries", |m| {
        metric(m, "wasmhook_queue_pending", &[]) >= 1.0
    })
    .await;
    let m = wait_metrics(&server, "every delivery to finish", |m| {
        metric(m, "wasmhook_deliveries_total", &[]) >= 9.0
            && metric(m, "wasmhook_queue_pending", &[]) == 0.0
            && metric(m, "wasmhook_queue_running", &[]) == 0.0
    })
    .await;

    let webhooks = |outcome| metric(&m, "wasmhook_webhooks_total", &[("outcome", outcome)]);
    assert_eq!(webhooks("accepted"), 3.0, "{m}");
    assert_eq!(webhooks("duplicate"), 1.0, "{m}");
    assert_eq!(webhooks("bad_signature"), 1.0, "{m}");
    assert_eq!(webhooks("unknown_source"), 1.0, "{m}");
    assert!(
        metric(
            &m,
            "wasmhook_verify_seconds_count",
            &[("source", "highlevel")]
        ) >= 4.0
    );

    let deliveries = |plugin, outcome| {
        metric(
            &m,
            "wasmhook_deliveries_total",
            &[("plugin", plugin), ("outcome", outcome)],
        )
    };
    assert_eq!(deliveries("contact-tagger", "succeeded"), 3.0, "{m}");
    assert_eq!(deliveries("spinner", "timeout"), 3.0, "{m}");
    assert_eq!(deliveries("hog", "memory"), 3.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "wasmhook_plugin_duration_seconds_count",
            &[("plugin", "contact-tagger")]
        ),
        3.0
    );
    let kills = |plugin, reason| {
        metric(
            &m,
            "wasmhook_plugin_kills_total",
            &[("plugin", plugin), ("reason", reason)],
        )
    };
    assert_eq!(kills("spinner", "deadline"), 3.0, "{m}");
    assert_eq!(kills("hog", "memory"), 3.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "wasmhook_plugin_kills_total",
            &[("plugin", "contact-tagger")]
        ),
        0.0
    );
    assert_eq!(
        metric(&m, "wasmhook_dead_letters_total", &[("plugin", "spinner")]),
        3.0
    );
    assert_eq!(
        metric(&m, "wasmhook_dead_letters_total", &[("plugin", "hog")]),
        3.0
    );
    // One incident per plugin, however many of its deliveries died.
    assert_eq!(
        metric(&m, "wasmhook_alerts_total", &[("kind", "delivery_dead")]),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "wasmhook_alerts_open", &[("kind", "delivery_dead")]),
        2.0,
        "{m}"
    );

    let api = [("api", "highlevel")];
    let requests = [
        ("api", "highlevel"),
        ("status_class", "2xx"),
        ("attempt", "1"),
    ];
    assert_eq!(
        metric(&m, "wasmhook_api_requests_total", &requests),
        3.0,
        "{m}"
    );
    assert_eq!(metric(&m, "wasmhook_api_request_seconds_count", &api), 3.0);
    assert_eq!(
        metric(&m, "wasmhook_api_ratelimit_remaining", &api),
        87.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "wasmhook_api_ratelimit_daily_remaining", &api),
        199_000.0
    );
    assert!(
        m.contains("wasmhook_api_breaker_open{api=\"highlevel\"} 0"),
        "{m}"
    );
    assert_eq!(metric(&m, "wasmhook_queue_oldest_due_seconds", &[]), 0.0);

    // A SIGHUP reload is counted.
    // SAFETY: kill(2) with our own child's pid and a valid signal number.
    unsafe {
        libc::kill(server.pid().unwrap() as i32, libc::SIGHUP);
    }
    wait_metrics(&server, "the reload count", |m| {
        metric(m, "wasmhook_reloads_total", &[("result", "ok")]) == 1.0
    })
    .await;

    // Bounded labels: no tenant, event or delivery id in any sample.
    assert!(!m.contains("tenant="), "{m}");
}
