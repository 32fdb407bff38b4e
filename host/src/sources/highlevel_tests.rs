//! Unit tests of the `highlevel` scheme: signatures (both headers, rotation, no fallback, the
//! published keys) and the envelope rules, on HighLevel's documented example bodies.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use http::{HeaderMap, HeaderValue};
use rand::rngs::OsRng;
use rsa::RsaPrivateKey;
use serde_json::{Value, json};

use super::*;
use crate::{
    config::{Config, SchemeConfig, SourceConfig},
    sources::{Source, Verified, timestamp::format_rfc3339_ms},
};

const APP: &str = "our-app";
/// 2025-06-25T07:00:00Z, a few minutes after the `install-as-delivered` fixture was sent.
const NOW: i64 = 1_750_834_800_000;

fn fixture(name: &str) -> Value {
    let text = match name {
        "contact-create" => include_str!("../../../tests/fixtures/highlevel/contact-create.json"),
        "install-agency" => include_str!("../../../tests/fixtures/highlevel/install-agency.json"),
        "install-as-delivered" => {
            include_str!("../../../tests/fixtures/highlevel/install-as-delivered.json")
        }
        "record-create" => include_str!("../../../tests/fixtures/highlevel/record-create.json"),
        "location-create" => include_str!("../../../tests/fixtures/highlevel/location-create.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// `fixture` with `changes` merged in at the top level (`null` removes a key).
fn body(name: &str, changes: Value) -> Vec<u8> {
    let mut value = fixture(name);
    let map = value.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&value).unwrap()
}

/// One RSA key per test process: generating even 2048-bit keys is slow.
fn rsa_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
}

fn sign_ed(key: &SigningKey, body: &[u8]) -> String {
    STANDARD.encode(key.sign(body).to_bytes())
}

fn sign_rsa(key: &RsaPrivateKey, body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    STANDARD.encode(key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap())
}

fn hl_config(ed: Vec<VerifyingKey>, rsa: Vec<RsaPublicKey>) -> HighLevelConfig {
    HighLevelConfig {
        app_id: APP.into(),
        ed25519_keys: ed,
        rsa_keys: rsa,
        max_age: Duration::from_secs(72 * 3600),
        require_timestamp: false,
        require_installation: true,
        signing_key: None,
    }
}

fn source(config: HighLevelConfig) -> Arc<Source> {
    Arc::new(
        Source::from_config(&SourceConfig::new(
            SourceName::new("hl"),
            None,
            SchemeConfig::HighLevel(config),
        ))
        .unwrap(),
    )
}

/// A source trusting `ed` and the process's RSA test key.
fn trusting(ed: &SigningKey) -> Arc<Source> {
    source(hl_config(
        vec![ed.verifying_key()],
        vec![rsa_key().to_public_key()],
    ))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn verify(
    source: &Arc<Source>,
    pairs: &[(&'static str, &str)],
    body: &[u8],
) -> Result<Verified, VerifyError> {
    source.verify(&headers(pairs), Bytes::copy_from_slice(body))
}

#[test]
fn the_published_keys_parse_and_are_the_defaults() {
    let text = "[[sources]]\nname = \"highlevel\"\nscheme = \"highlevel\"\napp_id = \"a\"\n";
    let config = Config::parse(std::path::Path::new("w.toml"), text).unwrap();
    let SchemeConfig::HighLevel(hl) = &config.sources[0].scheme else {
        panic!("not highlevel")
    };
    assert_eq!(hl.ed25519_keys.len(), 1);
    assert_eq!(hl.rsa_keys.len(), 1);
    assert_eq!(
        hl.rsa_keys[0].size(),
        512,
        "HighLevel's legacy key is 4096-bit"
    );
    let sources = crate::sources::Sources::from_config(&config.sources).unwrap();
    assert_eq!(sources.get("highlevel").unwrap().scheme_name(), "highlevel");
}

#[test]
fn a_body_signed_with_a_test_key_is_refused_by_the_published_keys() {
    let text = "[[sources]]\nname = \"highlevel\"\nscheme = \"highlevel\"\napp_id = \"a\"\n";
    let config = Config::parse(std::path::Path::new("w.toml"), text).unwrap();
    let published = Arc::new(Source::from_config(&config.sources[0]).unwrap());
    let body = body("contact-create", json!({ "appId": "a" }));
    let ours = SigningKey::generate(&mut OsRng);

    let err = verify(
        &published,
        &[(SIGNATURE_HEADER, &sign_ed(&ours, &body))],
        &body,
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::Mismatch {
            header: SIGNATURE_HEADER.into()
        }
    );

    // A 2048-bit signature cannot come from the 4096-bit published key.
    let sig = sign_rsa(rsa_key(), &body);
    let err = verify(&published, &[(LEGACY_SIGNATURE_HEADER, &sig)], &body).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Length {
                actual: 256,
                expected: 512,
                ..
            }
        ),
        "{err:?}"
    );
    // And a well-sized forgery does not verify either.
    let forged = STANDARD.encode([7u8; 512]);
    let err = verify(&published, &[(LEGACY_SIGNATURE_HEADER, &forged)], &body).unwrap_err();
    assert_eq!(err.code(), "bad_signature");
}

#[test]
fn ed25519_over_the_raw_bytes_is_accepted_and_tampering_is_not() {
    let key = SigningKey::generate(&mut OsRng);
    let source = trusting(&key);
    let body = body("contact-create", json!({ "appId": APP }));
    let sig = sign_ed(&key, &body);

    let verified = verify(&source, &[(SIGNATURE_HEADER, &sig)], &body).unwrap();
    assert_eq!(verified.body(), body.as_slice());
    assert_eq!(verified.proof(), Proof::new(SignatureKind::Ed25519, 0));
    assert_eq!(verified.source().name().as_str(), "hl");

    // The same JSON re-serialised differently is different bytes: refused.
    let mut spaced = body.clone();
    spaced.insert(1, b' ');
    let err = verify(&source, &[(SIGNATURE_HEADER, &sig)], &spaced).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Mismatch {
            header: SIGNATURE_HEADER.into()
        }
    );
    assert_eq!(err.code(), "bad_signature");
}

#[test]
fn any_configured_key_may_match_for_rotation() {
    let old = SigningKey::generate(&mut OsRng);
    let new = SigningKey::generate(&mut OsRng);
    let source = source(hl_config(
        vec![old.verifying_key(), new.verifying_key()],
        vec![],
    ));
    let body = b"{}";
    let proof = verify(&source, &[(SIGNATURE_HEADER, &sign_ed(&new, body))], body)
        .unwrap()
        .proof();
    assert_eq!(proof.key, 1);
    let proof = verify(&source, &[(SIGNATURE_HEADER, &sign_ed(&old, body))], body)
        .unwrap()
        .proof();
    assert_eq!(proof.key, 0);
}

#[test]
fn the_legacy_rsa_header_is_used_only_without_the_ed25519_one() {
    let key = SigningKey::generate(&mut OsRng);
    let stranger = SigningKey::generate(&mut OsRng);
    let source = trusting(&key);
    let body = body("contact-create", json!({ "appId": APP }));
    let rsa_sig = sign_rsa(rsa_key(), &body);

    let verified = verify(&source, &[(LEGACY_SIGNATURE_HEADER, &rsa_sig)], &body).unwrap();
    assert_eq!(verified.proof().kind, SignatureKind::RsaSha256);

    // A bad Ed25519 header is not rescued by a good legacy one.
    let err = verify(
        &source,
        &[
            (SIGNATURE_HEADER, &sign_ed(&stranger, &body)),
            (LEGACY_SIGNATURE_HEADER, &rsa_sig),
        ],
        &body,
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::Mismatch {
            header: SIGNATURE_HEADER.into()
        }
    );

    // A tampered body fails the RSA check too.
    let err = verify(&source, &[(LEGACY_SIGNATURE_HEADER, &rsa_sig)], b"{}").unwrap_err();
    assert_eq!(
        err,
        VerifyError::Mismatch {
            header: LEGACY_SIGNATURE_HEADER.into()
        }
    );
}

#[test]
fn missing_malformed_and_repeated_signatures_are_refused() {
    let key = SigningKey::generate(&mut OsRng);
    let source = trusting(&key);
    let body = b"{}";

    let err = verify(&source, &[], body).unwrap_err();
    assert_eq!(err.code(), "missing_signature");
    assert!(err.to_string().contains(SIGNATURE_HEADER), "{err}");

    let err = verify(&source, &[(SIGNATURE_HEADER, "not base64!")], body).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Encoding {
            header: SIGNATURE_HEADER.into()
        }
    );

    let short = STANDARD.encode([1u8; 63]);
    let err = verify(&source, &[(SIGNATURE_HEADER, &short)], body).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Length {
            header: SIGNATURE_HEADER.into(),
            actual: 63,
            expected: 64
        }
    );

    let good = sign_ed(&key, body);
    let err = verify(
        &source,
        &[(SIGNATURE_HEADER, &good), (SIGNATURE_HEADER, &good)],
        body,
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::Repeated {
            header: SIGNATURE_HEADER.into()
        }
    );

    // Unpadded base64 of a good signature is the same signature.
    let unpadded = good.trim_end_matches('=');
    assert!(verify(&source, &[(SIGNATURE_HEADER, unpadded)], body).is_ok());
}

#[test]
fn a_source_without_keys_cannot_be_built() {
    let result = Source::from_config(&SourceConfig::new(
        SourceName::new("bare"),
        None,
        SchemeConfig::HighLevel(hl_config(vec![], vec![])),
    ));
    assert!(matches!(result, Err(SourcesError::NoKeys(_))));
}

/// Signs `body` for a fresh trusting source and reads its envelope at [`NOW`].
fn envelope_with(
    config: impl FnOnce(&mut HighLevelConfig),
    body: &[u8],
) -> Result<Envelope, EnvelopeError> {
    let key = SigningKey::generate(&mut OsRng);
    let mut hl = hl_config(vec![key.verifying_key()], vec![]);
    config(&mut hl);
    let source = source(hl);
    verify(&source, &[(SIGNATURE_HEADER, &sign_ed(&key, body))], body)
        .unwrap()
        .envelope(NOW)
}

fn envelope(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    envelope_with(|_| {}, body)
}

#[test]
fn envelope_of_a_real_delivery() {
    let body = body("install-as-delivered", json!({ "appId": APP }));
    let env = envelope(&body).unwrap();
    assert_eq!(env.id.as_str(), "1a533f85-1f1e-4886-891e-ee0cf4666e90");
    assert_eq!(env.kind, "INSTALL");
    assert_eq!(
        env.tenant.as_str(),
        "HjiMUOsCCHCjtxzEf8PR",
        "locationId wins over companyId"
    );
    assert_eq!(env.sent_at_ms, Some(1_750_834_626_225));
}

#[test]
fn id_falls_back_to_the_body_hash_and_kind_to_empty() {
    let body = body("record-create", json!({ "appId": APP, "timestamp": null }));
    let env = envelope(&body).unwrap();
    assert_eq!(env.id, super::fallback_event_id(&body));
    assert!(env.id.as_str().starts_with("sha256:"));
    assert_eq!(env.kind, "", "record-create has no `type`");
    assert_eq!(env.tenant.as_str(), "eHy2cOSZxMQzQ6Yyvl8P");
    assert_eq!(env.sent_at_ms, None);
}

#[test]
fn tenant_falls_back_to_company_then_alt_id() {
    let env = envelope(&body("install-agency", json!({ "appId": APP }))).unwrap();
    assert_eq!(env.tenant.as_str(), "otg8dTQqGLh3Q6iQI55w");
    let env = envelope(&body("location-create", json!({ "appId": APP }))).unwrap();
    assert_eq!(env.tenant.as_str(), "otg8dTQqGLh3Q6iQI55w");

    let invoice = serde_json::to_vec(&json!({
        "type": "InvoiceCreate", "appId": APP, "altId": "loc-1", "altType": "location"
    }))
    .unwrap();
    assert_eq!(envelope(&invoice).unwrap().tenant.as_str(), "loc-1");

    let agency_alt = serde_json::to_vec(&json!({
        "type": "InvoiceCreate", "appId": APP, "altId": "co-1", "altType": "company"
    }))
    .unwrap();
    let err = envelope(&agency_alt).unwrap_err();
    assert_eq!(err, EnvelopeError::MissingTenant);
    assert_eq!(err.code(), "missing_tenant");
    assert!(!err.is_refusal());
}

#[test]
fn app_id_must_be_ours() {
    let contact = |app: Value| body("contact-create", json!({ "appId": app }));
    let err = envelope(&contact(Value::Null)).unwrap_err();
    assert_eq!(err.code(), "missing_app_id");
    assert!(err.is_refusal());
    let err = envelope(&contact(json!("someone-else"))).unwrap_err();
    assert_eq!(err.code(), "wrong_app");
    assert!(
        !err.to_string().contains(APP),
        "our app id is not echoed: {err}"
    );
    assert_eq!(
        envelope(&contact(json!(42))).unwrap_err().code(),
        "invalid_field"
    );
    // The app is judged before the tenant: another app's event is not ours to interpret.
    let foreign = serde_json::to_vec(&json!({ "appId": "x" })).unwrap();
    assert_eq!(envelope(&foreign).unwrap_err().code(), "wrong_app");
}

#[test]
fn timestamps_are_judged_by_age() {
    let at = |ts: Value| body("contact-create", json!({ "appId": APP, "timestamp": ts }));
    let iso = |ms: i64| json!(format_rfc3339_ms(ms));
    let hour = 3_600_000;

    assert_eq!(
        envelope(&at(iso(NOW - hour))).unwrap().sent_at_ms,
        Some(NOW - hour)
    );
    assert_eq!(
        envelope(&at(json!(NOW - hour))).unwrap().sent_at_ms,
        Some(NOW - hour)
    );
    assert_eq!(
        envelope(&at(json!((NOW - hour).to_string())))
            .unwrap()
            .sent_at_ms,
        Some(NOW - hour)
    );
    // Exactly max_age old is still accepted; a millisecond more is not.
    assert!(envelope(&at(json!(NOW - 72 * hour))).is_ok());
    let err = envelope(&at(json!(NOW - 72 * hour - 1))).unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::TooOld {
            age_secs: 72 * 3600,
            max_age_secs: 72 * 3600
        }
    );
    assert_eq!(err.code(), "too_old");
    // A sender clock ahead of ours is tolerated.
    assert!(envelope(&at(iso(NOW + hour))).is_ok());

    let err = envelope(&at(json!("yesterday"))).unwrap_err();
    assert_eq!(err.code(), "bad_timestamp");
    assert!(!err.is_refusal());
    assert_eq!(
        envelope(&at(json!(true))).unwrap_err().code(),
        "bad_timestamp"
    );
    assert_eq!(
        envelope(&at(json!(1e300))).unwrap_err().code(),
        "bad_timestamp"
    );
}

#[test]
fn a_short_max_age_and_a_required_timestamp() {
    let body_at = body(
        "contact-create",
        json!({ "appId": APP, "timestamp": format_rfc3339_ms(NOW - 301_000) }),
    );
    let err = envelope_with(|c| c.max_age = Duration::from_secs(300), &body_at).unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::TooOld {
            age_secs: 301,
            max_age_secs: 300
        }
    );

    let no_ts = body("contact-create", json!({ "appId": APP }));
    assert!(
        envelope(&no_ts).is_ok(),
        "missing timestamp accepted by default"
    );
    let err = envelope_with(|c| c.require_timestamp = true, &no_ts).unwrap_err();
    assert_eq!(err.code(), "missing_timestamp");
    assert!(err.is_refusal());
}

#[test]
fn only_json_objects_have_an_envelope() {
    for bad in [&b"[]"[..], b"\"text\"", b"{\"a\":", b"", b"null"] {
        let err = envelope(bad).unwrap_err();
        assert_eq!(
            err.code(),
            "malformed_json",
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn overlong_identifiers_are_refused() {
    let long = "x".repeat(crate::sources::MAX_FIELD_LEN + 1);
    let body = body("contact-create", json!({ "appId": APP, "webhookId": long }));
    let err = envelope(&body).unwrap_err();
    assert_eq!(
        err,
        EnvelopeError::InvalidField {
            field: "webhookId".into(),
            max: crate::sources::MAX_FIELD_LEN
        }
    );
}

#[test]
fn debug_of_verified_never_shows_the_body() {
    let key = SigningKey::generate(&mut OsRng);
    let source = trusting(&key);
    let body = br#"{"email":"someone@example.com"}"#;
    let verified = verify(&source, &[(SIGNATURE_HEADER, &sign_ed(&key, body))], body).unwrap();
    let debug = format!("{verified:?}");
    assert!(!debug.contains("someone"), "{debug}");
    assert!(debug.contains("body_len"), "{debug}");
}
