//! UNINSTALL through the real server: the plugins subscribed to it run first (with the
//! tenant's token still usable), then the tenant's credentials, events and deliveries are
//! erased and a tombstone refuses later events, until a new INSTALL and callback.

use std::time::Duration;

use serde_json::json;
use wasmhook_tests::{FakeOAuth, Installee, signing::HighLevelSigner};

use crate::tokens_support::{admin_call, body, builder, callback, contact, lifecycle, succeeded};

fn location(id: &str) -> Installee {
    Installee {
        user_type: "Location".into(),
        location: Some(id.into()),
        company: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_runs_its_plugins_then_erases_the_tenant_and_a_new_install_works() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code("code-u", location("loc-u"));
    fake.code("code-u2", location("loc-u"));
    let server = builder(&signer, &fake, "").spawn().await;
    assert_eq!(
        lifecycle(&server, &signer, "install-location", "loc-u").await,
        200
    );
    assert_eq!(callback(&server, "code-u").await.0, 200);
    let first = contact(&server, &signer, "loc-u").await;
    succeeded(&server, &first).await;

    assert_eq!(
        lifecycle(&server, &signer, "uninstall-location", "loc-u").await,
        200
    );
    // The recorder's UNINSTALL delivery ran with a live token before the erasure.
    fake.wait_until(
        Duration::from_secs(20),
        "the UNINSTALL delivery's call",
        |f| f.api_calls().iter().filter(|s| s.path == "/record").count() == 2,
    )
    .await;
    let uninstall_call = fake.api_calls().pop().unwrap();
    assert!(fake.is_live(uninstall_call.bearer.as_deref().unwrap()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, tokens) = admin_call(&server, reqwest::Method::GET, "/admin/tokens", None).await;
        let deliveries = server.deliveries("tenant=loc-u").await;
        if tokens.as_array().unwrap().is_empty() && deliveries.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not erased: {tokens} {deliveries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The tombstone refuses later events.
    let (_, event) = body("contact-create", "loc-u", json!({}));
    let response = server.post_highlevel(&signer, &event).await;
    assert_eq!(response.status(), 403);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "uninstalled", "{answer}");

    // A new INSTALL and callback bring it back.
    assert_eq!(
        lifecycle(&server, &signer, "install-location", "loc-u").await,
        200
    );
    assert_eq!(callback(&server, "code-u2").await.0, 200);
    let again = contact(&server, &signer, "loc-u").await;
    succeeded(&server, &again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_uninstall_erases_the_locations_it_covers() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code(
        "code-co",
        Installee {
            user_type: "Company".into(),
            location: None,
            company: Some("co-9".into()),
        },
    );
    fake.locations("co-9", &["loc-m9"]);
    let server = builder(&signer, &fake, "").spawn().await;
    let agency = json!({ "locationId": null, "companyId": "co-9" });
    let (_, install) = body("install-agency", "co-9", agency.clone());
    assert_eq!(server.post_highlevel(&signer, &install).await.status(), 200);
    assert_eq!(callback(&server, "code-co").await.0, 200);
    // The covered location gets a minted token.
    let id = contact(&server, &signer, "loc-m9").await;
    succeeded(&server, &id).await;
    let (_, tokens) = admin_call(&server, reqwest::Method::GET, "/admin/tokens", None).await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");

    let (_, uninstall) = body("uninstall-agency", "co-9", agency);
    assert_eq!(
        server.post_highlevel(&signer, &uninstall).await.status(),
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, tokens) = admin_call(&server, reqwest::Method::GET, "/admin/tokens", None).await;
        let left = server.deliveries("tenant=loc-m9").await;
        if tokens.as_array().unwrap().is_empty() && left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not erased: {tokens} {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, event) = body("contact-create", "loc-m9", json!({}));
    let response = server.post_highlevel(&signer, &event).await;
    assert_eq!(
        response.status(),
        403,
        "the covered location is refused too"
    );
}
