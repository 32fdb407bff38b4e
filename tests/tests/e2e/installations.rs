//! Installations through the real server: with `require_installation` (HighLevel's default), an
//! unknown tenant's event is refused with 403 and nothing is stored; after INSTALL it is
//! accepted; after UNINSTALL it is refused again. And a HighLevel body older than `max_age` is
//! refused, however well it is signed.

use serde_json::{Value, json};
use wasmhook::{
    ids::{ApiName, TenantId},
    installations::InstallationState,
    store::{Store, sqlite::SqliteStore},
};
use wasmhook_tests::{APP_ID, TestServer, fixtures, signing::HighLevelSigner};

const TENANT: &str = "loc-installed-1";

/// A HighLevel event of `kind` for [`TENANT`].
fn event(kind: &str, changes: Value) -> (String, Vec<u8>) {
    let id = format!("wh-{}", uuid::Uuid::new_v4().simple());
    let mut all = json!({ "type": kind, "locationId": TENANT });
    for (k, v) in changes.as_object().unwrap() {
        all[k] = v.clone();
    }
    let fixture = match kind {
        "INSTALL" => "install-location",
        "UNINSTALL" => "uninstall-location",
        _ => "contact-create",
    };
    (
        id.clone(),
        fixtures::highlevel_body_with(fixture, APP_ID, &id, all),
    )
}

async fn code(server: &TestServer, signer: &HighLevelSigner, body: &[u8]) -> (u16, Value) {
    let response = server.post_highlevel(signer, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn an_unknown_tenant_is_refused_until_install_and_again_after_uninstall() {
    let signer = HighLevelSigner::new();
    let mut server = TestServer::builder()
        .highlevel_source("highlevel", &signer, "require_installation = true")
        .spawn()
        .await;

    let (_, before) = event("ContactCreate", json!({}));
    let (status, answer) = code(&server, &signer, &before).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("not_installed")),
        "{answer}"
    );

    let (_, install) = event("INSTALL", json!({ "companyId": "co-1" }));
    let (status, answer) = code(&server, &signer, &install).await;
    assert_eq!(status, 200, "INSTALL is exempt: {answer}");

    let (during_id, during) = event("ContactCreate", json!({}));
    let (status, answer) = code(&server, &signer, &during).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event_id"], during_id.as_str());

    let (_, uninstall) = event("UNINSTALL", json!({}));
    let (status, answer) = code(&server, &signer, &uninstall).await;
    assert_eq!(status, 200, "{answer}");

    let (after_id, after) = event("ContactCreate", json!({}));
    let (status, answer) = code(&server, &signer, &after).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("uninstalled")),
        "{answer}"
    );

    // The refusals are counted.
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wasmhook_webhooks_total")
                && l.contains("outcome=\"not_installed\"")
                && l.contains("source=\"highlevel\"")),
        "{metrics}"
    );

    server.stop().await.unwrap();
    let store = SqliteStore::open(&server.db_path())
        .await
        .unwrap_or_else(|e| panic!("reopening the stopped server's store: {e}"));
    assert_eq!(
        store.event_count().await.unwrap(),
        3,
        "INSTALL, one event, UNINSTALL"
    );
    let source = wasmhook::ids::SourceName::new("highlevel");
    assert!(
        store
            .event(&source, &wasmhook::ids::EventId::new(&after_id))
            .await
            .unwrap()
            .is_none(),
        "the refused event is not stored"
    );
    // Without an `api`, installations are kept under the source's name.
    let installation = store
        .installation(&ApiName::new("highlevel"), &TenantId::new(TENANT))
        .await
        .unwrap()
        .expect("the installation is recorded");
    assert_eq!(installation.state, InstallationState::Uninstalled);
    assert_eq!(
        store
            .company_of(&ApiName::new("highlevel"), &TenantId::new(TENANT))
            .await
            .unwrap(),
        Some(TenantId::new("co-1")),
        "the INSTALL linked the location to its company"
    );
}

#[tokio::test]
async fn a_highlevel_body_older_than_max_age_is_refused() {
    let signer = HighLevelSigner::new();
    let mut server = TestServer::builder()
        .highlevel_source("highlevel", &signer, "max_age = \"1h\"")
        .spawn()
        .await;
    let two_hours = 2 * 3_600_000;
    let (_, old) = event(
        "ContactCreate",
        json!({ "timestamp": fixtures::highlevel_timestamp_ago(two_hours) }),
    );
    let (status, answer) = code(&server, &signer, &old).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("too_old")),
        "{answer}"
    );
    // A replayed signed UNINSTALL after dedup forgot it is refused the same way.
    let (_, old_uninstall) = event(
        "UNINSTALL",
        json!({ "timestamp": fixtures::highlevel_timestamp_ago(two_hours) }),
    );
    let (status, _) = code(&server, &signer, &old_uninstall).await;
    assert_eq!(status, 403);

    let (_, fresh) = event(
        "ContactCreate",
        json!({ "timestamp": fixtures::highlevel_timestamp_ago(60_000) }),
    );
    let (status, _) = code(&server, &signer, &fresh).await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
    let store = SqliteStore::open(&server.db_path())
        .await
        .unwrap_or_else(|e| panic!("reopening the stopped server's store: {e}"));
    assert_eq!(store.event_count().await.unwrap(), 1);
}
