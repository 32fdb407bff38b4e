//! The signed POST of alerts: a bounded queue and one task that sends each notice as JSON signed
//! with Standard Webhooks `v1`, so any receiver's library verifies it.
//!
//! Invariants: raising never waits on the network (a full queue drops the notice, counted and
//! logged); one notice keeps its `webhook-id` across retries (receivers de-duplicate on it) and
//! is signed afresh with the current time on each attempt; the secret never leaves this task.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::{ids::now_ms, secret::Secret, sources::standard_webhooks};

/// Notices waiting to be sent; beyond this, new ones are dropped rather than block the caller.
const QUEUE: usize = 256;
/// Attempts per notice: the first and four retries, 1 s, 2 s, 4 s and 8 s apart.
const ATTEMPTS: u32 = 5;
/// Longest wait for one POST's answer.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A queue into the sending task.
#[derive(Debug)]
pub(super) struct Sink {
    tx: mpsc::Sender<Vec<u8>>,
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("alerts.secret: {0}; give a Standard Webhooks secret (whsec_ followed by base64)")]
    BadSecret(&'static str),
    #[error("alerts.secret: cannot read {reference}: {error}")]
    Read {
        reference: String,
        error: crate::secret::SecretError,
    },
    #[error("alerts.url: cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Sink {
    /// Starts the sending task (on the current tokio runtime). The secret is checked here, so
    /// a bad one stops start-up instead of failing each POST.
    pub(super) fn start(url: reqwest::Url, secret: Secret) -> Result<Sink, SinkError> {
        standard_webhooks::sign(secret.expose(), "check", 0, b"").map_err(SinkError::BadSecret)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .use_rustls_tls()
            .timeout(POST_TIMEOUT)
            .user_agent(concat!("wasmhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send_all(rx, http, url, secret));
        Ok(Sink { tx })
    }

    /// Queues `body` without waiting.
    pub(super) fn send(&self, body: Vec<u8>) {
        if self.tx.try_send(body).is_err() {
            tracing::warn!("the alert queue is full or closed; this alert is only in the log");
            posted("dropped");
        }
    }
}

fn posted(result: &'static str) {
    metrics::counter!("wasmhook_alert_posts_total", "result" => result).increment(1);
}

async fn send_all(
    mut rx: mpsc::Receiver<Vec<u8>>,
    http: reqwest::Client,
    url: reqwest::Url,
    secret: Secret,
) {
    while let Some(body) = rx.recv().await {
        let id = format!("alert_{}", uuid::Uuid::new_v4().simple());
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let ts = now_ms() / 1000;
            let outcome = match standard_webhooks::sign(secret.expose(), &id, ts, &body) {
                Ok(signature) => http
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", signature)
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())
                    .and_then(|r| {
                        if r.status().is_success() {
                            Ok(())
                        } else {
                            Err(format!("answered {}", r.status()))
                        }
                    }),
                Err(reason) => Err(reason.to_string()),
            };
            match outcome {
                Ok(()) => {
                    posted("sent");
                    break;
                }
                Err(error) if attempt == ATTEMPTS => {
                    tracing::error!(
                        id,
                        attempts = attempt,
                        error,
                        "could not POST an alert; it is only in the log"
                    );
                    posted("failed");
                }
                Err(error) => {
                    tracing::warn!(id, attempt, error, "alert POST failed; will retry");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}
