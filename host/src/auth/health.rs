//! Token health (DESIGN.md §8): gauges per configured API, with no tenant label —
//! - `wasmhook_token_expiry_soonest_seconds{api}`: seconds until the soonest expiry among the
//!   access tokens the refresher keeps current (OAuth and minted tokens that have a refresh
//!   token); negative once one has expired; NaN when the API has none;
//! - `wasmhook_installations_refresh_failing{api}`: installations whose last refresh or mint in
//!   this process failed for a reason worth retrying (the refresher keeps retrying them);
//! - `wasmhook_installations_needs_reauth{api}`: installations in state `needs-reauth`;
//! - `wasmhook_static_token_oldest_age_seconds{api}`: age of the oldest static (private
//!   integration) token; NaN when the API has none —
//!
//! and the `token_expiry` alert rule: an installation whose access token expires within
//! `[alerts.token_expiry] horizon` and was not refreshed although it was due (its last refresh
//! failed, or none was tried two refresher intervals after it fell due) raises one alert per
//! incident, resolved when a new token is stored (`StoredTokens` resolves it at once).
//!
//! [`Checker::check`] runs in the monitor, every `alerts.check_interval` and again after each
//! refresh outcome. It reads the credential rows' metadata only (it never opens a sealed field)
//! and one installation list per API.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use super::{refresh::due_at, tokens::StoredTokens};
use crate::{
    alerts::{self, AlertKind},
    config::CredentialsConfig,
    ids::{ApiName, TenantId, now_ms},
    installations::InstallationState,
    store::{CredentialKind, CredentialRecord, Store, StoreError},
};

/// Credentials read per page.
const PAGE: usize = 256;

/// One API's token health at a moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiHealth {
    /// The soonest expiry of a token the refresher keeps current, ms since the epoch.
    pub soonest_expiry_ms: Option<i64>,
    pub refresh_failing: u64,
    pub needs_reauth: u64,
    /// When the oldest static token was issued, ms since the epoch.
    pub oldest_static_issued_ms: Option<i64>,
}

impl ApiHealth {
    /// Adds one credential row.
    pub fn add(&mut self, record: &CredentialRecord) {
        match record.kind {
            CredentialKind::Static => {
                let oldest = self.oldest_static_issued_ms.get_or_insert(i64::MAX);
                *oldest = (*oldest).min(record.issued_at_ms);
            }
            CredentialKind::Oauth | CredentialKind::Minted => {
                if let (Some(expires), Some(_)) = (record.expires_at_ms, &record.refresh) {
                    let soonest = self.soonest_expiry_ms.get_or_insert(i64::MAX);
                    *soonest = (*soonest).min(expires);
                }
            }
        }
    }

    /// Sets the gauges of `api` as of `now_ms`.
    pub fn publish(&self, api: &ApiName, now_ms: i64) {
        let secs = |ms: i64| ms as f64 / 1000.0;
        let api = api.to_string();
        metrics::gauge!("wasmhook_token_expiry_soonest_seconds", "api" => api.clone()).set(
            self.soonest_expiry_ms
                .map_or(f64::NAN, |at| secs(at - now_ms)),
        );
        metrics::gauge!("wasmhook_installations_refresh_failing", "api" => api.clone())
            .set(self.refresh_failing as f64);
        metrics::gauge!("wasmhook_installations_needs_reauth", "api" => api.clone())
            .set(self.needs_reauth as f64);
        metrics::gauge!("wasmhook_static_token_oldest_age_seconds", "api" => api).set(
            self.oldest_static_issued_ms
                .map_or(f64::NAN, |at| secs(now_ms - at).max(0.0)),
        );
    }
}

/// Why `record` breaks the `token_expiry` rule at `now_ms`, or None: its token expires within
/// `horizon` and it was not refreshed although due — `failing` (its last refresh failed), or
/// due for longer than two refresher intervals (no refresh was even tried).
pub fn expiring(
    config: &CredentialsConfig,
    record: &CredentialRecord,
    failing: bool,
    horizon: Duration,
    now_ms: i64,
) -> Option<String> {
    let expires = record.expires_at_ms?;
    let due = due_at(config, record)?;
    let left = expires - now_ms;
    if left > horizon.as_millis() as i64 || now_ms < due {
        return None;
    }
    let grace = 2 * config.check_interval.as_millis() as i64;
    let why = if failing {
        "its last refresh failed (see the token_refresh alert)".to_string()
    } else if now_ms - due >= grace {
        format!(
            "no refresh was tried in the {}s since it fell due (is the refresher running?)",
            (now_ms - due) / 1000
        )
    } else {
        return None;
    };
    let when = if left >= 0 {
        format!("expires in {}s", left / 1000)
    } else {
        format!("expired {}s ago", -left / 1000)
    };
    Some(format!(
        "the access token {when} (horizon {}s) and was not refreshed: {why}; deliveries of this installation will fail once it expires",
        horizon.as_secs()
    ))
}

/// The periodic check. Remembers the installations it raised `token_expiry` for, to resolve
/// those whose credential went away for another reason than a refusal.
#[derive(Debug, Default)]
pub struct Checker {
    open: HashSet<(ApiName, TenantId)>,
}

impl Checker {
    /// Reads every credential and installation, publishes the gauges of `apis` and raises or
    /// resolves `token_expiry` with `horizon`.
    pub async fn check(
        &mut self,
        tokens: &StoredTokens,
        apis: &[ApiName],
        horizon: Duration,
    ) -> Result<(), StoreError> {
        let store = tokens.vault().store();
        let config = tokens.config();
        let mut health: BTreeMap<&ApiName, ApiHealth> =
            apis.iter().map(|a| (a, ApiHealth::default())).collect();
        for (api, _) in tokens.refresh_failing() {
            if let Some(h) = health.get_mut(&api) {
                h.refresh_failing += 1;
            }
        }
        for api in apis {
            let needs = store
                .installations(api)
                .await?
                .into_iter()
                .filter(|i| i.state == InstallationState::NeedsReauth)
                .count();
            if let Some(h) = health.get_mut(api) {
                h.needs_reauth = needs as u64;
            }
        }
        let failing: HashSet<(ApiName, TenantId)> = tokens.refresh_failing().into_iter().collect();
        let mut candidates = Vec::new();
        let mut after = None;
        loop {
            let page = store.credentials(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.api.clone(), last.tenant.clone()));
            let now = now_ms();
            for record in page {
                if let Some(h) = health.get_mut(&record.api) {
                    h.add(&record);
                }
                let key = (record.api.clone(), record.tenant.clone());
                if expiring(config, &record, failing.contains(&key), horizon, now).is_some() {
                    candidates.push(key);
                }
            }
        }
        let now = now_ms();
        for (api, h) in &health {
            h.publish(api, now);
        }

        let mut firing = HashSet::new();
        for (api, tenant) in candidates {
            // Looked at again right before raising, so a refresh that landed meanwhile wins.
            let mark = tokens.settled_mark();
            let Some(record) = store.credential(&api, &tenant).await? else {
                continue;
            };
            tokens.unless_settled_since(mark, &api, &tenant, |failing| {
                if let Some(detail) = expiring(config, &record, failing, horizon, now_ms()) {
                    alerts::raise(
                        AlertKind::TokenExpiry,
                        &super::subject(&api, &tenant),
                        &detail,
                    );
                    firing.insert((api.clone(), tenant.clone()));
                }
            });
        }
        let open: Vec<_> = self.open.difference(&firing).cloned().collect();
        for (api, tenant) in open {
            if store.credential(&api, &tenant).await?.is_none() {
                // A refused credential stays an open incident until a new install completes;
                // one erased with its installation is over.
                let state = store.installation(&api, &tenant).await?.map(|i| i.state);
                if state == Some(InstallationState::NeedsReauth) {
                    continue;
                }
                alerts::resolve(
                    AlertKind::TokenExpiry,
                    &super::subject(&api, &tenant),
                    "the installation and its credentials are gone",
                );
            }
            self.open.remove(&(api, tenant));
        }
        self.open.extend(firing);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn record(kind: CredentialKind, issued: i64, expires: Option<i64>) -> CredentialRecord {
        CredentialRecord {
            api: ApiName::new("hl"),
            tenant: TenantId::new("t"),
            kind,
            key_id: "k".into(),
            access: vec![1],
            refresh: (kind != CredentialKind::Static).then(|| vec![2]),
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
    fn the_soonest_expiry_counts_only_refreshable_tokens_and_the_oldest_static_token_its_age() {
        let mut h = ApiHealth::default();
        h.add(&record(CredentialKind::Oauth, 0, Some(100 * MIN)));
        h.add(&record(CredentialKind::Oauth, 0, Some(40 * MIN)));
        let mut once = record(CredentialKind::Minted, 0, Some(MIN));
        once.refresh = None;
        h.add(&once);
        h.add(&record(CredentialKind::Static, 7 * MIN, None));
        h.add(&record(CredentialKind::Static, 3 * MIN, None));
        assert_eq!(h.soonest_expiry_ms, Some(40 * MIN));
        assert_eq!(h.oldest_static_issued_ms, Some(3 * MIN));
        assert_eq!(ApiHealth::default().soonest_expiry_ms, None);
    }

    #[test]
    fn token_expiry_fires_only_inside_the_horizon_for_a_due_token_not_refreshed() {
        // 24 h tokens, refreshed with 10% (2.4 h) left, a 30 min horizon, a 1 min refresher.
        let config = CredentialsConfig::default();
        let day = 24 * 60 * MIN;
        let token = record(CredentialKind::Oauth, 0, Some(day));
        let horizon = Duration::from_secs(1800);
        // Due, failing, but still 2 h left: the refresher has time.
        assert_eq!(
            expiring(&config, &token, true, horizon, day - 120 * MIN),
            None
        );
        let detail = expiring(&config, &token, true, horizon, day - 20 * MIN).unwrap();
        assert!(detail.contains("expires in 1200s"), "{detail}");
        assert!(detail.contains("last refresh failed"), "{detail}");
        // Not failing and due long ago: no refresh was tried.
        let detail = expiring(&config, &token, false, horizon, day - 20 * MIN).unwrap();
        assert!(detail.contains("no refresh was tried"), "{detail}");
        let detail = expiring(&config, &token, true, horizon, day + 5 * MIN).unwrap();
        assert!(detail.contains("expired 300s ago"), "{detail}");
        // A short-lived token inside the horizon from birth is fine until it is due and not
        // refreshed in time.
        let short = record(CredentialKind::Oauth, 0, Some(10 * MIN));
        assert_eq!(expiring(&config, &short, false, horizon, MIN), None);
        assert_eq!(
            expiring(&config, &short, false, horizon, 9 * MIN + 30_000),
            None
        );
        assert!(expiring(&config, &short, true, horizon, 9 * MIN + 30_000).is_some());
        // Tokens the refresher does not keep: never.
        let stat = record(CredentialKind::Static, 0, None);
        assert_eq!(expiring(&config, &stat, true, horizon, day), None);
        let mut once = record(CredentialKind::Minted, 0, Some(MIN));
        once.refresh = None;
        assert_eq!(expiring(&config, &once, true, horizon, 2 * MIN), None);
    }
}
