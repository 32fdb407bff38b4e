//! [`StoredTokens`]: the [`TokenSource`] backed by the sealed credential store. Serves each
//! (api, tenant) its OAuth, minted or static token, refreshes OAuth tokens before they expire
//! and after a 401, mints location tokens from company tokens, and falls back to the API's
//! configured static token (`[apis.<name>] token`) when nothing is stored.
//!
//! Single flight: every slow path for one (api, tenant) — a load, a refresh, a mint — runs
//! under that installation's async mutex, and a refresh additionally takes the row's refresh
//! lease in the store (the persisted in-flight marker), so one refresh request is in flight per
//! installation in this process and across processes. The new pair is written to the store
//! before anyone uses it. A holder that crashed leaves a lease that expires after the token
//! request's timeout plus a margin; the next refresh then redeems the same refresh token, which
//! HighLevel answers with the same new pair within 30 s.
//!
//! Only a definitive 400/401 from the token endpoint marks the installation `needs-reauth`
//! (and drops its useless credential); deliveries of a tenant whose credentials are pending or
//! need re-authorisation are told to wait ([`TokenSource::waiting`]) without spending attempts,
//! and so is the delivery whose own call met the refusal.
//!
//! Health: the installations whose last refresh (or mint) failed are kept here, in this
//! process, for the token health gauges and the `token_expiry` rule (`auth::health`); every
//! outcome wakes that check ([`StoredTokens::health_changed`]).
//!
//! Invariants: plaintext tokens live only in memory (this cache, [`Secret`]s); no log line,
//! error, metric label or alert carries one.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    credentials::{NewCredential, Opened, Vault, VaultError},
    oauth::{Endpoint, Grant, GrantError},
};
use crate::{
    alerts::{self, AlertKind},
    api::{
        StaticTokens,
        auth::{AuthError, RefreshFuture, TokenFuture, TokenSource},
    },
    config::{ApiConfig, CredentialsConfig},
    ids::{ApiName, TenantId, now_ms},
    installations::InstallationState,
    secret::Secret,
    store::{API_WIDE, CredentialKind, Store},
};

/// A token this close to its expiry (or a tenth of its lifetime, if less) is refreshed before
/// it is sent.
const EXPIRY_SKEW_MS: i64 = 1_000;
/// A refresh lease outlives the token request by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// How often a refresh waiting on another holder's lease looks again.
const LEASE_POLL: Duration = Duration::from_millis(200);

type Key = (ApiName, TenantId);

/// What the cache holds for one (api, tenant).
#[derive(Clone)]
struct Cached {
    /// None: the API is called without a credential.
    access: Option<Secret>,
    expires_at_ms: Option<i64>,
    issued_at_ms: i64,
}

impl Cached {
    fn fresh(&self, now: i64) -> bool {
        fresh(self.issued_at_ms, self.expires_at_ms, now)
    }
}

/// Whether a token issued at `issued` and expiring at `expires` may still be sent at `now`.
fn fresh(issued: i64, expires: Option<i64>, now: i64) -> bool {
    expires.is_none_or(|expires| {
        let skew = EXPIRY_SKEW_MS.min((expires - issued) / 10);
        expires - now > skew
    })
}

/// The installations whose last refresh or mint failed for a reason worth retrying, and a
/// count of new tokens stored, so the `token_expiry` check can tell that one landed while it
/// looked (see [`StoredTokens::unless_settled_since`]).
#[derive(Default)]
struct Failing {
    keys: HashSet<Key>,
    settled: u64,
}

/// The credential store as a token source. Cheap to clone.
#[derive(Clone)]
pub struct StoredTokens {
    shared: Arc<Shared>,
}

struct Shared {
    vault: Vault,
    endpoints: BTreeMap<ApiName, Endpoint>,
    fallback: StaticTokens,
    config: CredentialsConfig,
    cache: Mutex<HashMap<Key, Cached>>,
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Tenants whose credentials are not ready, and the note their deliveries wait with.
    waiting: Mutex<HashMap<Key, String>>,
    /// Installations whose last refresh or mint failed, and how many new tokens were stored.
    failing: Mutex<Failing>,
    /// Woken by every refresh outcome, so the token health is re-read at once.
    health: tokio::sync::Notify,
}

impl StoredTokens {
    /// Tokens from `vault`, OAuth for every API with `[apis.<name>.oauth]`, and `fallback` for
    /// APIs with a configured static token.
    pub fn new(
        vault: Vault,
        apis: &BTreeMap<ApiName, ApiConfig>,
        http: reqwest::Client,
        fallback: StaticTokens,
        config: CredentialsConfig,
    ) -> StoredTokens {
        let endpoints = apis
            .iter()
            .filter_map(|(name, api)| {
                let oauth = api.oauth.clone()?;
                Some((name.clone(), Endpoint::new(http.clone(), api, oauth)))
            })
            .collect();
        StoredTokens {
            shared: Arc::new(Shared {
                vault,
                endpoints,
                fallback,
                config,
                cache: Mutex::default(),
                flights: Mutex::default(),
                waiting: Mutex::default(),
                failing: Mutex::default(),
                health: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The vault behind the tokens.
    pub fn vault(&self) -> &Vault {
        &self.shared.vault
    }

    /// The OAuth client of `api`, if it has one.
    pub fn endpoint(&self, api: &ApiName) -> Option<&Endpoint> {
        self.shared.endpoints.get(api)
    }

    /// The credentials settings.
    pub fn config(&self) -> &CredentialsConfig {
        &self.shared.config
    }

    /// Drops what is cached for (api, tenant); for [`API_WIDE`], everything of `api`.
    pub fn forget(&self, api: &ApiName, tenant: &TenantId) {
        let key = (api.clone(), tenant.clone());
        let mut cache = lock(&self.shared.cache);
        if tenant.as_str() == API_WIDE {
            cache.retain(|(a, _), _| a != api);
        } else {
            cache.remove(&key);
        }
        drop(cache);
        lock(&self.shared.waiting).remove(&key);
        let mut failing = lock(&self.shared.failing);
        let before = failing.keys.len();
        if tenant.as_str() == API_WIDE {
            failing.keys.retain(|(a, _)| a != api);
        } else {
            failing.keys.remove(&key);
        }
        if failing.keys.len() != before {
            self.shared.health.notify_one();
        }
    }

    /// The installations whose last refresh or mint in this process failed for a reason
    /// worth retrying (a success, a refusal or an uninstall takes them off), sorted.
    pub fn refresh_failing(&self) -> Vec<(ApiName, TenantId)> {
        let mut list: Vec<Key> = lock(&self.shared.failing).keys.iter().cloned().collect();
        list.sort_unstable();
        list
    }

    /// Waits until a refresh, mint or install outcome may have changed the token health.
    /// Outcomes while nobody waits are remembered as one wake-up.
    pub async fn health_changed(&self) {
        self.shared.health.notified().await;
    }

    /// A mark of the new tokens stored so far, for [`StoredTokens::unless_settled_since`].
    pub fn settled_mark(&self) -> u64 {
        lock(&self.shared.failing).settled
    }

    /// Runs `act` with whether `key`'s last refresh failed, unless a new token was stored
    /// (for any installation) since `mark` was taken. Atomic with storing one: a check that
    /// read a credential before its refresh landed cannot raise an alert after the refresh
    /// resolved it.
    pub fn unless_settled_since(
        &self,
        mark: u64,
        api: &ApiName,
        tenant: &TenantId,
        act: impl FnOnce(bool),
    ) {
        let failing = lock(&self.shared.failing);
        if failing.settled == mark {
            act(failing.keys.contains(&(api.clone(), tenant.clone())));
        }
    }

    /// A new token is stored for `key`: it is no longer failing, and its token alerts clear.
    fn settled(&self, key: &Key, detail: &str) {
        let mut failing = lock(&self.shared.failing);
        failing.keys.remove(key);
        failing.settled += 1;
        let subject = super::subject(&key.0, &key.1);
        alerts::resolve(AlertKind::TokenRefresh, &subject, detail);
        alerts::resolve(AlertKind::TokenExpiry, &subject, detail);
        drop(failing);
        self.shared.health.notify_one();
    }

    /// Stores what a code exchange or a mint granted for `tenant` and makes it current.
    pub async fn store_grant(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        kind: CredentialKind,
        grant: Grant,
    ) -> Result<(), VaultError> {
        let now = now_ms();
        let new = NewCredential {
            api: api.clone(),
            tenant: tenant.clone(),
            kind,
            access: grant.access,
            refresh: grant.refresh,
            previous: None,
            expires_at_ms: grant.expires_in.map(|d| now + d.as_millis() as i64),
            issued_at_ms: now,
            scopes: grant.scopes,
            user_type: grant.user_type,
            company: grant.company,
        };
        let key = (api.clone(), tenant.clone());
        let flight = self.flight(&key);
        let _guard = flight.lock().await;
        if let Some(opened) = self.shared.vault.store_new(&new, None).await? {
            self.remember(&key, &opened);
        }
        self.settled(&key, "new credentials were granted");
        Ok(())
    }

    /// Registers a static token for (api, tenant) ([`API_WIDE`] for every tenant). With
    /// `overlap`, the current static token is kept as the previous one, still tried on a 401
    /// until the overlap ends. Returns the record as stored.
    pub async fn set_static(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        token: Secret,
        overlap: Option<Duration>,
    ) -> Result<Opened, SetStaticError> {
        let key = (api.clone(), tenant.clone());
        let flight = self.flight(&key);
        let _guard = flight.lock().await;
        let current = self.shared.vault.load(api, tenant).await?;
        let previous = match (overlap, current) {
            (Some(overlap), Some(current)) if current.record.kind == CredentialKind::Static => {
                if current.access == token {
                    return Err(SetStaticError::Unchanged);
                }
                Some((current.access, now_ms() + overlap.as_millis() as i64))
            }
            (Some(_), _) => return Err(SetStaticError::NothingToRotate),
            (None, _) => None,
        };
        let new = NewCredential {
            api: api.clone(),
            tenant: tenant.clone(),
            kind: CredentialKind::Static,
            access: token,
            refresh: None,
            previous,
            expires_at_ms: None,
            issued_at_ms: now_ms(),
            scopes: String::new(),
            user_type: None,
            company: None,
        };
        let opened = self
            .shared
            .vault
            .store_new(&new, None)
            .await?
            .ok_or(SetStaticError::Raced)?;
        self.forget(api, tenant);
        alerts::resolve(
            AlertKind::TokenAge,
            &super::subject(api, tenant),
            "a new static token was set",
        );
        Ok(opened)
    }

    /// Refreshes (api, tenant) if it is still due by `due` (the background refresher's test),
    /// under the installation's single flight.
    pub async fn refresh_if(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        due: impl Fn(&crate::store::CredentialRecord) -> bool,
    ) -> Result<bool, AuthError> {
        let key = (api.clone(), tenant.clone());
        let flight = self.flight(&key);
        let _guard = flight.lock().await;
        let Some(opened) = self.load(api, tenant).await? else {
            return Ok(false);
        };
        if !due(&opened.record) {
            return Ok(false);
        }
        self.refresh_locked(opened).await.map(|_| true)
    }

    /// The installation's single-flight lock.
    fn flight(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = lock(&self.shared.flights);
        // Locks nobody holds or waits on are dropped, so the map stays as small as the
        // number of installations busy at once.
        flights.retain(|_, f| Arc::strong_count(f) > 1);
        flights.entry(key.clone()).or_default().clone()
    }

    fn remember(&self, key: &Key, opened: &Opened) {
        lock(&self.shared.cache).insert(
            key.clone(),
            Cached {
                access: Some(opened.access.clone()),
                expires_at_ms: opened.record.expires_at_ms,
                issued_at_ms: opened.record.issued_at_ms,
            },
        );
        lock(&self.shared.waiting).remove(key);
    }

    async fn load(&self, api: &ApiName, tenant: &TenantId) -> Result<Option<Opened>, AuthError> {
        self.shared
            .vault
            .load(api, tenant)
            .await
            .map_err(unavailable)
    }

    /// The slow path of `token`: under the single flight, load, refresh, mint or fall back.
    async fn current(&self, api: &ApiName, tenant: &TenantId) -> Result<Option<Secret>, AuthError> {
        let key = (api.clone(), tenant.clone());
        let flight = self.flight(&key);
        let _guard = flight.lock().await;
        let now = now_ms();
        if let Some(cached) = lock(&self.shared.cache).get(&key).filter(|c| c.fresh(now)) {
            return Ok(cached.access.clone());
        }
        if let Some(opened) = self.load(api, tenant).await? {
            if fresh(opened.record.issued_at_ms, opened.record.expires_at_ms, now) {
                self.remember(&key, &opened);
                return Ok(Some(opened.access));
            }
            return self.refresh_locked(opened).await.map(Some);
        }
        if let Some(opened) = self.load(api, &TenantId::new(API_WIDE)).await? {
            self.remember(&key, &opened);
            return Ok(Some(opened.access));
        }
        if let Some(minted) = self.mint(api, tenant).await? {
            return Ok(Some(minted));
        }
        // Only an OAuth API's installations wait for credentials; others use the fallback.
        let state = match self.shared.endpoints.contains_key(api) {
            true => self
                .shared
                .vault
                .store()
                .installation(api, tenant)
                .await
                .map_err(unavailable)?
                .map(|i| i.state),
            false => None,
        };
        let note = match state {
            Some(InstallationState::Pending) => Some(format!(
                "waiting: the {api} installation of tenant {tenant} has no credentials yet (OAuth not completed)"
            )),
            Some(InstallationState::NeedsReauth) => Some(reauth_note(api, tenant)),
            _ => None,
        };
        if let Some(note) = note {
            lock(&self.shared.waiting).insert(key, note);
            return Err(AuthError::Pending {
                retry_after: self.shared.config.wait_recheck,
            });
        }
        let token = self.shared.fallback.token(api, tenant).await?;
        lock(&self.shared.cache).insert(
            key,
            Cached {
                access: token.clone(),
                expires_at_ms: None,
                issued_at_ms: now,
            },
        );
        Ok(token)
    }

    /// A location token minted from its company's, when `api` mints and a company with
    /// credentials covers `location`.
    async fn mint(&self, api: &ApiName, location: &TenantId) -> Result<Option<Secret>, AuthError> {
        let Some(endpoint) = self.shared.endpoints.get(api) else {
            return Ok(None);
        };
        let store = self.shared.vault.store();
        let Some(company) = store.company_of(api, location).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if store
            .credential(api, &company)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Ok(None);
        }
        // The company's own token, refreshed if needed (another installation's flight).
        let Some(company_token) = Box::pin(self.current(api, &company)).await? else {
            return Ok(None);
        };
        let result = endpoint.mint(&company_token, &company, location).await;
        count(api, "mint", &result);
        match result {
            Ok(grant) => {
                let now = now_ms();
                let new = NewCredential {
                    api: api.clone(),
                    tenant: location.clone(),
                    kind: CredentialKind::Minted,
                    access: grant.access,
                    refresh: grant.refresh,
                    previous: None,
                    expires_at_ms: grant.expires_in.map(|d| now + d.as_millis() as i64),
                    issued_at_ms: now,
                    scopes: grant.scopes,
                    user_type: grant.user_type,
                    company: Some(company),
                };
                let opened = self
                    .shared
                    .vault
                    .store_new(&new, None)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        AuthError::Unavailable("the minted token was not stored".into())
                    })?;
                let key = (api.clone(), location.clone());
                self.remember(&key, &opened);
                self.settled(&key, "a location token was minted");
                tracing::info!(api = %api, tenant = %location, "minted a location token from its company's token");
                Ok(Some(opened.access))
            }
            Err(GrantError::Definitive { .. }) => Err(self.needs_reauth(api, location, None).await),
            Err(e) => Err(self.transient(api, location, &e)),
        }
    }

    /// Refreshes `opened` (the caller holds the installation's flight): takes the store's
    /// refresh lease, redeems the refresh token (or re-mints a minted token without one), and
    /// writes the new pair before returning it.
    async fn refresh_locked(&self, opened: Opened) -> Result<Secret, AuthError> {
        let api = opened.record.api.clone();
        let tenant = opened.record.tenant.clone();
        let key = (api.clone(), tenant.clone());
        let Some(endpoint) = self.shared.endpoints.get(&api) else {
            return Err(AuthError::Rejected { api, tenant });
        };
        if opened.record.kind == CredentialKind::Static {
            return Err(AuthError::Rejected { api, tenant });
        }
        let Some(refresh_token) = opened.refresh.clone() else {
            // A minted token without a refresh token is minted again from its company's.
            let store = self.shared.vault.store();
            store
                .delete_credential(&api, &tenant)
                .await
                .map_err(unavailable)?;
            return self
                .mint(&api, &tenant)
                .await?
                .ok_or(AuthError::Missing { api, tenant });
        };
        let store = self.shared.vault.store();
        let lease = endpoint.request_timeout() + LEASE_MARGIN;
        let mut record = opened.record.clone();
        loop {
            if store
                .begin_refresh(&api, &tenant, record.version, lease)
                .await
                .map_err(unavailable)?
            {
                break;
            }
            // Another holder (another process, or one that crashed mid-request) has the lease,
            // or the row moved on: use what it wrote, or wait for its lease to end.
            let Some(now_stored) = self.load(&api, &tenant).await? else {
                return Err(AuthError::Missing { api, tenant });
            };
            if now_stored.record.version != record.version {
                let stored = &now_stored.record;
                if fresh(stored.issued_at_ms, stored.expires_at_ms, now_ms()) {
                    self.remember(&key, &now_stored);
                    return Ok(now_stored.access);
                }
            }
            record = now_stored.record;
            tokio::time::sleep(LEASE_POLL).await;
        }
        tracing::info!(api = %api, tenant = %tenant, "refreshing the access token");
        let result = endpoint.refresh(&refresh_token).await;
        count(&api, "refresh", &result);
        match result {
            Ok(grant) => {
                let now = now_ms();
                let new = NewCredential {
                    api: api.clone(),
                    tenant: tenant.clone(),
                    kind: record.kind,
                    access: grant.access,
                    // A platform that does not rotate refresh tokens keeps the old one valid.
                    refresh: grant.refresh.or(Some(refresh_token)),
                    previous: None,
                    expires_at_ms: grant.expires_in.map(|d| now + d.as_millis() as i64),
                    issued_at_ms: now,
                    scopes: if grant.scopes.is_empty() {
                        record.scopes.clone()
                    } else {
                        grant.scopes
                    },
                    user_type: grant.user_type.or(record.user_type.clone()),
                    company: record.company.clone(),
                };
                let written = self
                    .shared
                    .vault
                    .store_new(&new, Some(record.version))
                    .await
                    .map_err(unavailable)?;
                let stored = match written {
                    Some(stored) => stored,
                    // Only a write that ignored our lease can get here; what it wrote wins.
                    None => self
                        .load(&api, &tenant)
                        .await?
                        .ok_or_else(|| AuthError::Missing {
                            api: api.clone(),
                            tenant: tenant.clone(),
                        })?,
                };
                self.remember(&key, &stored);
                self.settled(&key, "the token was refreshed");
                Ok(stored.access)
            }
            Err(GrantError::Definitive { status, code }) => {
                let why = format!(
                    "{status}{}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                );
                Err(self.needs_reauth(&api, &tenant, Some(why)).await)
            }
            Err(error) => {
                if let Err(e) = store.end_refresh(&api, &tenant, record.version).await {
                    tracing::warn!(api = %api, tenant = %tenant, error = %e, "releasing the refresh lease failed; it expires by itself");
                }
                Err(self.transient(&api, &tenant, &error))
            }
        }
    }

    /// The token endpoint refused for good: the credential is useless, the installation needs
    /// re-authorisation, and its deliveries wait until a new install completes — the one whose
    /// call met the refusal included: the answer is [`AuthError::Pending`] with the waiting
    /// note set, so that delivery is deferred without spending an attempt, like later ones.
    async fn needs_reauth(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        why: Option<String>,
    ) -> AuthError {
        let store = self.shared.vault.store();
        if let Err(e) = store.delete_credential(api, tenant).await {
            tracing::error!(api = %api, tenant = %tenant, error = %e, "dropping a refused credential failed");
        }
        if let Err(e) = store
            .set_installation_state(api, tenant, InstallationState::NeedsReauth, now_ms())
            .await
        {
            tracing::error!(api = %api, tenant = %tenant, error = %e, "marking the installation needs-reauth failed");
        }
        self.forget(api, tenant);
        self.shared.health.notify_one();
        let subject = super::subject(api, tenant);
        alerts::raise(
            AlertKind::AuthFailure,
            &subject,
            &format!(
                "the token endpoint refused the credentials ({}); the installation needs re-authorisation and its deliveries wait",
                why.as_deref().unwrap_or("refused")
            ),
        );
        // Refreshing can no longer fail (or succeed): the refusal is the news now.
        alerts::resolve(
            AlertKind::TokenRefresh,
            &subject,
            "the token endpoint refused for good; see auth_failure",
        );
        lock(&self.shared.waiting).insert((api.clone(), tenant.clone()), reauth_note(api, tenant));
        AuthError::Pending {
            retry_after: self.shared.config.wait_recheck,
        }
    }

    fn transient(&self, api: &ApiName, tenant: &TenantId, error: &GrantError) -> AuthError {
        lock(&self.shared.failing)
            .keys
            .insert((api.clone(), tenant.clone()));
        self.shared.health.notify_one();
        alerts::raise(
            AlertKind::TokenRefresh,
            &super::subject(api, tenant),
            &format!("getting a new token failed; will retry: {error}"),
        );
        AuthError::Unavailable(error.to_string())
    }
}

/// Why a static token could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum SetStaticError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// `rotate` needs a current static token to overlap with.
    #[error("there is no static token to rotate; register one with `wasmhook tokens set`")]
    NothingToRotate,
    /// The new token equals the current one.
    #[error("the new token is the current one; rotate to a different token")]
    Unchanged,
    /// Another write replaced the row at the same moment.
    #[error("the token changed while it was being set; try again")]
    Raced,
}

impl TokenSource for StoredTokens {
    fn token<'a>(&'a self, api: &'a ApiName, tenant: &'a TenantId) -> TokenFuture<'a> {
        Box::pin(async move {
            let key = (api.clone(), tenant.clone());
            if let Some(cached) = lock(&self.shared.cache)
                .get(&key)
                .filter(|c| c.fresh(now_ms()))
            {
                return Ok(cached.access.clone());
            }
            self.current(api, tenant).await
        })
    }

    fn refresh<'a>(
        &'a self,
        api: &'a ApiName,
        tenant: &'a TenantId,
        rejected: &'a Secret,
    ) -> RefreshFuture<'a> {
        Box::pin(async move {
            let key = (api.clone(), tenant.clone());
            let flight = self.flight(&key);
            let _guard = flight.lock().await;
            let own = self.load(api, tenant).await?;
            let stored = match own {
                Some(opened) => Some(opened),
                None => self.load(api, &TenantId::new(API_WIDE)).await?,
            };
            let Some(stored) = stored else {
                let fresh = self.shared.fallback.refresh(api, tenant, rejected).await?;
                lock(&self.shared.cache).insert(
                    key,
                    Cached {
                        access: Some(fresh.clone()),
                        expires_at_ms: None,
                        issued_at_ms: now_ms(),
                    },
                );
                return Ok(fresh);
            };
            // Someone refreshed (or an operator rotated) since this token was read.
            if &stored.access != rejected {
                self.remember(&key, &stored);
                return Ok(stored.access);
            }
            if stored.record.kind == CredentialKind::Static {
                // During a rotation's overlap the previous token is still worth one try.
                let overlap_open = stored
                    .record
                    .previous_until_ms
                    .is_some_and(|until| until > now_ms());
                return match stored.previous.filter(|p| overlap_open && p != rejected) {
                    Some(previous) => {
                        tracing::info!(api = %api, tenant = %tenant, "the new static token was refused; trying the previous one during the overlap");
                        Ok(previous)
                    }
                    None => Err(AuthError::Rejected {
                        api: api.clone(),
                        tenant: tenant.clone(),
                    }),
                };
            }
            self.refresh_locked(stored).await
        })
    }

    fn waiting(&self, api: &ApiName, tenant: &TenantId) -> Option<(Duration, String)> {
        lock(&self.shared.waiting)
            .get(&(api.clone(), tenant.clone()))
            .map(|note| (self.shared.config.wait_recheck, note.clone()))
    }
}

/// `wasmhook_token_requests_total{api, kind, outcome}`: no tenant label (unbounded).
fn count<T>(api: &ApiName, kind: &'static str, result: &Result<T, GrantError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(GrantError::Definitive { .. }) => "refused",
        Err(_) => "failed",
    };
    metrics::counter!("wasmhook_token_requests_total", "api" => api.to_string(), "kind" => kind, "outcome" => outcome)
        .increment(1);
}

/// The note a delivery of an installation that needs re-authorisation waits with.
fn reauth_note(api: &ApiName, tenant: &TenantId) -> String {
    format!("waiting: the {api} installation of tenant {tenant} needs re-authorisation")
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

/// A poisoned lock only means another thread panicked while holding it; the map is whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
