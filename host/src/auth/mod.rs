//! Credentials of installations: OAuth installs, token refresh, location-token minting, static
//! tokens with rotation, encryption at rest, and uninstall erasure (DESIGN.md §6).
//!
//! Files: `crypto` (AES-256-GCM seal/open, key ids, the keyring), `credentials` (the vault:
//! sealing on the way into the store, `keys rotate`), `oauth` (the platform's token endpoints),
//! `tokens` (the `TokenSource` the API client uses: cache, single flight, refresh, minting),
//! `refresh` (the background refresher and the static-token age alert), `health` (token
//! health gauges and the `token_expiry` rule), `install` (the OAuth
//! callback's code exchange), `location` (company -> location links), `uninstall` (erasure
//! after UNINSTALL).
//!
//! Invariants: plaintext tokens exist only in memory ([`crate::secret::Secret`]s) and in
//! outbound requests; the store holds them sealed; no log line, error, metric label or alert
//! carries one. The server refuses to start when the store holds sealed credentials that the
//! configured keys cannot open.

pub mod credentials;
pub mod crypto;
pub mod health;
pub mod install;
pub mod location;
pub mod oauth;
pub mod refresh;
pub mod tokens;
pub mod uninstall;

use std::collections::BTreeMap;

pub use credentials::{Opened, Vault};
pub use crypto::{Keyring, MasterKey};
pub use tokens::StoredTokens;

use crate::{
    api::{ApiInitError, StaticTokens},
    config::{ApiConfig, CredentialsConfig},
    ids::{ApiName, TenantId},
    secret::{SecretError, SecretRef},
    store::AnyStore,
};

/// The subject of an alert about one installation (`token_refresh`, `token_expiry`,
/// `token_age`, an installation's `auth_failure`).
pub fn subject(api: &ApiName, tenant: &TenantId) -> String {
    format!("api {api} tenant {tenant}")
}

/// Why the credentials could not be set up at start-up. Each names what to set.
#[derive(Debug, thiserror::Error)]
pub enum AuthInitError {
    #[error(
        "the store holds {count} sealed credential(s) but no master key is set: set {what} to the key they were sealed with"
    )]
    NoKey { count: u64, what: String },
    #[error(
        "the store holds credentials sealed under key {key_id}, which is not configured: set the key that sealed them as [credentials] master_key or add it to old_master_keys"
    )]
    UnknownKey { key_id: String },
    #[error("credentials.master_key: {0}")]
    MasterKey(crypto::CryptoError),
    #[error("credentials.old_master_keys: {0}")]
    OldKey(crypto::CryptoError),
    #[error(transparent)]
    Api(#[from] ApiInitError),
    #[error("reading the stored credentials: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Loads the keyring: the current key (absent only when the default env var is unset) and
/// every old key (each must load).
pub fn keyring(config: &CredentialsConfig) -> Result<Keyring, AuthInitError> {
    let current = match MasterKey::load(&config.master_key) {
        Ok(key) => Some(key),
        // Unset means "no key"; the start-up check refuses if sealed credentials exist.
        Err(crypto::CryptoError::Read(SecretError::MissingEnv(_))) => None,
        Err(e) => return Err(AuthInitError::MasterKey(e)),
    };
    let old = config
        .old_master_keys
        .iter()
        .map(MasterKey::load)
        .collect::<Result<Vec<_>, _>>()
        .map_err(AuthInitError::OldKey)?;
    Ok(Keyring::new(current, old))
}

/// Builds the token source: refuses when the store holds credentials the keyring cannot open,
/// then serves stored credentials, OAuth and the configured static tokens.
pub async fn tokens(
    config: &CredentialsConfig,
    apis: &BTreeMap<ApiName, ApiConfig>,
    store: AnyStore,
) -> Result<StoredTokens, AuthInitError> {
    let keys = keyring(config)?;
    let vault = Vault::new(store, keys.clone());
    let (key_ids, count) = vault.key_ids().await?;
    if count > 0 && keys.current_id().is_none() {
        return Err(AuthInitError::NoKey {
            count,
            what: match &config.master_key {
                SecretRef::Env(name) => format!("the environment variable {name}"),
                other => other.describe(),
            },
        });
    }
    if let Some(key_id) = key_ids.into_iter().find(|id| !keys.holds(id)) {
        return Err(AuthInitError::UnknownKey { key_id });
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .use_rustls_tls()
        .user_agent(concat!("wasmhook/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let fallback = StaticTokens::load(apis)?;
    Ok(StoredTokens::new(
        vault,
        apis,
        http,
        fallback,
        config.clone(),
    ))
}
