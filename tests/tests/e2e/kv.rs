//! The key-value store is scoped to (plugin, tenant): a plugin sees its own keys for the event's
//! tenant and nothing else, whatever key names it uses.

use wasmhook::store::DeliveryState;
use wasmhook_tests::{APP_ID, FakeApi, fixtures, signing::HighLevelSigner};

use crate::common::{FINAL, hostile_manifest, hostile_wasm, server_with};

/// A signed ContactCreate for tenant `location`.
fn contact_create_for(location: &str) -> (String, Vec<u8>) {
    let id = format!("wh-{}", rand::random::<u64>());
    let mut body = fixtures::highlevel("contact-create");
    body["locationId"] = location.into();
    body["appId"] = APP_ID.into();
    body["webhookId"] = id.clone().into();
    (id, serde_json::to_vec(&body).unwrap())
}

#[tokio::test]
async fn kv_keys_are_invisible_to_other_plugins_and_other_tenants() {
    let signer = HighLevelSigner::new();
    let fake = FakeApi::start().await;
    let wasm = hostile_wasm();
    // `kv-probe` fails with "visible: <value>" if the key already holds a value in its scope,
    // and otherwise writes the event's tenant under it.
    let server = server_with(&signer, &fake, |b| {
        b.plugin(
            "alpha",
            &wasm,
            &hostile_manifest("alpha", "kv-probe", "5s", "16MiB", "key = \"shared-name\""),
        )
        .plugin(
            "beta",
            &wasm,
            &hostile_manifest("beta", "kv-probe", "5s", "16MiB", "key = \"shared-name\""),
        )
    })
    .await;

    let state = |d: &wasmhook::store::DeliveryRecord| {
        (d.state, d.attempts.last().and_then(|a| a.error.clone()))
    };

    // Tenant A, first event: neither plugin sees anything (beta cannot see alpha's write).
    let (first, body) = contact_create_for("tenant-a");
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    for plugin in ["alpha", "beta"] {
        let d = server.wait_final(&first, plugin, FINAL).await;
        assert_eq!(
            state(&d),
            (DeliveryState::Succeeded, None),
            "{plugin} on tenant-a #1"
        );
    }

    // Tenant A again: the positive control — each plugin now sees its own value.
    let (second, body) = contact_create_for("tenant-a");
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    for plugin in ["alpha", "beta"] {
        let d = server.wait_final(&second, plugin, FINAL).await;
        assert_eq!(
            d.state,
            DeliveryState::Dead,
            "{plugin} on tenant-a #2: {d:#?}"
        );
        let error = d.attempts[0].error.clone().unwrap_or_default();
        assert!(error.contains("visible: tenant-a"), "{plugin}: {error}");
    }

    // Tenant B: the same key name in the same plugins holds nothing.
    let (third, body) = contact_create_for("tenant-b");
    assert_eq!(server.post_highlevel(&signer, &body).await.status(), 200);
    for plugin in ["alpha", "beta"] {
        let d = server.wait_final(&third, plugin, FINAL).await;
        assert_eq!(
            state(&d),
            (DeliveryState::Succeeded, None),
            "{plugin} on tenant-b"
        );
    }
}
