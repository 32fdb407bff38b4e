//! The listener's limits through the real server: a 50 MB body is refused after at most the cap
//! plus 64 KiB was read (the server's own bytes-read counter says so), and a sender that is slow
//! with its headers or its body is cut at the timeout, over HTTP/1.1 and HTTP/2.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::Frame;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use wasmhook_tests::{TestServer, signing::Scheme};

use crate::schemes::with_scheme_named;

/// The server's body cap in these tests.
const CAP: u64 = 1 << 20;
/// What may be read past the cap: one read buffer (64 KiB).
const SLACK: u64 = 64 * 1024;
/// The header and body timeouts in these tests.
const TIMEOUT: Duration = Duration::from_secs(1);

async fn server(source: &str) -> TestServer {
    let builder = TestServer::builder().server(&format!(
        "max_body = \"{CAP}\"\nheader_timeout = \"{}ms\"\nbody_timeout = \"{}ms\"\n",
        TIMEOUT.as_millis(),
        TIMEOUT.as_millis()
    ));
    let (builder, _secret) = with_scheme_named(builder, Scheme::GitHub, source);
    builder.spawn().await
}

/// `wasmhook_ingress_body_bytes_total{source="<source>"}` from `/metrics`.
async fn bytes_read(server: &TestServer, source: &str) -> u64 {
    let metrics = server.metrics().await;
    let label = format!("source=\"{source}\"");
    metrics
        .lines()
        .find(|l| l.starts_with("wasmhook_ingress_body_bytes_total") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Reads what the server sends until it closes the connection (or 10 s pass).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Reads one HTTP/1.1 response (head and a `content-length` body) within 10 s.
async fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if out.len() >= end + 4 + length {
                    break;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

fn status_of(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_50_mb_body_gets_413_after_at_most_the_cap_plus_64_kib_was_read() {
    let server = server("cap").await;
    let stream = TcpStream::connect(server.public).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Chunked, so the server cannot refuse by the declared length: it must count while reading.
    writer
        .write_all(
            b"POST /webhooks/cap HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        let chunk = [b' '; 64 * 1024];
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        for _ in 0..(50 * 1024 * 1024 / chunk.len()) {
            // The server stops reading and closes: later writes fail, which is the point.
            if writer.write_all(&framed).await.is_err() {
                break;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        status_of(&response).contains(" 413 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
    sender.abort();
    let read = bytes_read(&server, "cap").await;
    assert!(
        (CAP..=CAP + SLACK).contains(&read),
        "the server read {read} bytes of a 50 MB body (cap {CAP})"
    );

    // A declared length over the cap is refused before any of it is read.
    let mut stream = TcpStream::connect(server.public).await.unwrap();
    stream
        .write_all(b"POST /webhooks/cap HTTP/1.1\r\nhost: test\r\ncontent-length: 52428800\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert!(
        status_of(&response).contains(" 413 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert_eq!(
        bytes_read(&server, "cap").await,
        read,
        "nothing more was read"
    );
}

#[tokio::test]
async fn a_slow_header_is_cut_at_the_timeout_over_http1_and_http2() {
    let server = server("slow-header").await;

    // HTTP/1.1: part of a request head, then nothing.
    let mut stream = TcpStream::connect(server.public).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /webhooks/slow-header HTTP/1.1\r\nhost: test\r\nx-hub-signature")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(
        status_of(&response).contains(" 408 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(String::from_utf8_lossy(&response).contains("header_timeout"));
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50) && elapsed < TIMEOUT * 4,
        "{elapsed:?}"
    );

    // HTTP/2 (prior knowledge): the preface, SETTINGS, and a HEADERS frame whose header block
    // never ends (no END_HEADERS, no CONTINUATION).
    let mut stream = TcpStream::connect(server.public).await.unwrap();
    let started = Instant::now();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    // HEADERS on stream 1, flags 0: HPACK-indexed :method POST, :scheme http, :path /.
    bytes.extend_from_slice(&[0, 0, 3, 0x1, 0, 0, 0, 0, 1, 0x83, 0x86, 0x84]);
    stream.write_all(&bytes).await.unwrap();
    let _ = read_until_closed(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50) && elapsed < TIMEOUT * 4,
        "HTTP/2 connection closed after {elapsed:?}"
    );
}

/// A request body that sends one chunk and then stalls forever.
struct Stalling {
    sent: bool,
}

impl http_body::Body for Stalling {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"action\":")))))
    }
}

#[tokio::test]
async fn a_slow_body_gets_408_at_the_timeout_over_http1_and_http2() {
    let server = server("slow-body").await;

    // HTTP/1.1: a declared length, a tenth of the body, then nothing.
    let mut stream = TcpStream::connect(server.public).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /webhooks/slow-body HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n{\"action\":")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&response);
    assert!(status_of(&response).contains(" 408 "), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50) && elapsed < TIMEOUT * 4,
        "{elapsed:?}"
    );

    // HTTP/2 (prior knowledge), through a real HTTP/2 client.
    let tcp = TcpStream::connect(server.public).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{}/webhooks/slow-body", server.public))
        .header("content-type", "application/json")
        .body(Stalling { sent: false })
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("an answer before the test gives up")
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 408);
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50) && elapsed < TIMEOUT * 4,
        "{elapsed:?}"
    );
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("body_timeout"));
}
