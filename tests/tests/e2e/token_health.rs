//! Token health through the real binary (metrics and alerts are process-wide): a token whose
//! refresh keeps failing raises one signed `token_expiry` alert before it expires and shows on
//! `/metrics` and in `wasmhook status`; a successful refresh resolves it; a refusal counts as
//! needing re-authorisation; a static token's age is a gauge. No gauge carries a tenant.

use std::time::{Duration, Instant};

use wasmhook_tests::{
    ADMIN_TOKEN, ChildServer, FakeApi, FakeOAuth, Installee, child::wasmhook_binary,
    signing::HighLevelSigner,
};

use crate::{
    monitoring_support::{alert_secret, metric, start, summary, verified_alerts, wait_metrics},
    tokens_support::builder,
};

/// The access tokens' lifetime at the fake: refreshed once half of it is left.
const LIFETIME: Duration = Duration::from_secs(12);

/// `wasmhook status` of `server`, as text.
fn status_text(config: &std::path::Path, server: &ChildServer) -> String {
    let out = std::process::Command::new(wasmhook_binary())
        .arg("status")
        .arg("--config")
        .arg(config)
        .arg("--admin-url")
        .arg(format!("http://{}", server.admin))
        .env_remove("WASMHOOK_ADMIN_TOKEN")
        .current_dir(config.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `name{api="fake"}`, if `/metrics` has that line (NaN is a value).
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{api=\"fake\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn token_expiry_alerts(receiver: &FakeApi) -> Vec<(String, String, String)> {
    summary(&verified_alerts(receiver))
        .into_iter()
        .filter(|(_, kind, _)| kind == "token_expiry")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_refresh_keeps_failing_raises_the_token_health_alert_before_it_expires() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(LIFETIME).await;
    let receiver = FakeApi::start().await;
    fake.code(
        "code-a",
        Installee {
            user_type: "Location".into(),
            location: Some("loc-a".into()),
            company: Some("co-1".into()),
        },
    );
    let builder = builder(
        &signer,
        &fake,
        "refresh_when_left = 0.5\ncheck_interval = \"200ms\"\n",
    )
    .toml(&format!(
        "[alerts]\nurl = \"{}/alerts\"\nsecret = {{ file = \"alert.secret\" }}\n\
         check_interval = \"200ms\"\n\n[alerts.token_expiry]\nhorizon = \"1h\"\n",
        receiver.url()
    ));
    std::fs::write(builder.dir().join("alert.secret"), alert_secret()).unwrap();
    let (config, _dir) = builder.write();
    let server = start(&config).await;

    // A static token: its age is a gauge from the start.
    let response = reqwest::Client::new()
        .put(server.admin().url("/admin/tokens/fake"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "tenant": "loc-s", "token": "pit-health-test-token" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let metrics = wait_metrics(&server, "the static token's age", |m| {
        gauge(m, "wasmhook_static_token_oldest_age_seconds").is_some_and(f64::is_finite)
    })
    .await;
    let age = gauge(&metrics, "wasmhook_static_token_oldest_age_seconds").unwrap();
    assert!((0.0..60.0).contains(&age), "{metrics}");

    // Every refresh fails (500) from the start; the install itself works.
    fake.fail_refreshes(Some((500, "server_error")));
    let installed = Instant::now();
    let response = reqwest::get(server.url("/oauth/callback/fake?code=code-a"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let access = fake.issued()[0].clone();

    receiver
        .wait_until(LIFETIME, "the token_expiry alert", |r| {
            !token_expiry_alerts(r).is_empty()
        })
        .await;
    assert!(
        installed.elapsed() < LIFETIME && fake.is_live(&access),
        "the alert came after the token expired"
    );
    let subject = "api fake tenant loc-a".to_string();
    assert_eq!(
        token_expiry_alerts(&receiver),
        [(
            "alert.firing".into(),
            "token_expiry".into(),
            subject.clone()
        )]
    );
    let alert = verified_alerts(&receiver)
        .into_iter()
        .find(|a| a["data"]["kind"] == "token_expiry")
        .unwrap();
    let detail = alert["data"]["detail"].as_str().unwrap();
    assert!(detail.contains("last refresh failed"), "{detail}");
    assert!(!detail.contains(&access), "{detail}");

    let metrics = wait_metrics(&server, "the failing refresh in the gauges", |m| {
        metric(
            m,
            "wasmhook_installations_refresh_failing",
            &[("api", "fake")],
        ) == 1.0
    })
    .await;
    let left = metric(
        &metrics,
        "wasmhook_token_expiry_soonest_seconds",
        &[("api", "fake")],
    );
    assert!(left > 0.0 && left <= LIFETIME.as_secs_f64(), "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "wasmhook_installations_needs_reauth",
            &[("api", "fake")]
        ),
        0.0
    );
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("wasmhook_token_") || l.starts_with("wasmhook_installations_"))
    {
        assert!(!line.contains("loc-"), "a tenant in a label: {line}");
    }
    let text = status_text(&config, &server);
    assert!(text.contains("installations needing action: 1"), "{text}");
    assert!(text.contains("fake loc-a refresh-failing"), "{text}");
    assert!(text.contains("tokens: soonest expiry in"), "{text}");
    assert!(
        text.contains("token_expiry api fake tenant loc-a"),
        "{text}"
    );

    // The token endpoint recovers: the next retry refreshes, and that resolves the incident.
    fake.fail_refreshes(None);
    receiver
        .wait_until(
            Duration::from_secs(20),
            "the token_expiry resolution",
            |r| token_expiry_alerts(r).len() >= 2,
        )
        .await;
    assert_eq!(
        token_expiry_alerts(&receiver),
        [
            (
                "alert.firing".into(),
                "token_expiry".into(),
                subject.clone()
            ),
            ("alert.resolved".into(), "token_expiry".into(), subject),
        ],
        "one incident, one alert, one resolution"
    );
    let metrics = wait_metrics(&server, "the refresh in the gauges", |m| {
        metric(
            m,
            "wasmhook_installations_refresh_failing",
            &[("api", "fake")],
        ) == 0.0
    })
    .await;
    let left = metric(
        &metrics,
        "wasmhook_token_expiry_soonest_seconds",
        &[("api", "fake")],
    );
    assert!(
        left > LIFETIME.as_secs_f64() / 2.0,
        "a new token: {metrics}"
    );

    // A refusal for good: the installation needs re-authorisation, and its token is gone.
    fake.fail_refreshes(Some((400, "invalid_grant")));
    wait_metrics(&server, "the refusal in the gauges", |m| {
        metric(m, "wasmhook_installations_needs_reauth", &[("api", "fake")]) == 1.0
    })
    .await;
    let metrics = wait_metrics(&server, "no refreshable token", |m| {
        gauge(m, "wasmhook_token_expiry_soonest_seconds").is_some_and(f64::is_nan)
    })
    .await;
    assert_eq!(
        gauge(&metrics, "wasmhook_installations_refresh_failing"),
        Some(0.0)
    );
    let text = status_text(&config, &server);
    assert!(text.contains("fake loc-a needs-reauth"), "{text}");
    assert!(!text.contains("refresh-failing"), "{text}");
    assert_eq!(token_expiry_alerts(&receiver).len(), 2, "nothing more");
}
