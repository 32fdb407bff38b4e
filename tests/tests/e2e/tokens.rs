//! Installations' OAuth credentials through the real server and a strict fake OAuth server:
//! both install orders, refresh single flight under load and on 401, refresh failures,
//! `needs-reauth`, and location tokens minted from a company token.

use std::time::Duration;

use serde_json::json;
use wasmhook::{
    api::TokenSource,
    ids::{ApiName, TenantId},
    installations::InstallationState,
    store::{DeliveryState, Store, sqlite::SqliteStore},
};
use wasmhook_tests::{FakeOAuth, Installee, signing::HighLevelSigner};

use crate::tokens_support::{
    alerts, builder, callback, contact, lifecycle, succeeded, waiting, write_secrets,
};

fn location(id: &str) -> Installee {
    Installee {
        user_type: "Location".into(),
        location: Some(id.into()),
        company: Some("co-1".into()),
    }
}

/// The bearer tokens of the `/record` calls the fake received.
fn record_bearers(fake: &FakeOAuth) -> Vec<String> {
    fake.api_calls()
        .into_iter()
        .filter(|s| s.path == "/record")
        .filter_map(|s| s.bearer)
        .collect()
}

#[tokio::test]
async fn both_install_orders_end_active_and_waiting_deliveries_then_carry_the_new_token() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code("code-a", location("loc-a"));
    fake.code("code-b", location("loc-b"));
    let mut server = builder(&signer, &fake, "").spawn().await;

    // INSTALL first: the installation is pending and a delivery waits, spending no attempt.
    assert_eq!(
        lifecycle(&server, &signer, "install-location", "loc-a").await,
        200
    );
    let held = contact(&server, &signer, "loc-a").await;
    let record = waiting(&server, &held, "OAuth not completed").await;
    assert_eq!(record.state, DeliveryState::Pending, "{record:#?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let record = server.delivery(record.id.as_str()).await;
    assert_eq!(
        record.attempts_made, 0,
        "waiting spends no attempt: {record:#?}"
    );
    assert!(fake.api_calls().is_empty(), "no call without a token");

    let (status, answer) = callback(&server, "code-a").await;
    assert_eq!(
        (status, answer["tenant"].as_str()),
        (200, Some("loc-a")),
        "{answer}"
    );
    let done = succeeded(&server, &held).await;
    assert_eq!(done.attempts.len(), 1, "{done:#?}");

    // Callback first, INSTALL after: still one active installation.
    let (status, _) = callback(&server, "code-b").await;
    assert_eq!(status, 200);
    assert_eq!(
        lifecycle(&server, &signer, "install-location", "loc-b").await,
        200
    );
    let id = contact(&server, &signer, "loc-b").await;
    succeeded(&server, &id).await;

    // Each call carried the access token issued for its tenant's code.
    let bearers = record_bearers(&fake);
    assert_eq!(bearers.len(), 2, "{bearers:?}");
    let issued = fake.issued();
    assert!(
        bearers
            .iter()
            .all(|b| issued.contains(b) && fake.is_live(b))
    );
    assert_ne!(bearers[0], bearers[1]);
    let exchange = &fake.grants("authorization_code")[0];
    assert_eq!(
        exchange.form["redirect_uri"],
        "https://hooks.test/oauth/callback/fake"
    );

    // A refused code is a clear 400, and names no code or token.
    let (status, answer) = callback(&server, "code-never-issued").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("code_refused"))
    );

    server.stop().await.unwrap();
    let store = SqliteStore::open(&server.db_path()).await.unwrap();
    for tenant in ["loc-a", "loc-b"] {
        let installation = store
            .installation(&ApiName::new("fake"), &TenantId::new(tenant))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(installation.state, InstallationState::Active, "{tenant}");
    }
}

/// The installed token lives 2 s and 100 deliveries call the API as it expires: one refresh
/// request in all. The token the refresh brings lives an hour, so however long a loaded
/// machine takes over the burst, it crosses exactly one expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_across_a_2s_expiry_cause_exactly_one_refresh() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(2)).await;
    fake.code("code-a", location("loc-a"));
    // No background refresh: the calls themselves find the token expiring.
    let server = builder(&signer, &fake, "check_interval = \"1h\"")
        .spawn()
        .await;
    assert_eq!(callback(&server, "code-a").await.0, 200);
    fake.set_lifetime(Duration::from_secs(3600));
    let first = fake.issued()[0].clone();
    tokio::time::sleep(Duration::from_millis(1700)).await;

    let ids: Vec<String> = post_at_once(&server, &signer, 100).await;
    for id in &ids {
        let done = succeeded(&server, id).await;
        assert_eq!(done.attempts.len(), 1, "{done:#?}");
    }
    let refreshes = fake.grants("refresh_token");
    assert_eq!(refreshes.len(), 1, "exactly one refresh: {refreshes:#?}");
    let issued = fake.issued();
    assert_eq!(issued.len(), 4, "the installed pair and the refreshed one");
    let second = issued[2].clone();
    assert!(fake.is_live(&second));

    // Each event reached the API with the first token while it lived, or with the second; a
    // call that left with the first just as it expired was refused and replayed once with the
    // second, without another refresh.
    let mut per_event: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for call in fake.api_calls().into_iter().filter(|s| s.path == "/record") {
        let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        per_event
            .entry(body["event"].as_str().unwrap().to_string())
            .or_default()
            .push(call.bearer.unwrap_or_default());
    }
    assert_eq!(per_event.len(), 100, "one event each");
    for (event, bearers) in &per_event {
        let ok = *bearers == [first.clone()]
            || *bearers == [second.clone()]
            || *bearers == [first.clone(), second.clone()];
        assert!(ok, "event {event} called with {bearers:?}");
    }
    assert!(
        per_event.values().any(|b| b.contains(&second)),
        "the burst crossed the expiry"
    );
}

/// Posts `n` ContactCreate events for `loc-a` at once; returns their ids.
async fn post_at_once(
    server: &wasmhook_tests::TestServer,
    signer: &HighLevelSigner,
    n: usize,
) -> Vec<String> {
    let mut set = tokio::task::JoinSet::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let (id, body) = crate::tokens_support::body("contact-create", "loc-a", json!({}));
        ids.push(id);
        let (client, public) = (server.client.clone(), server.public);
        let signature = signer.sign_ed25519(&body);
        set.spawn(async move {
            let headers = [("x-ghl-signature", signature)];
            wasmhook_tests::post_webhook(&client, public, "highlevel", &body, &headers)
                .await
                .status()
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    ids
}

#[tokio::test]
async fn two_refreshes_racing_in_one_process_send_one_request() {
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code("code-a", location("loc-a"));
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path(), crate::tokens_support::MASTER_KEY);
    let text = format!(
        "[apis.fake]\nbase_url = \"{}\"\n{}\n[credentials]\nmaster_key = {{ file = \"master.key\" }}\n",
        fake.url(),
        fake.oauth_toml("fake", "2s")
    );
    let path = dir.path().join("wasmhook.toml");
    std::fs::write(&path, text).unwrap();
    let config = wasmhook::config::Config::load(&path).unwrap();
    let store = wasmhook::store::AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("s.db")).await.unwrap(),
    );
    let tokens = wasmhook::auth::tokens(&config.credentials, &config.apis, store)
        .await
        .unwrap();
    let api = ApiName::new("fake");
    let tenant = wasmhook::auth::install::complete(&tokens, &api, "code-a")
        .await
        .unwrap();
    let first = tokens.token(&api, &tenant).await.unwrap().unwrap();

    // Both saw `first` refused (a 401) at the same time.
    let (a, b) = tokio::join!(
        tokens.refresh(&api, &tenant, &first),
        tokens.refresh(&api, &tenant, &first)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both get the one new token");
    assert_ne!(a, first);
    assert_eq!(fake.grants("refresh_token").len(), 1);
    assert!(fake.is_live(a.expose()));
}

#[tokio::test]
async fn a_401_refreshes_once_and_replays_once() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code("code-a", location("loc-a"));
    let server = builder(&signer, &fake, "check_interval = \"1h\"")
        .spawn()
        .await;
    assert_eq!(callback(&server, "code-a").await.0, 200);
    let first = contact(&server, &signer, "loc-a").await;
    succeeded(&server, &first).await;
    let old = record_bearers(&fake)[0].clone();

    fake.revoke(&old);
    let second = contact(&server, &signer, "loc-a").await;
    let done = succeeded(&server, &second).await;
    assert_eq!(
        done.attempts.len(),
        1,
        "the replay happened inside the call: {done:#?}"
    );
    let bearers = record_bearers(&fake);
    assert_eq!(
        bearers.len(),
        3,
        "first call, the refused one, the replay: {bearers:?}"
    );
    assert_eq!(bearers[1], old);
    assert_ne!(bearers[2], old);
    assert!(fake.is_live(&bearers[2]));
    let refreshes = fake.grants("refresh_token");
    assert_eq!(refreshes.len(), 1, "one refresh");
}

#[tokio::test]
async fn refresh_failures_alert_and_invalid_grant_makes_later_deliveries_wait_visibly() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_millis(1500)).await;
    fake.code("code-a", location("loc-a"));
    let mut server = builder(&signer, &fake, "check_interval = \"200ms\"")
        .spawn()
        .await;
    assert_eq!(callback(&server, "code-a").await.0, 200);

    // A transient failure: alerted, retried in the background, nothing else changes.
    fake.fail_refreshes(Some((503, "temporarily_unavailable")));
    fake.wait_until(Duration::from_secs(10), "a failed refresh", |f| {
        !f.grants("refresh_token").is_empty()
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alerts(&server, "token_refresh").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no token_refresh alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A definitive refusal: the installation needs re-authorisation.
    fake.fail_refreshes(Some((400, "invalid_grant")));
    let store_path = server.db_path();
    // Seen in the installation's state (not in the alert counter: metrics are shared by every
    // server in this test process).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = server.admin().status().await;
        let needs_reauth = status["installations"].as_array().is_some_and(|list| {
            list.iter()
                .any(|i| i["tenant"] == "loc-a" && i["state"] == "needs-reauth")
        });
        if needs_reauth {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal was never seen: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Later deliveries wait, visibly, without spending attempts.
    let id = contact(&server, &signer, "loc-a").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let d = &server.deliveries(&format!("event_id={id}")).await[0];
    assert_eq!(d.state, DeliveryState::Pending, "{d:#?}");
    assert_eq!(d.attempts_made, 0, "{d:#?}");
    assert!(
        d.note
            .as_deref()
            .is_some_and(|n| n.contains("needs re-authorisation")),
        "{d:#?}"
    );
    let calls_before = fake.api_calls().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        fake.api_calls().len(),
        calls_before,
        "no call without credentials"
    );
    server.stop().await.unwrap();
    let store = SqliteStore::open(&store_path).await.unwrap();
    let installation = store
        .installation(&ApiName::new("fake"), &TenantId::new("loc-a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(installation.state, InstallationState::NeedsReauth);
}

/// A delivery whose own call meets the refusal (its token answered 401, the refresh answered
/// `invalid_grant`) waits like the later ones: deferred with the needs-reauth note, spending no
/// attempt; once the tenant installs again, it runs with the new token.
#[tokio::test]
async fn a_delivery_whose_refresh_meets_invalid_grant_waits_without_spending_an_attempt() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code("code-a", location("loc-a"));
    let server = builder(&signer, &fake, "check_interval = \"1h\"")
        .spawn()
        .await;
    assert_eq!(callback(&server, "code-a").await.0, 200);
    let first = contact(&server, &signer, "loc-a").await;
    succeeded(&server, &first).await;

    fake.revoke(&record_bearers(&fake)[0]);
    fake.fail_refreshes(Some((400, "invalid_grant")));
    let id = contact(&server, &signer, "loc-a").await;
    let held = waiting(&server, &id, "needs re-authorisation").await;
    assert_eq!(held.state, DeliveryState::Pending, "{held:#?}");
    assert_eq!(held.attempts_made, 0, "{held:#?}");
    assert_eq!(
        fake.grants("refresh_token").len(),
        1,
        "one refresh, refused"
    );
    // Its later runs wait too, without calling.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let still = server.delivery(held.id.as_str()).await;
    assert_eq!(
        (still.state, still.attempts_made),
        (DeliveryState::Pending, 0),
        "{still:#?}"
    );
    assert_eq!(
        record_bearers(&fake).len(),
        2,
        "the first call and the refused one"
    );

    fake.fail_refreshes(None);
    fake.code("code-a2", location("loc-a"));
    assert_eq!(callback(&server, "code-a2").await.0, 200);
    let done = succeeded(&server, &id).await;
    assert_eq!(done.attempts.len(), 1, "{done:#?}");
    let bearers = record_bearers(&fake);
    assert_eq!(bearers.len(), 3, "{bearers:?}");
    assert!(fake.is_live(&bearers[2]));
}

#[tokio::test]
async fn a_company_token_mints_a_location_token_for_an_installed_location() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code(
        "code-co",
        Installee {
            user_type: "Company".into(),
            location: None,
            company: Some("co-1".into()),
        },
    );
    fake.locations("co-1", &["loc-m"]);
    let server = builder(&signer, &fake, "").spawn().await;
    let (status, answer) = callback(&server, "code-co").await;
    assert_eq!(
        (status, answer["tenant"].as_str()),
        (200, Some("co-1")),
        "{answer}"
    );

    // loc-m has no installation of its own: its company's covers it through the link.
    let id = contact(&server, &signer, "loc-m").await;
    succeeded(&server, &id).await;
    let mints: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/oauth/locationToken")
        .collect();
    assert_eq!(mints.len(), 1, "{mints:#?}");
    assert_eq!(mints[0].form["locationId"], "loc-m");
    assert_eq!(mints[0].form["companyId"], "co-1");
    let bearer = record_bearers(&fake).pop().unwrap();
    assert_ne!(
        Some(&bearer),
        mints[0].bearer.as_ref(),
        "the call used the location token"
    );
    assert!(fake.is_live(&bearer));
    // A second event reuses the minted token.
    let id = contact(&server, &signer, "loc-m").await;
    succeeded(&server, &id).await;
    assert_eq!(
        fake.seen()
            .iter()
            .filter(|s| s.path == "/oauth/locationToken")
            .count(),
        1
    );
}
