//! The token hook: where the client gets the credential for an (api, tenant), and how it asks for
//! a new one after a 401. [`TokenSource`] is the seam the OAuth work plugs into; the default,
//! [`StaticTokens`], serves each API's configured static token (e.g. a HighLevel Private
//! Integration token) and "refreshes" by re-reading its env var or file, so a rotated token is
//! picked up without a restart.
//!
//! Policy (DESIGN.md §6), enforced by the sending loop, not by implementations: only a 401 leads
//! to `refresh`, at most once per call, followed by exactly one replay; a second 401 is final.
//! A 403 never refreshes (missing scope or access: a new token cannot fix it).
//!
//! Invariants: token values live only in [`Secret`]s (which redact themselves) and in the
//! `Authorization` header marked sensitive; no error or log line here carries one.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Mutex, time::Duration};

use http::HeaderValue;

use super::{ApiError, ApiInitError};
use crate::{
    config::ApiConfig,
    ids::{ApiName, TenantId},
    secret::{Secret, SecretRef},
};

/// What [`TokenSource::token`] returns: the credential, or None when the API is called without
/// one.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Secret>, AuthError>> + Send + 'a>>;

/// What [`TokenSource::refresh`] returns: a new credential.
pub type RefreshFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, AuthError>> + Send + 'a>>;

/// Supplies credentials per (api, tenant). Implementations must be cheap on `token` (it runs
/// once per call) and single-flight on `refresh` if their backend needs it (HighLevel refresh
/// tokens are single-use). Futures are boxed so the client can hold an `Arc<dyn TokenSource>`.
pub trait TokenSource: Send + Sync {
    /// The credential to send for `tenant` on `api`; `Ok(None)` means the API takes none (no
    /// `Authorization` header is sent).
    fn token<'a>(&'a self, api: &'a ApiName, tenant: &'a TenantId) -> TokenFuture<'a>;

    /// A replacement for `rejected`, which the API just answered with 401. Return an error when
    /// no better credential can be had: the call then fails with `ApiError::Auth`.
    fn refresh<'a>(
        &'a self,
        api: &'a ApiName,
        tenant: &'a TenantId,
        rejected: &'a Secret,
    ) -> RefreshFuture<'a>;

    /// Whether `tenant`'s credentials on `api` are known not to be ready (an install in
    /// progress, re-authorisation needed): how long its deliveries should wait before looking
    /// again, and the note they wait with. Cheap (no I/O). Default: never.
    fn waiting(&self, _api: &ApiName, _tenant: &TenantId) -> Option<(Duration, String)> {
        None
    }
}

/// Why no (new) credential is available. Messages name the API and tenant, never a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// There are no credentials for this tenant (not installed, or uninstalled).
    #[error("api {api}: no credentials for tenant {tenant}")]
    Missing {
        /// The API.
        api: ApiName,
        /// The tenant.
        tenant: TenantId,
    },
    /// The credentials were rejected and cannot be renewed: the installation needs
    /// re-authorisation.
    #[error("api {api}: the credentials for tenant {tenant} were rejected; re-authorise")]
    Rejected {
        /// The API.
        api: ApiName,
        /// The tenant.
        tenant: TenantId,
    },
    /// The credentials are not ready yet (e.g. an OAuth install in progress); try again later.
    #[error("credentials not ready yet; retry in {} ms", retry_after.as_millis())]
    Pending {
        /// When to try again.
        retry_after: Duration,
    },
    /// The token service could not be reached or failed; transient.
    #[error("token service unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The error the plugin sees when a call cannot get (or renew) its credential.
    /// `status`/`body` are the API's answer that led here (a 401), if any.
    pub(super) fn into_api_error(self, answered: Option<(u16, Vec<u8>)>) -> ApiError {
        match self {
            AuthError::Pending { retry_after } => ApiError::BudgetExhausted {
                retry_after_ms: u64::try_from(retry_after.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            },
            AuthError::Unavailable(why) => ApiError::Transport(format!("token service: {why}")),
            other => {
                let (status, body) =
                    answered.unwrap_or_else(|| (401, other.to_string().into_bytes()));
                ApiError::Auth { status, body }
            }
        }
    }
}

/// `Bearer <token>` marked sensitive, or an error that does not print the token.
pub(super) fn bearer(token: &Secret) -> Result<HeaderValue, ApiError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        ApiError::Auth {
            status: 401,
            body: b"the credential contains characters not allowed in a header".to_vec(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The default [`TokenSource`]: each API's `token` from config, loaded at start-up.
pub struct StaticTokens {
    apis: BTreeMap<ApiName, StaticToken>,
}

struct StaticToken {
    reference: SecretRef,
    /// Replaced when a refresh finds a different value behind the reference.
    current: Mutex<Secret>,
}

impl StaticTokens {
    /// Loads every configured token now, so a missing env var or file fails start-up, naming
    /// it. APIs without a `token` are called without credentials.
    pub fn load(apis: &BTreeMap<ApiName, ApiConfig>) -> Result<StaticTokens, ApiInitError> {
        let mut loaded = BTreeMap::new();
        for (name, config) in apis {
            let Some(reference) = &config.token else {
                continue;
            };
            let token = reference.load().map_err(|source| ApiInitError::Token {
                api: name.clone(),
                source,
            })?;
            if bearer(&token).is_err() {
                return Err(ApiInitError::InvalidToken {
                    api: name.clone(),
                    reference: reference.describe(),
                });
            }
            loaded.insert(
                name.clone(),
                StaticToken {
                    reference: reference.clone(),
                    current: Mutex::new(token),
                },
            );
        }
        Ok(StaticTokens { apis: loaded })
    }
}

impl TokenSource for StaticTokens {
    fn token<'a>(&'a self, api: &'a ApiName, _tenant: &'a TenantId) -> TokenFuture<'a> {
        let token = self.apis.get(api).map(|t| lock(&t.current).clone());
        Box::pin(async move { Ok(token) })
    }

    fn refresh<'a>(
        &'a self,
        api: &'a ApiName,
        tenant: &'a TenantId,
        rejected: &'a Secret,
    ) -> RefreshFuture<'a> {
        Box::pin(async move {
            let rejected_error = || AuthError::Rejected {
                api: api.clone(),
                tenant: tenant.clone(),
            };
            let Some(entry) = self.apis.get(api) else {
                return Err(rejected_error());
            };
            let reference = entry.reference.clone();
            // A file read blocks; keep it off the async threads.
            let loaded = tokio::task::spawn_blocking(move || reference.load())
                .await
                .map_err(|e| AuthError::Unavailable(format!("reading the token failed: {e}")))?
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            // The same value again cannot succeed where it just failed.
            if &loaded == rejected || bearer(&loaded).is_err() {
                return Err(rejected_error());
            }
            *lock(&entry.current) = loaded.clone();
            tracing::info!(api = %api, "static token reloaded after a 401");
            Ok(loaded)
        })
    }
}

/// A poisoned lock only means another thread panicked while holding it; the secret inside is
/// still whole, so keep using it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<SecretRef>) -> BTreeMap<ApiName, ApiConfig> {
        let mut config = ApiConfig::new(
            ApiName::new("hl"),
            reqwest::Url::parse("https://api.example").unwrap(),
        );
        config.token = token;
        [(config.name.clone(), config)].into_iter().collect()
    }

    #[tokio::test]
    async fn static_tokens_serve_and_reload_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first-secret\n").unwrap();
        let tokens = StaticTokens::load(&config(Some(SecretRef::File(path.clone())))).unwrap();
        let (api, tenant) = (ApiName::new("hl"), TenantId::new("loc1"));
        let first = tokens.token(&api, &tenant).await.unwrap().unwrap();
        assert_eq!(first.expose(), "first-secret");

        // Unchanged file: a refresh cannot help.
        let err = tokens.refresh(&api, &tenant, &first).await.unwrap_err();
        assert!(matches!(err, AuthError::Rejected { .. }), "{err:?}");
        assert!(!err.to_string().contains("first-secret"));

        std::fs::write(&path, "second-secret\n").unwrap();
        let second = tokens.refresh(&api, &tenant, &first).await.unwrap();
        assert_eq!(second.expose(), "second-secret");
        let now = tokens.token(&api, &tenant).await.unwrap().unwrap();
        assert_eq!(now.expose(), "second-secret");
    }

    #[tokio::test]
    async fn an_api_without_a_token_gets_none_and_no_refresh() {
        let tokens = StaticTokens::load(&config(None)).unwrap();
        let (api, tenant) = (ApiName::new("hl"), TenantId::new("loc1"));
        assert!(tokens.token(&api, &tenant).await.unwrap().is_none());
        assert!(
            tokens
                .refresh(&api, &tenant, &Secret::new("x"))
                .await
                .is_err()
        );
    }

    #[test]
    fn auth_errors_map_to_what_the_plugin_sees() {
        let pending = AuthError::Pending {
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(
            pending.into_api_error(None),
            ApiError::BudgetExhausted {
                retry_after_ms: 2500
            }
        );
        let rejected = AuthError::Rejected {
            api: ApiName::new("hl"),
            tenant: TenantId::new("loc1"),
        };
        assert_eq!(
            rejected.into_api_error(Some((401, b"expired".to_vec()))),
            ApiError::Auth {
                status: 401,
                body: b"expired".to_vec()
            }
        );
        let missing = AuthError::Missing {
            api: ApiName::new("hl"),
            tenant: TenantId::new("loc1"),
        };
        assert!(matches!(
            missing.into_api_error(None),
            ApiError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            AuthError::Unavailable("down".into()).into_api_error(None),
            ApiError::Transport(_)
        ));
    }

    #[test]
    fn bearer_values_are_sensitive_and_errors_do_not_echo_the_token() {
        let value = bearer(&Secret::new("abc")).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value, "Bearer abc");
        let err = bearer(&Secret::new("ab\nc-secret")).unwrap_err();
        assert!(!format!("{err:?}").contains("c-secret"));
    }
}
