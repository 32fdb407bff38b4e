//! Alerts through the real binary: each incident is exactly one signed POST (its Standard
//! Webhooks signature verifies) and its end exactly one resolution; an API 5xx storm raises the
//! error-rate alert; a run of 401/403 answers raises the authentication-failure alert.

use std::time::Duration;

use http::Method;
use wasmhook_tests::{FakeApi, Reply, signing::HighLevelSigner};

use crate::{
    common::{CONTACT_ID, contact_create},
    monitoring_support::{
        alerts_of_kind, config, metric, start, summary, verified_alerts, wait_metrics,
    },
};

fn tags_path() -> String {
    format!("/contacts/{CONTACT_ID}/tags")
}

/// Three dead deliveries of one plugin are one incident: one alert; the plugin's next success
/// resolves it: one resolution. Nothing else is POSTed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_plugin_is_one_alert_and_its_recovery_one_resolution() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let receiver = FakeApi::start().await;
    fake.on(
        Method::POST,
        &tags_path(),
        Reply::Json(422, serde_json::json!({"message": "tag refused"})),
    );
    let (path, _dir) = config(&signer, &fake, &receiver, "", |b| b);
    let server = start(&path).await;
    for _ in 0..3 {
        let (_, body) = contact_create();
        let status = server
            .post(
                "highlevel",
                &body,
                &[("x-ghl-signature", signer.sign_ed25519(&body))],
            )
            .await
            .status();
        assert_eq!(status, 200);
    }
    wait_metrics(&server, "three dead deliveries", |m| {
        metric(
            m,
            "wasmhook_dead_letters_total",
            &[("plugin", "contact-tagger")],
        ) >= 3.0
    })
    .await;
    receiver
        .wait_until(Duration::from_secs(20), "the alert POST", |r| {
            !r.requests_to("/alerts").is_empty()
        })
        .await;

    fake.on(
        Method::POST,
        &tags_path(),
        Reply::Json(200, serde_json::json!({})),
    );
    let (_, body) = contact_create();
    server
        .post(
            "highlevel",
            &body,
            &[("x-ghl-signature", signer.sign_ed25519(&body))],
        )
        .await;
    receiver
        .wait_until(Duration::from_secs(20), "the resolution POST", |r| {
            r.requests_to("/alerts").len() >= 2
        })
        .await;
    // Give a stray duplicate time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts = verified_alerts(&receiver);
    assert_eq!(
        summary(&alerts),
        [
            (
                "alert.firing".into(),
                "delivery_dead".into(),
                "contact-tagger".into()
            ),
            (
                "alert.resolved".into(),
                "delivery_dead".into(),
                "contact-tagger".into()
            ),
        ],
        "{alerts:#?}"
    );
    let detail = alerts[0]["data"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("422") || detail.contains("tag refused"),
        "{detail}"
    );
    let metrics = server.admin().metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "wasmhook_alerts_total",
            &[("kind", "delivery_dead")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "wasmhook_alerts_resolved_total",
            &[("kind", "delivery_dead")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "wasmhook_alert_posts_total",
            &[("result", "sent")]
        ),
        2.0
    );
    let log = server.log_text();
    let error_lines = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("alert=\"delivery_dead\""))
        .count();
    assert_eq!(error_lines, 1, "one error line per incident:\n{log}");
    assert!(log.contains("alert resolved"), "{log}");
}

/// Upstream answering 503 to every call: the error-rate rule fires once for the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_5xx_storm_raises_the_error_rate_alert() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let receiver = FakeApi::start().await;
    fake.on(
        Method::POST,
        &tags_path(),
        Reply::Json(503, serde_json::json!({"message": "down"})),
    );
    let rules = "api_error_rate = 0.5\napi_error_min_requests = 3\napi_error_window = \"1m\"\n";
    let (path, _dir) = config(&signer, &fake, &receiver, rules, |b| b);
    let server = start(&path).await;
    for _ in 0..2 {
        let (_, body) = contact_create();
        server
            .post(
                "highlevel",
                &body,
                &[("x-ghl-signature", signer.sign_ed25519(&body))],
            )
            .await;
    }
    let storm = alerts_of_kind(&receiver, "api_error_rate", Duration::from_secs(30)).await;
    assert_eq!(storm.len(), 1, "one incident, one alert: {storm:#?}");
    assert_eq!(storm[0]["type"], "alert.firing");
    assert_eq!(storm[0]["data"]["subject"], "highlevel");
    let metrics = server.admin().metrics().await;
    assert!(
        metric(
            &metrics,
            "wasmhook_api_requests_total",
            &[("api", "highlevel"), ("status_class", "5xx")]
        ) >= 3.0,
        "{metrics}"
    );
}

/// 401 and 403 answers in a run: the auth-failure rule fires once for the API, and the tokens
/// never appear in what was POSTed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_401_and_403_raises_the_auth_failure_alert() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let receiver = FakeApi::start().await;
    let (path, _dir) = config(&signer, &fake, &receiver, "auth_failures = 3\n", |b| b);
    let server = start(&path).await;
    for status in [401, 403, 401] {
        fake.on(
            Method::POST,
            &tags_path(),
            Reply::Json(status, serde_json::json!({"message": "no"})),
        );
        let (id, body) = contact_create();
        server
            .post(
                "highlevel",
                &body,
                &[("x-ghl-signature", signer.sign_ed25519(&body))],
            )
            .await;
        server
            .admin()
            .wait_final(&id, "contact-tagger", Duration::from_secs(30))
            .await;
    }
    let auth = alerts_of_kind(&receiver, "auth_failure", Duration::from_secs(20)).await;
    assert_eq!(auth.len(), 1, "{auth:#?}");
    assert_eq!(auth[0]["data"]["subject"], "highlevel");
    assert!(
        auth[0]["data"]["detail"]
            .as_str()
            .unwrap()
            .contains("3 requests"),
        "{auth:#?}"
    );
    let posted = receiver
        .requests_to("/alerts")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect::<String>();
    assert!(!posted.contains(wasmhook_tests::API_TOKEN), "{posted}");
}
