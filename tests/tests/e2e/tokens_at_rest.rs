//! Credentials at rest and static tokens, through the real server and the `wasmhook` CLI: no
//! token plaintext in the database or its WAL, `keys rotate` re-seals every credential under
//! the new key, the server refuses to start without the key, and Private Integration tokens
//! rotate with an overlap and raise the rotate-after alert.

use std::{path::Path, time::Duration};

use wasmhook::{
    auth::{Keyring, MasterKey, Vault},
    secret::Secret,
    store::{AnyStore, Store, sqlite::SqliteStore},
};
use wasmhook_tests::{FakeOAuth, Installee, child::wasmhook_binary, signing::HighLevelSigner};

use crate::{
    engine_support::{InProcess, cli, cli_json},
    tokens_support::{MASTER_KEY, builder},
};

fn location(id: &str) -> Installee {
    Installee {
        user_type: "Location".into(),
        location: Some(id.into()),
        company: None,
    }
}

/// The raw bytes of the database and its WAL; asserts the WAL holds data, so the grep means
/// something.
fn db_bytes(dir: &Path) -> Vec<u8> {
    let db = dir.join("data/wasmhook.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(dir.join("data/wasmhook.db-wal")).unwrap_or_default();
    assert!(!wal.is_empty(), "the WAL should hold the recent writes");
    bytes.extend(wal);
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_plaintext_on_disk_and_keys_rotate_reseals_everything_under_the_new_key() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    fake.code("code-a", location("loc-a"));
    let b = builder(
        &signer,
        &fake,
        "old_master_keys = [{ file = \"old.key\" }]\n",
    );
    std::fs::write(b.dir().join("old.key"), MASTER_KEY).unwrap();
    let (config, dir) = b.write();
    let dir = dir.path().to_path_buf();
    let server = InProcess::start(&config).await;
    let answer = reqwest::get(format!(
        "http://{}/oauth/callback/fake?code=code-a",
        server.public
    ))
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let pit = "pit-plaintext-0b7d41e2c9";
    std::fs::write(dir.join("pit.token"), pit).unwrap();
    let pit_file = dir.join("pit.token").display().to_string();
    let (code, out, err) = cli(
        server.admin,
        &["tokens", "set", "--api", "fake", "--from-file", &pit_file],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let listed: Vec<serde_json::Value> = cli_json(server.admin, &["tokens", "list"]).await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let text = serde_json::to_string(&listed).unwrap();
    let mut plaintexts = fake.issued();
    plaintexts.push(pit.to_string());
    assert!(plaintexts.len() >= 3);
    for token in &plaintexts {
        assert!(!text.contains(token.as_str()), "the listing shows a token");
    }

    let bytes = db_bytes(&dir);
    for token in &plaintexts {
        assert!(!contains(&bytes, token), "token plaintext found on disk");
    }
    server.stop().await;

    // Rotate: the new key seals, the old one only opens until `keys rotate` is done.
    let new_key = MasterKey::generate_text();
    std::fs::write(dir.join("master.key"), &new_key).unwrap();
    let server = InProcess::start(&config).await;
    let (code, out, err) = cli(server.admin, &["keys", "rotate"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("re-sealed 2 credential"), "{out}");
    server.stop().await;

    let new = MasterKey::parse(&Secret::new(new_key), "test").unwrap();
    let old = MasterKey::parse(&Secret::new(MASTER_KEY), "test").unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.join("data/wasmhook.db"))
            .await
            .unwrap(),
    );
    let records = store.credentials(None, 100).await.unwrap();
    assert_eq!(records.len(), 2);
    let under_new = Vault::new(store.clone(), Keyring::new(Some(new.clone()), vec![]));
    let under_old = Vault::new(store.clone(), Keyring::new(Some(old), vec![]));
    for record in records {
        assert_eq!(record.key_id, new.id());
        assert!(under_new.open(record.clone()).is_ok(), "{record:?}");
        assert!(under_old.open(record.clone()).is_err(), "{record:?}");
    }
    store.close().await;

    // Without a master key, the server refuses to start and says what to set.
    let text = std::fs::read_to_string(&config).unwrap();
    let keyless = dir.join("keyless.toml");
    std::fs::write(
        &keyless,
        text.replace("master_key = { file = \"master.key\" }\n", ""),
    )
    .unwrap();
    let output = tokio::process::Command::new(wasmhook_binary())
        .args(["serve", "--config"])
        .arg(&keyless)
        .env_clear()
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("WASMHOOK_MASTER_KEY"), "{stderr}");
    assert!(stderr.contains("sealed credential"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_private_integration_token_overlaps_and_an_old_one_alerts() {
    let signer = HighLevelSigner::new();
    let fake = FakeOAuth::start(Duration::from_secs(3600)).await;
    let b = builder(
        &signer,
        &fake,
        "rotate_after = \"2s\"\ncheck_interval = \"200ms\"\n",
    );
    let (config, dir) = b.write();
    let dir = dir.path().to_path_buf();
    let server = InProcess::start(&config).await;
    let (one, two) = ("pit-one-5d0c27", "pit-two-91fe3a");
    std::fs::write(dir.join("one.token"), one).unwrap();
    std::fs::write(dir.join("two.token"), two).unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    fake.accept_static(one, "loc-s");

    let post = |fixture: &'static str| {
        let (id, body) =
            crate::tokens_support::body(fixture, "loc-s", serde_json::json!({ "companyId": null }));
        let signature = signer.sign_ed25519(&body);
        let public = server.public;
        async move {
            let status = wasmhook_tests::post_webhook(
                &reqwest::Client::new(),
                public,
                "highlevel",
                &body,
                &[("x-ghl-signature", signature)],
            )
            .await
            .status();
            assert_eq!(status, 200);
            id
        }
    };
    post("install-location").await;
    let (code, out, err) = cli(
        server.admin,
        &[
            "tokens",
            "set",
            "--api",
            "fake",
            "--tenant",
            "loc-s",
            "--from-file",
            &file("one.token"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let admin = wasmhook_tests::Admin::new(server.admin);
    let wait = |id: String| {
        let admin = admin.clone();
        async move {
            let d = admin
                .wait_final(&id, "recorder", Duration::from_secs(30))
                .await;
            assert_eq!(d.state, wasmhook::store::DeliveryState::Succeeded, "{d:#?}");
        }
    };
    wait(post("contact-create").await).await;

    // Rotated to a token the API does not take yet: the previous one is tried on the 401.
    let (code, out, err) = cli(
        server.admin,
        &[
            "tokens",
            "rotate",
            "--api",
            "fake",
            "--tenant",
            "loc-s",
            "--from-file",
            &file("two.token"),
            "--overlap",
            "1h",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("previous one is tried on 401 until"), "{out}");
    wait(post("contact-create").await).await;
    fake.accept_static(two, "loc-s");
    wait(post("contact-create").await).await;
    let bearers: Vec<String> = fake
        .api_calls()
        .into_iter()
        .filter_map(|s| s.bearer)
        .collect();
    assert_eq!(
        bearers,
        [one, two, one, two],
        "set, rotated (401 then overlap), accepted"
    );

    // Past rotate_after, the background check alerts (once per token).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = reqwest::get(format!("http://{}/metrics", server.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("wasmhook_alerts_total{kind=\"token_age\"}") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no token_age alert");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out, _) = cli(server.admin, &["tokens", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("loc-s\tstatic"), "{out}");
    assert!(!out.contains(one) && !out.contains(two), "{out}");
    server.stop().await;
}
