//! Interop: signatures made by independent implementations are accepted by the real server —
//! the Python `standardwebhooks` package (Standard Webhooks `v1`), Python's own `hmac` for
//! GitHub, Stripe, Slack and Shopify (`tests/interop/sign.py`), and the `openssl` command line
//! for Ed25519 (HighLevel `x-ghl-signature`, Standard Webhooks `v1a`) and RSA (HighLevel's
//! legacy `x-wh-signature`).
//!
//! The Python package lives in a virtualenv under the target dir; `scripts/prepare` creates it,
//! and this test creates it too when it is missing (pip from the package registry).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use wasmhook_tests::{
    APP_ID, TestServer, fixtures,
    signing::{Scheme, now_secs},
};

use crate::schemes::with_scheme;

/// The interop virtualenv's Python, created (with `standardwebhooks`) if missing.
fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| wasmhook_tests::repo_root().join("target"));
    let venv = target.join("interop-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "standardwebhooks",
        ]));
        assert!(
            ready(&python),
            "standardwebhooks did not install into {}",
            venv.display()
        );
    }
    python
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Headers from `tests/interop/sign.py` for each request.
fn python_sign(requests: &[Value]) -> Vec<Vec<(String, String)>> {
    let script = wasmhook_tests::repo_root().join("tests/interop/sign.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the Python signer");
    {
        let mut stdin = child.stdin.take().unwrap();
        for request in requests {
            writeln!(stdin, "{request}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let answer: Value = serde_json::from_str(line).unwrap();
            answer["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .collect()
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    run(Command::new("openssl").current_dir(dir).args(args))
}

async fn post(
    server: &TestServer,
    source: &str,
    body: &[u8],
    headers: &[(String, String)],
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
async fn python_signatures_are_accepted() {
    let mut builder = TestServer::builder();
    let mut secrets = Vec::new();
    for scheme in [
        Scheme::StandardWebhooks,
        Scheme::GitHub,
        Scheme::Stripe,
        Scheme::Slack,
        Scheme::Shopify,
    ] {
        let (next, secret) = with_scheme(builder, scheme);
        builder = next;
        secrets.push((scheme, secret));
    }
    let server = builder.spawn().await;
    let ts = now_secs();
    let mut requests = Vec::new();
    let mut bodies = Vec::new();
    for (scheme, secret) in &secrets {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let body = scheme.body(&id, "thing.happened", "7");
        requests.push(json!({
            "scheme": scheme.name(), "secret": secret, "id": id, "timestamp": ts,
            "body": STANDARD.encode(&body),
        }));
        bodies.push((*scheme, id, body));
    }
    let signed = python_sign(&requests);
    for ((scheme, id, body), headers) in bodies.iter().zip(&signed) {
        let (status, answer) = post(&server, scheme.name(), body, headers).await;
        assert_eq!(status, 200, "{}: {answer}", scheme.name());
        assert_eq!(answer["event_id"], id.as_str(), "{}", scheme.name());
    }
}

#[tokio::test]
async fn openssl_ed25519_and_rsa_signatures_are_accepted() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    let ed_public = String::from_utf8(openssl(dir, &["pkey", "-in", "ed.pem", "-pubout"])).unwrap();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    let rsa_public =
        String::from_utf8(openssl(dir, &["pkey", "-in", "rsa.pem", "-pubout"])).unwrap();
    // The raw 32-byte Ed25519 public key is the end of its DER SubjectPublicKeyInfo.
    let der = openssl(
        dir,
        &["pkey", "-in", "ed.pem", "-pubout", "-outform", "DER"],
    );
    let whpk = format!("whpk_{}", STANDARD.encode(&der[der.len() - 32..]));

    let sign_ed = |message: &[u8]| {
        std::fs::write(dir.join("message"), message).unwrap();
        openssl(
            dir,
            &[
                "pkeyutl", "-sign", "-inkey", "ed.pem", "-rawin", "-in", "message",
            ],
        )
    };
    let sign_rsa = |message: &[u8]| {
        std::fs::write(dir.join("message"), message).unwrap();
        openssl(dir, &["dgst", "-sha256", "-sign", "rsa.pem", "message"])
    };

    let builder = TestServer::builder().toml(&format!(
        "[[sources]]\nname = \"highlevel\"\nscheme = \"highlevel\"\napp_id = \"{APP_ID}\"\n\
         require_installation = false\n\
         ed25519_keys = [{{ pem = \"\"\"\n{ed_public}\"\"\" }}]\nrsa_keys = [{{ pem = \"\"\"\n{rsa_public}\"\"\" }}]\n"
    ));
    std::fs::write(builder.dir().join("sw.key"), &whpk).unwrap();
    let server = builder
        .toml("[[sources]]\nname = \"sw\"\nscheme = \"standard-webhooks\"\nsecrets = [{ file = \"sw.key\" }]\n")
        .spawn()
        .await;

    let body = fixtures::highlevel_signed_body("contact-create", APP_ID, "wh-openssl-ed");
    let ghl = vec![(
        "x-ghl-signature".to_string(),
        STANDARD.encode(sign_ed(&body)),
    )];
    let (status, answer) = post(&server, "highlevel", &body, &ghl).await;
    assert_eq!(status, 200, "Ed25519 from openssl: {answer}");

    let body = fixtures::highlevel_signed_body("contact-create", APP_ID, "wh-openssl-rsa");
    let legacy = vec![(
        "x-wh-signature".to_string(),
        STANDARD.encode(sign_rsa(&body)),
    )];
    let (status, answer) = post(&server, "highlevel", &body, &legacy).await;
    assert_eq!(status, 200, "RSA from openssl: {answer}");

    let (id, ts) = ("msg_openssl_v1a", now_secs());
    let body = br#"{"type":"invoice.paid"}"#;
    let content = [format!("{id}.{ts}.").as_bytes(), body].concat();
    let sw = vec![
        ("webhook-id".to_string(), id.to_string()),
        ("webhook-timestamp".to_string(), ts.to_string()),
        (
            "webhook-signature".to_string(),
            format!("v1a,{}", STANDARD.encode(sign_ed(&content))),
        ),
    ];
    let (status, answer) = post(&server, "sw", body, &sw).await;
    assert_eq!(status, 200, "v1a from openssl: {answer}");
}
