//! Every signature scheme through the real server: a genuine delivery is stored once with the
//! id, kind and tenant its sender put where the scheme says; a redelivery is a duplicate; a
//! forged or stale one is refused and leaves nothing behind.

use serde_json::Value;
use wasmhook::{
    ids::{EventId, SourceName},
    store::{Store, sqlite::SqliteStore},
};
use wasmhook_tests::{
    TestServer,
    server::TestServerBuilder,
    signing::{HighLevelSigner, Scheme, now_secs},
};

/// Adds a source named after `scheme` with a fresh secret read from a file; returns the secret.
pub fn with_scheme(builder: TestServerBuilder, scheme: Scheme) -> (TestServerBuilder, String) {
    with_scheme_named(builder, scheme, scheme.name())
}

/// Adds a source `name` of `scheme` with a fresh secret read from a file; returns the secret.
pub fn with_scheme_named(
    builder: TestServerBuilder,
    scheme: Scheme,
    name: &str,
) -> (TestServerBuilder, String) {
    let secret = scheme.new_secret();
    let file = format!("{name}.secret");
    std::fs::write(builder.dir().join(&file), &secret).unwrap();
    let builder = builder.toml(&format!(
        "[[sources]]\nname = \"{name}\"\nscheme = \"{}\"\nsecrets = [{{ file = \"{file}\" }}]\n{}",
        scheme.name(),
        scheme.extra_toml()
    ));
    (builder, secret)
}

async fn post(
    server: &TestServer,
    source: &str,
    body: &[u8],
    headers: Vec<(String, String)>,
) -> (u16, Value) {
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let response = server.post(source, body, &headers).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_scheme_is_verified_stored_once_and_forgeries_are_refused() {
    let signer = HighLevelSigner::new();
    let mut builder = TestServer::builder().highlevel(&signer);
    let mut secrets = Vec::new();
    for scheme in Scheme::ALL {
        let (next, secret) = with_scheme(builder, scheme);
        builder = next;
        secrets.push((scheme, secret));
    }
    let mut server = builder.spawn().await;

    // HighLevel, through its own helper (Ed25519).
    let (id, body) = crate::common::contact_create();
    let r = server.post_highlevel(&signer, &body).await;
    assert_eq!(r.status(), 200);
    let ack: Value = r.json().await.unwrap();
    assert_eq!(ack["event_id"], id.as_str());

    let mut expected = Vec::new();
    for (scheme, secret) in &secrets {
        let name = scheme.name();
        let id = format!("evt-{}", uuid::Uuid::new_v4().simple());
        let body = scheme.body(&id, "thing.happened", "4242");
        let headers = scheme.headers(secret, &body, now_secs(), &id, "thing.happened");

        let (status, ack) = post(&server, name, &body, headers.clone()).await;
        assert_eq!(status, 200, "{name}: {ack}");
        assert_eq!(ack["duplicate"], false, "{name}");
        let event_id = ack["event_id"].as_str().unwrap().to_string();
        assert_eq!(event_id, id, "{name}: the sender's id is the event id");
        let (status, ack) = post(&server, name, &body, headers.clone()).await;
        assert_eq!(
            (status, ack["duplicate"].as_bool()),
            (200, Some(true)),
            "{name}: redelivery"
        );

        // One flipped byte of the body, a MAC under another secret, no signature at all.
        let mut tampered = body.clone();
        tampered[2] ^= 1;
        let (status, err) = post(&server, name, &tampered, headers.clone()).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (401, Some("bad_signature")),
            "{name}"
        );
        let forged = scheme.headers(
            &scheme.new_secret(),
            &body,
            now_secs(),
            &id,
            "thing.happened",
        );
        let (status, _) = post(&server, name, &body, forged).await;
        assert_eq!(status, 401, "{name}: another secret");
        let (status, err) = post(&server, name, &body, Vec::new()).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (401, Some("missing_signature")),
            "{name}"
        );

        // Schemes that sign a timestamp refuse one from ten minutes ago.
        if matches!(
            scheme,
            Scheme::StandardWebhooks | Scheme::Stripe | Scheme::Slack
        ) {
            let stale = scheme.headers(secret, &body, now_secs() - 600, &id, "thing.happened");
            let (status, err) = post(&server, name, &body, stale).await;
            assert_eq!(
                (status, err["error"]["code"].as_str()),
                (401, Some("stale_timestamp")),
                "{name}"
            );
        }
        expected.push((name, event_id));
    }

    server.stop().await.unwrap();
    let store = SqliteStore::open(&server.db_path())
        .await
        .unwrap_or_else(|e| panic!("reopening the stopped server's store: {e}"));
    assert_eq!(
        store.event_count().await.unwrap(),
        1 + Scheme::ALL.len() as u64,
        "one event per scheme"
    );
    for (name, event_id) in expected {
        let event = store
            .event(&SourceName::new(name), &EventId::new(&event_id))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: event {event_id} stored"));
        assert_eq!(event.kind, "thing.happened", "{name}");
        let tenant = match name {
            "standard-webhooks" => "standard-webhooks",
            "shopify" => "example.myshopify.com",
            _ => "4242",
        };
        assert_eq!(event.tenant.as_str(), tenant, "{name}");
    }
}

#[tokio::test]
async fn a_slack_app_can_be_pointed_at_the_server() {
    let (builder, secret) = with_scheme(TestServer::builder(), Scheme::Slack);
    let server = builder.spawn().await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let headers = Scheme::Slack.headers(&secret, body, now_secs(), "", "");
    let (status, answer) = post(&server, "slack", body, headers).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    // A slash command arrives form-encoded (the body is sniffed, whatever its content type).
    let form = b"command=%2Fdeploy&team_id=T0001&text=prod";
    let headers = Scheme::Slack.headers(&secret, form, now_secs(), "", "");
    let (status, answer) = post(&server, "slack", form, headers).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn malformed_json_after_a_valid_signature_is_400() {
    let (builder, secret) = with_scheme(TestServer::builder(), Scheme::GitHub);
    let server = builder.spawn().await;
    let body = b"{\"action\": ";
    let headers = Scheme::GitHub.headers(&secret, body, now_secs(), "d-1", "push");
    let (status, err) = post(&server, "github", body, headers).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
}
