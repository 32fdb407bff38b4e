//! The periodic check: every `alerts.check_interval` it reads the delivery queue (one cheap
//! indexed store read) into the gauges `wasmhook_queue_pending`, `wasmhook_queue_running` and
//! `wasmhook_queue_oldest_due_seconds`, raises or resolves the `queue_age` alert, lets the
//! windowed alert rules resolve once traffic has stopped, and checks the token health
//! (`auth::health`: gauges and the `token_expiry` rule) — also at once after each refresh
//! outcome, so the gauges follow refreshes without waiting for the next tick.

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    alerts::{self, AlertKind},
    auth::{StoredTokens, health::Checker},
    ids::{ApiName, now_ms},
    store::{AnyStore, Store},
};

/// The subject of the queue-age alert.
const QUEUE: &str = "queue";
/// Token health checks woken by refresh outcomes run at most this often: a burst of refreshes
/// is one walk of the credentials, not one each.
const TOKEN_CHECK_GAP: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true; `apis` are the configured APIs (the token gauges' labels).
pub async fn run(
    store: AnyStore,
    tokens: StoredTokens,
    apis: Vec<ApiName>,
    mut stop: watch::Receiver<bool>,
) {
    let config = alerts::config();
    let mut tick = tokio::time::interval(config.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tokens_health = Checker::default();
    let mut last_token_check = tokio::time::Instant::now();
    loop {
        let periodic = tokio::select! {
            _ = tick.tick() => true,
            _ = async {
                tokens.health_changed().await;
                tokio::time::sleep_until(last_token_check + TOKEN_CHECK_GAP).await;
            } => false,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        last_token_check = tokio::time::Instant::now();
        if periodic {
            check_queue(&store, config.queue_age).await;
            alerts::evaluate();
        }
        if let Err(e) = tokens_health
            .check(&tokens, &apis, config.token_expiry_horizon)
            .await
        {
            tracing::warn!(error = %e, "reading the credentials for the token health failed; will try again");
        }
    }
}

async fn check_queue(store: &AnyStore, limit: Duration) {
    let stats = match store.queue_stats(now_ms()).await {
        Ok(stats) => stats,
        Err(e) => {
            tracing::warn!(error = %e, "reading the queue for its gauges failed; will try again");
            return;
        }
    };
    metrics::gauge!("wasmhook_queue_pending").set(stats.pending as f64);
    metrics::gauge!("wasmhook_queue_running").set(stats.running as f64);
    let age = Duration::from_millis(u64::try_from(stats.oldest_due_age_ms).unwrap_or(0));
    metrics::gauge!("wasmhook_queue_oldest_due_seconds").set(age.as_secs_f64());
    if age > limit {
        alerts::raise(
            AlertKind::QueueAge,
            QUEUE,
            &format!(
                "the most overdue delivery has waited {}s past its due time (limit {}s); {} pending, {} running: add workers or look for a stuck plugin",
                age.as_secs(),
                limit.as_secs(),
                stats.pending,
                stats.running
            ),
        );
    } else {
        alerts::resolve(
            AlertKind::QueueAge,
            QUEUE,
            &format!("the most overdue delivery is {}s late", age.as_secs()),
        );
    }
}
