//! HTTPS and live rotation, on the real binary: the server answers HTTPS with a certificate
//! made in the test; after the certificate and a source secret are replaced on disk and SIGHUP
//! is sent, the new ones are in force, while traffic that kept flowing the whole time (on kept
//! connections and on new ones) saw no failed request.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use wasmhook_tests::{
    ChildServer, TestServer,
    signing::{Scheme, now_secs},
};

use crate::schemes::with_scheme_named;

/// A certificate authority and a `localhost` certificate it issued (PEM texts).
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.pem(),
        cert: leaf.pem(),
        key: leaf_key.serialize_pem(),
    }
}

/// An HTTPS client for the server at `addr` (as `localhost`) trusting `cas`.
fn client(addr: SocketAddr, cas: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false);
    for ca in cas {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// Posts a GitHub delivery signed with `secret` to `source`; returns the status.
async fn deliver(
    client: &reqwest::Client,
    addr: SocketAddr,
    source: &str,
    secret: &str,
) -> reqwest::Result<u16> {
    let id = uuid::Uuid::new_v4().to_string();
    let body = Scheme::GitHub.body(&id, "push", "1");
    let mut request = client
        .post(format!(
            "https://localhost:{}/webhooks/{source}",
            addr.port()
        ))
        .header("content-type", "application/json")
        .body(body.clone());
    for (k, v) in Scheme::GitHub.headers(secret, &body, now_secs(), &id, "push") {
        request = request.header(k, v);
    }
    Ok(request.send().await?.status().as_u16())
}

#[tokio::test]
async fn https_with_a_test_certificate_and_sighup_rotation_without_a_failed_request() {
    let (old, new) = (pki("old"), pki("new"));
    let builder = TestServer::builder()
        .toml("[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n");
    let dir = builder.dir().to_path_buf();
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    std::fs::write(dir.join("tls/cert.pem"), &old.cert).unwrap();
    std::fs::write(dir.join("tls/key.pem"), &old.key).unwrap();
    let (builder, rotated_old) = with_scheme_named(builder, Scheme::GitHub, "rotated");
    let (builder, stable) = with_scheme_named(builder, Scheme::GitHub, "stable");
    let (config, _dir) = builder.write();
    let server = ChildServer::start(&config, &[]).await;
    let addr = server.public;
    assert!(server.log_text().contains("https"), "{}", server.log_text());

    let both = client(addr, &[&old.ca, &new.ca]);
    assert_eq!(
        deliver(&both, addr, "rotated", &rotated_old).await.unwrap(),
        200
    );
    let old_only = client(addr, &[&old.ca]);
    assert_eq!(
        deliver(&old_only, addr, "stable", &stable).await.unwrap(),
        200
    );
    assert!(
        deliver(&client(addr, &[&new.ca]), addr, "stable", &stable)
            .await
            .is_err(),
        "the new certificate is not served yet"
    );

    // Traffic that never stops: one kept-alive client, and a new client (a new connection and
    // handshake) every few requests.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (stop, sent, failed, stable) =
            (stop.clone(), sent.clone(), failed.clone(), stable.clone());
        let cas = [old.ca.clone(), new.ca.clone()];
        tokio::spawn(async move {
            let kept = client(addr, &[&cas[0], &cas[1]]);
            let mut errors = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let fresh;
                let c = if n % 4 == 3 {
                    fresh = client(addr, &[&cas[0], &cas[1]]);
                    &fresh
                } else {
                    &kept
                };
                match deliver(c, addr, "stable", &stable).await {
                    Ok(200) => {}
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            errors
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Rotate: a new certificate and key, a new secret for `rotated`; then SIGHUP.
    let rotated_new = Scheme::GitHub.new_secret();
    std::fs::write(dir.join("tls/cert.pem"), &new.cert).unwrap();
    std::fs::write(dir.join("tls/key.pem"), &new.key).unwrap();
    std::fs::write(dir.join("rotated.secret"), &rotated_new).unwrap();
    let pid = server.pid().expect("the server runs") as i32;
    // SAFETY: kill(2) with our own child's pid and a valid signal number.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if deliver(&both, addr, "rotated", &rotated_new).await.ok() == Some(200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new secret is not in force; log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        deliver(&both, addr, "rotated", &rotated_old).await.unwrap(),
        401,
        "the replaced secret is no longer accepted"
    );
    // New handshakes get the new certificate.
    assert_eq!(
        deliver(&client(addr, &[&new.ca]), addr, "stable", &stable)
            .await
            .unwrap(),
        200
    );
    assert!(
        deliver(&client(addr, &[&old.ca]), addr, "stable", &stable)
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    // The connection opened before the reload still works.
    assert_eq!(
        deliver(&old_only, addr, "stable", &stable).await.unwrap(),
        200
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let errors = traffic.await.unwrap();
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent >= 20, "only {sent} requests were sent");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests: {errors:?}"
    );
    assert!(
        server.log_text().contains("reloaded the TLS certificate"),
        "{}",
        server.log_text()
    );
    server.kill().await;
}
