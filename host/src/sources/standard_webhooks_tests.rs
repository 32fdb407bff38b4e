//! Unit tests of the `standard-webhooks` scheme against the published test vectors and each
//! reject case.
//!
//! The vectors are the Standard Webhooks reference libraries' own: `v1` from
//! `libraries/go/webhook_test.go` (`TestWebhookSign`, the same values as the other languages'
//! tests), and `v1a` from `libraries/go/webhook_asymmetric_test.go` (`TestAsymmetricWebhookSign`,
//! added with the asymmetric-signature pull request), both in the
//! `standard-webhooks/standard-webhooks` repository.

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::*;
use crate::sources::headers::BASE64;

const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1_614_265_330;
const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
const V1_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const V1_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// A 32-byte Ed25519 seed ("TESTSIGNINGKEYDONOTUSETHISFORANY"), base64.
const V1A_SEED: &str = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
const V1A_SIGNATURE: &str =
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";
/// The libraries' "invalid signature" value: well-formed, wrong.
const WRONG: &str = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";

const NOW_MS: i64 = TIMESTAMP * 1000;
const FIVE_MIN: Duration = Duration::from_secs(300);

fn scheme(secrets: &[&str]) -> StandardWebhooks {
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    StandardWebhooks::new(&secrets, FIVE_MIN, &FieldOverrides::default()).unwrap()
}

fn headers(prefix: &str, id: &str, ts: i64, signature: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in [
        ("id", id.to_string()),
        ("timestamp", ts.to_string()),
        ("signature", signature.to_string()),
    ] {
        map.insert(
            HeaderName::try_from(format!("{prefix}-{name}")).unwrap(),
            HeaderValue::try_from(value).unwrap(),
        );
    }
    map
}

fn vector(signature: &str) -> HeaderMap {
    headers("webhook", MSG_ID, TIMESTAMP, signature)
}

#[test]
fn the_published_v1_vector_verifies_with_and_without_the_prefix() {
    for secret in [V1_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        let proof = scheme(&[secret])
            .verify(&vector(V1_SIGNATURE), PAYLOAD, NOW_MS)
            .unwrap();
        assert_eq!(proof.kind, SignatureKind::HmacSha256);
        assert_eq!(proof.key, 0);
        assert_eq!(proof.signed_at_ms, Some(NOW_MS));
    }
}

#[test]
fn the_published_v1a_vector_verifies_with_the_secret_or_public_key() {
    let seed: [u8; 32] = BASE64.decode(V1A_SEED).unwrap().try_into().unwrap();
    let signing = SigningKey::from_bytes(&seed);
    let public = format!("whpk_{}", BASE64.encode(signing.verifying_key().to_bytes()));
    let full = format!(
        "whsk_{}",
        BASE64.encode([seed.as_slice(), &signing.verifying_key().to_bytes()].concat())
    );
    for secret in [format!("whsk_{V1A_SEED}"), public, full] {
        let proof = scheme(&[&secret])
            .verify(&vector(V1A_SIGNATURE), PAYLOAD, NOW_MS)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(proof.kind, SignatureKind::Ed25519);
    }
    // And our own Ed25519 signing reproduces the published value byte for byte.
    let content = format!(
        "{MSG_ID}.{TIMESTAMP}.{}",
        std::str::from_utf8(PAYLOAD).unwrap()
    );
    assert_eq!(
        format!(
            "v1a,{}",
            BASE64.encode(signing.sign(content.as_bytes()).to_bytes())
        ),
        V1A_SIGNATURE
    );
}

#[test]
fn svix_header_names_are_accepted() {
    let proof = scheme(&[V1_SECRET])
        .verify(
            &headers("svix", MSG_ID, TIMESTAMP, V1_SIGNATURE),
            PAYLOAD,
            NOW_MS,
        )
        .unwrap();
    assert_eq!(proof.kind, SignatureKind::HmacSha256);
}

#[test]
fn any_valid_entry_of_a_list_passes_and_unknown_versions_are_skipped() {
    let list = format!("v1,{WRONG} v2,{WRONG} {V1_SIGNATURE} v1,{WRONG}");
    assert!(
        scheme(&[V1_SECRET])
            .verify(&vector(&list), PAYLOAD, NOW_MS)
            .is_ok()
    );
    let both = format!("{V1_SIGNATURE} {V1A_SIGNATURE}");
    let s = scheme(&[&format!("whsk_{V1A_SEED}")]);
    assert_eq!(
        s.verify(&vector(&both), PAYLOAD, NOW_MS).unwrap().kind,
        SignatureKind::Ed25519,
        "a v1a-only source ignores the v1 entry"
    );
}

#[test]
fn rotation_reports_which_key_matched() {
    let s = scheme(&["whsec_b2xkLXNlY3JldA==", V1_SECRET]);
    assert_eq!(
        s.verify(&vector(V1_SIGNATURE), PAYLOAD, NOW_MS)
            .unwrap()
            .key,
        1
    );
}

#[test]
fn reject_cases() {
    let s = scheme(&[V1_SECRET, &format!("whsk_{V1A_SEED}")]);
    let check =
        |h: HeaderMap, body: &[u8], now: i64| s.verify(&h, body, now).map(|_| ()).unwrap_err();

    // Wrong signature, partial signatures, a version we do not know.
    assert_eq!(
        check(vector(&format!("v1,{WRONG}")), PAYLOAD, NOW_MS).code(),
        "bad_signature"
    );
    assert!(matches!(
        check(vector("v1a,"), PAYLOAD, NOW_MS),
        VerifyError::Mismatch { .. }
    ));
    assert!(matches!(
        check(vector("v1,"), PAYLOAD, NOW_MS),
        VerifyError::Mismatch { .. }
    ));
    // A truncated MAC: still base64 (15 bytes), or cut mid-quantum (then it is no entry at all).
    assert!(matches!(
        check(vector(&V1_SIGNATURE[..23]), PAYLOAD, NOW_MS),
        VerifyError::Mismatch { .. }
    ));
    assert_eq!(
        check(vector(&V1_SIGNATURE[..20]), PAYLOAD, NOW_MS).code(),
        "bad_signature"
    );
    let v2 = V1_SIGNATURE.replace("v1,", "v2,");
    assert!(matches!(
        check(vector(&v2), PAYLOAD, NOW_MS),
        VerifyError::NoSupportedVersion { .. }
    ));
    assert!(matches!(
        check(vector("garbage"), PAYLOAD, NOW_MS),
        VerifyError::NoSupportedVersion { .. }
    ));

    // One flipped byte of the body, the id or the timestamp.
    let mut flipped = PAYLOAD.to_vec();
    flipped[3] ^= 1;
    assert_eq!(
        check(vector(V1_SIGNATURE), &flipped, NOW_MS).code(),
        "bad_signature"
    );
    assert_eq!(
        check(vector(V1A_SIGNATURE), &flipped, NOW_MS).code(),
        "bad_signature"
    );
    let other_id = headers(
        "webhook",
        "msg_p5jXN8AQM9LWM0D4loKWxJeK",
        TIMESTAMP,
        V1_SIGNATURE,
    );
    assert_eq!(check(other_id, PAYLOAD, NOW_MS).code(), "bad_signature");
    let other_ts = headers("webhook", MSG_ID, TIMESTAMP + 1, V1_SIGNATURE);
    assert_eq!(check(other_ts, PAYLOAD, NOW_MS).code(), "bad_signature");

    // Stale and future timestamps, just outside the 5-minute window each way.
    assert_eq!(
        check(vector(V1_SIGNATURE), PAYLOAD, NOW_MS + 301_000).code(),
        "stale_timestamp"
    );
    assert_eq!(
        check(vector(V1_SIGNATURE), PAYLOAD, NOW_MS - 301_000).code(),
        "future_timestamp"
    );
    assert!(
        s.verify(&vector(V1_SIGNATURE), PAYLOAD, NOW_MS + 299_000)
            .is_ok()
    );
    assert!(
        s.verify(&vector(V1_SIGNATURE), PAYLOAD, NOW_MS - 299_000)
            .is_ok()
    );
    let mut bad_ts = vector(V1_SIGNATURE);
    bad_ts.insert(
        "webhook-timestamp",
        HeaderValue::from_static("1614265330.5"),
    );
    assert_eq!(check(bad_ts, PAYLOAD, NOW_MS).code(), "bad_signature");

    // Each missing header.
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut h = vector(V1_SIGNATURE);
        h.remove(name);
        let err = check(h, PAYLOAD, NOW_MS);
        assert_eq!(err.code(), "missing_signature", "{name}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn empty_and_unusable_secrets_are_refused() {
    let build = |s: &str| {
        StandardWebhooks::new(&[Secret::new(s)], FIVE_MIN, &FieldOverrides::default()).err()
    };
    assert_eq!(build("whsec_").map(|(i, _)| i), Some(0), "an empty secret");
    assert!(build("whsec_not base64!").is_some());
    assert!(
        build("whpk_AAAA").is_some(),
        "a public key must be 32 bytes"
    );
    assert!(
        build(&format!("whpk_{}", BASE64.encode([0u8; 32]))).is_some(),
        "a weak key"
    );
    assert!(build("whsk_AAAA").is_some(), "a seed must be 32 bytes");
    let seed = BASE64.decode(V1A_SEED).unwrap();
    let mismatched = BASE64.encode([seed.as_slice(), &[7u8; 32]].concat());
    assert!(build(&format!("whsk_{mismatched}")).is_some());
    let (index, reason) = StandardWebhooks::new(
        &[Secret::new(V1_SECRET), Secret::new("whsec_")],
        FIVE_MIN,
        &FieldOverrides::default(),
    )
    .err()
    .unwrap();
    assert_eq!(index, 1);
    assert!(!reason.contains("MfKQ"), "{reason}");
}

#[test]
fn the_envelope_reads_the_id_header_and_the_type() {
    let s = scheme(&[V1_SECRET]);
    let body = serde_json::to_vec(&json!({"type": "invoice.paid", "data": {}})).unwrap();
    let proof = Proof {
        kind: SignatureKind::HmacSha256,
        key: 0,
        signed_at_ms: Some(NOW_MS),
    };
    let env = s
        .envelope(
            &SourceName::new("billing"),
            &vector(V1_SIGNATURE),
            &body,
            proof,
        )
        .unwrap();
    assert_eq!(env.id.as_str(), MSG_ID);
    assert_eq!(env.kind, "invoice.paid");
    assert_eq!(env.tenant.as_str(), "billing");
    assert_eq!(env.sent_at_ms, Some(NOW_MS));
    let err = s
        .envelope(
            &SourceName::new("billing"),
            &vector(V1_SIGNATURE),
            b"not json",
            proof,
        )
        .unwrap_err();
    assert_eq!(err.code(), "malformed_json");
}
