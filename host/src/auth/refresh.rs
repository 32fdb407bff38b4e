//! The background refresher: every `check_interval` it walks the stored credentials and
//! - refreshes an OAuth (or minted) token once less than `refresh_when_left` of its lifetime is
//!   left, or once it is older than `idle_refresh` (so an idle installation's refresh token,
//!   valid a year at HighLevel, never lapses);
//! - raises `token_age` for a static token older than `rotate_after` (once per token).
//!
//! A failed refresh is retried with backoff (1 s, 2 s, 4 s, ... up to 5 minutes) while the
//! token is still due; each failure is logged, counted and alerted by `tokens`. Refreshes go
//! through [`StoredTokens::refresh_if`], so they share the single flight of calls that find
//! the token expired.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::tokens::StoredTokens;
use crate::{
    alerts::{self, AlertKind},
    config::CredentialsConfig,
    ids::{ApiName, TenantId, now_ms},
    store::{CredentialKind, CredentialRecord, Store},
};

/// Credentials read per page.
const PAGE: usize = 256;
/// Longest wait between retries of a failing refresh.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Whether `record` should be refreshed now under `config`.
pub fn due(config: &CredentialsConfig, record: &CredentialRecord, now_ms: i64) -> bool {
    if record.kind == CredentialKind::Static || record.refresh.is_none() {
        return false;
    }
    let age = now_ms - record.issued_at_ms;
    if age >= config.idle_refresh.as_millis() as i64 {
        return true;
    }
    match record.expires_at_ms {
        Some(expires) => {
            let lifetime = (expires - record.issued_at_ms).max(1) as f64;
            let left = (expires - now_ms) as f64;
            left < lifetime * config.refresh_when_left
        }
        None => false,
    }
}

/// When `record` becomes due under `config` (ms since the epoch), or None for a credential the
/// refresher never refreshes (static, or without a refresh token). Agrees with [`due`] to the
/// millisecond.
pub fn due_at(config: &CredentialsConfig, record: &CredentialRecord) -> Option<i64> {
    if record.kind == CredentialKind::Static || record.refresh.is_none() {
        return None;
    }
    let idle = record.issued_at_ms + config.idle_refresh.as_millis() as i64;
    let share = record.expires_at_ms.map(|expires| {
        let lifetime = (expires - record.issued_at_ms).max(1) as f64;
        expires - (lifetime * config.refresh_when_left).floor() as i64
    });
    Some(share.map_or(idle, |share| share.min(idle)))
}

/// Runs until `stop` turns true.
pub async fn run(tokens: StoredTokens, mut stop: watch::Receiver<bool>) {
    let config = tokens.config().clone();
    let mut backoff: HashMap<(ApiName, TenantId), (Instant, u32)> = HashMap::new();
    let mut alerted: HashSet<(ApiName, TenantId, i64)> = HashSet::new();
    loop {
        if let Err(e) = pass(&tokens, &config, &mut backoff, &mut alerted).await {
            tracing::error!(error = %e, "the token refresher could not read the credentials");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.check_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn pass(
    tokens: &StoredTokens,
    config: &CredentialsConfig,
    backoff: &mut HashMap<(ApiName, TenantId), (Instant, u32)>,
    alerted: &mut HashSet<(ApiName, TenantId, i64)>,
) -> Result<(), crate::store::StoreError> {
    let store = tokens.vault().store().clone();
    let mut after = None;
    loop {
        let page = store.credentials(after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some((last.api.clone(), last.tenant.clone()));
        for record in page {
            let now = now_ms();
            if record.kind == CredentialKind::Static {
                let age = Duration::from_millis((now - record.issued_at_ms).max(0) as u64);
                if age > config.rotate_after
                    && alerted.insert((
                        record.api.clone(),
                        record.tenant.clone(),
                        record.issued_at_ms,
                    ))
                {
                    alerts::raise(
                        AlertKind::TokenAge,
                        &super::subject(&record.api, &record.tenant),
                        &format!(
                            "the static token is {} days old (rotate_after is {} days); rotate it with `wasmhook tokens rotate`",
                            age.as_secs() / 86_400,
                            config.rotate_after.as_secs() / 86_400
                        ),
                    );
                }
                continue;
            }
            if !due(config, &record, now) {
                continue;
            }
            let key = (record.api.clone(), record.tenant.clone());
            if backoff
                .get(&key)
                .is_some_and(|(next, _)| *next > Instant::now())
            {
                continue;
            }
            let result = tokens
                .refresh_if(&record.api, &record.tenant, |r| due(config, r, now_ms()))
                .await;
            match result {
                Ok(_) => {
                    backoff.remove(&key);
                }
                Err(e) => {
                    let failures = backoff.get(&key).map_or(0, |(_, n)| *n) + 1;
                    let wait = Duration::from_secs(1u64 << (failures - 1).min(16)).min(MAX_BACKOFF);
                    tracing::warn!(api = %record.api, tenant = %record.tenant, error = %e, retry_in_ms = wait.as_millis() as u64, "background token refresh failed");
                    backoff.insert(key, (Instant::now() + wait, failures));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: CredentialKind, issued: i64, expires: Option<i64>) -> CredentialRecord {
        CredentialRecord {
            api: ApiName::new("hl"),
            tenant: TenantId::new("t"),
            kind,
            key_id: "k".into(),
            access: vec![1],
            refresh: Some(vec![2]),
            previous: None,
            previous_until_ms: None,
            expires_at_ms: expires,
            issued_at_ms: issued,
            scopes: String::new(),
            user_type: None,
            company: None,
            refresh_lease_until_ms: None,
            version: 1,
        }
    }

    #[test]
    fn due_when_under_the_share_of_lifetime_or_idle_too_long() {
        let config = CredentialsConfig::default();
        let day = 86_400_000;
        let oauth = record(CredentialKind::Oauth, 0, Some(day));
        assert!(!due(&config, &oauth, day / 2));
        assert!(!due(&config, &oauth, day - day / 10 - 1));
        assert!(due(&config, &oauth, day - day / 10 + 1));
        // A token without expiry is refreshed once idle for `idle_refresh`.
        let long = record(CredentialKind::Oauth, 0, None);
        assert!(!due(&config, &long, 29 * day));
        assert!(due(&config, &long, 30 * day));
        assert!(!due(
            &config,
            &record(CredentialKind::Static, 0, None),
            400 * day
        ));
        let mut minted = record(CredentialKind::Minted, 0, Some(day));
        minted.refresh = None;
        assert!(
            !due(&config, &minted, day),
            "minted without refresh: re-minted on use"
        );
        assert_eq!(due_at(&config, &minted), None);
    }

    #[test]
    fn due_at_is_when_due_turns_true() {
        let config = CredentialsConfig::default();
        let day = 86_400_000;
        for record in [
            record(CredentialKind::Oauth, 0, Some(day)),
            record(CredentialKind::Oauth, 5, Some(7_777)),
            record(CredentialKind::Minted, 0, Some(60 * day)),
            record(CredentialKind::Oauth, 0, None),
        ] {
            let at = due_at(&config, &record).unwrap();
            assert!(!due(&config, &record, at - 1), "{at}");
            assert!(due(&config, &record, at + 1), "{at}");
        }
        assert_eq!(
            due_at(&config, &record(CredentialKind::Static, 0, None)),
            None
        );
    }
}
