//! Verification cost per signature scheme: `Source::verify_at` on a signed 1 KiB JSON body, the
//! way ingress runs it (headers parsed, timestamp judged, MAC or signature checked, the body
//! bound to a `Verified`). Next to them, in the same run, two baselines: one bare HMAC-SHA256 of
//! the same bytes (the floor of every shared-secret scheme) and one bare Ed25519 verification.
//!
//! `cargo bench -p wasmhook-benches --bench verify` for the full run, `-- --quick` for the short
//! one CI uses. Every scheme's source is built through the config, as a user's would be.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use ed25519_dalek::{
    Signer, SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use http::{HeaderMap, HeaderValue};
use wasmhook::{
    config::Config,
    ids::now_ms,
    secret::Secret,
    sources::{
        Source,
        sign::{Signing, sign},
    },
};

/// A realistic webhook body of about 1 KiB.
fn body() -> Vec<u8> {
    let value = serde_json::json!({
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "type": "ContactCreate",
        "appId": "bench-app",
        "locationId": "ve9EPM428h8vShlRW1KT",
        "webhookId": "a4b3c2d1-0000-4000-8000-000000000001",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "account": "acct_1Nv0FGQ9RKHgCVdK",
        "event_id": "Ev0PV52K25",
        "team_id": "T0001",
        "event": { "type": "app_mention", "text": "hello" },
        "data": { "object": { "email": "jon@example.com", "name": "Jon", "tags": ["a", "b", "c"],
                   "address": "3535 1st St N", "notes": "x".repeat(600) } },
    });
    serde_json::to_vec(&value).expect("serialising a JSON value")
}

/// A source of `scheme` built through the config, and the headers its sender puts on `body`.
fn signed(
    dir: &Path,
    name: &str,
    toml: &str,
    key: Option<&str>,
    body: &[u8],
) -> (Arc<Source>, HeaderMap) {
    let config =
        Config::parse(&dir.join("wasmhook.toml"), toml).expect("the bench config validates");
    let source_config = config.source(name).expect("the source is configured");
    let key = key.map(Secret::new);
    let headers = sign(
        source_config,
        &Signing {
            key: key.as_ref(),
            now_secs: now_ms() / 1000,
            kind: Some("push"),
        },
        body,
    )
    .expect("signing");
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k, HeaderValue::try_from(v).expect("a header value")))
        .collect();
    let source = Arc::new(Source::from_config(source_config).expect("the source builds"));
    (source, headers)
}

fn schemes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let body = body();
    let mut cases: Vec<(&str, Arc<Source>, HeaderMap)> = Vec::new();

    // Shared-secret schemes, each with one secret in a file.
    for (name, scheme, secret, extra) in [
        (
            "standard-webhooks-v1",
            "standard-webhooks",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "",
        ),
        ("github", "github", "bench-secret", ""),
        ("stripe", "stripe", "whsec_bench", ""),
        ("shopify", "shopify", "bench-secret", ""),
        ("slack", "slack", "bench-secret", ""),
        (
            "hmac-sha512",
            "hmac",
            "bench-secret",
            "header = \"X-Signature\"\nalgorithm = \"sha512\"\n",
        ),
    ] {
        let file = dir.path().join(format!("{name}.secret"));
        std::fs::write(&file, secret).expect("writing a secret");
        let toml = format!(
            "[[sources]]\nname = \"{name}\"\nscheme = \"{scheme}\"\nsecrets = [{{ file = \"{}\" }}]\n{extra}",
            file.display()
        );
        let (source, headers) = signed(dir.path(), name, &toml, None, &body);
        cases.push((name, source, headers));
    }

    // Standard Webhooks v1a: an Ed25519 secret key.
    let file = dir.path().join("v1a.secret");
    std::fs::write(&file, "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=")
        .expect("writing a key");
    let toml = format!(
        "[[sources]]\nname = \"v1a\"\nscheme = \"standard-webhooks\"\nsecrets = [{{ file = \"{}\" }}]\n",
        file.display()
    );
    let (source, headers) = signed(dir.path(), "v1a", &toml, None, &body);
    cases.push(("standard-webhooks-v1a", source, headers));

    // HighLevel: Ed25519 (x-ghl-signature) and the legacy RSA-2048 (x-wh-signature; HighLevel's
    // own key is 4096-bit, so its cost is about four times this).
    let ed = SigningKey::generate(&mut rand::rngs::OsRng);
    let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key");
    let ed_public = ed
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("PEM");
    let rsa_public =
        rsa::pkcs8::EncodePublicKey::to_public_key_pem(&rsa.to_public_key(), LineEnding::LF)
            .expect("PEM");
    let toml = format!(
        "[[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"bench-app\"\n\
         ed25519_keys = [{{ pem = \"\"\"\n{ed_public}\"\"\" }}]\nrsa_keys = [{{ pem = \"\"\"\n{rsa_public}\"\"\" }}]\n"
    );
    let ed_private = ed.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
    let (source, headers) = signed(dir.path(), "hl", &toml, Some(&ed_private), &body);
    cases.push(("highlevel-ed25519", source, headers));
    let rsa_private = rsa.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
    let (source, headers) = signed(dir.path(), "hl", &toml, Some(&rsa_private), &body);
    cases.push(("highlevel-rsa2048", source, headers));

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let bytes = Bytes::from(body.clone());
    for (name, source, headers) in &cases {
        // Checked once outside the loop: a benchmark of a failing path would measure nothing.
        source
            .verify_at(headers, bytes.clone(), now_ms())
            .unwrap_or_else(|e| panic!("{name} does not verify: {e}"));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let verified =
                    source.verify_at(black_box(headers), black_box(bytes.clone()), now_ms());
                black_box(verified.is_ok())
            })
        });
    }

    // Baselines in the same run.
    group.bench_function("baseline/hmac-sha256", |b| {
        use hmac::{Hmac, Mac};
        let key = Hmac::<sha2::Sha256>::new_from_slice(b"bench-secret").expect("any key length");
        b.iter(|| {
            let mut mac = key.clone();
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes())
        })
    });
    let signature = ed.sign(&body);
    let public = ed.verifying_key();
    group.bench_function("baseline/ed25519-verify", |b| {
        b.iter(|| black_box(public.verify_strict(black_box(&body), &signature).is_ok()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = schemes
}
criterion_main!(benches);
