//! Completing an OAuth install: the callback's code is exchanged (form-encoded, as HighLevel
//! expects), the grant is sealed and stored, and the installation becomes `active`. INSTALL may
//! arrive before the callback (the installation is `pending` until now) or after it (ingress
//! keeps a live installation as it is): both end with one active installation. A company
//! (agency) grant also links the locations the app is installed in (see `location`).

use super::{location, oauth::GrantError, tokens::StoredTokens};
use crate::{
    ids::{ApiName, TenantId, now_ms},
    installations::InstallationState,
    store::{CredentialKind, Store},
};

/// Why an install could not be completed. Messages say what to do, never a token or code.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The API has no `[apis.<name>.oauth]`.
    #[error("api {0} is not configured for OAuth installs ([apis.{0}.oauth])")]
    NotConfigured(ApiName),
    /// The platform refused the code (expired, used twice, wrong redirect).
    #[error(
        "the authorization code was refused ({0}); start the install again from the marketplace"
    )]
    Refused(String),
    /// The token endpoint could not be reached or failed.
    #[error("the token endpoint is unavailable; try the install again in a minute")]
    Unavailable(String),
    /// The grant named neither a location nor a company.
    #[error("the token endpoint's answer names no locationId or companyId")]
    NoTenant,
    /// Storing the credential failed (e.g. no master key).
    #[error("the credentials could not be stored: {0}")]
    Store(String),
}

/// Exchanges `code` for `api`'s tokens and activates the installation. Returns the tenant.
pub async fn complete(
    tokens: &StoredTokens,
    api: &ApiName,
    code: &str,
) -> Result<TenantId, InstallError> {
    let endpoint = tokens
        .endpoint(api)
        .ok_or_else(|| InstallError::NotConfigured(api.clone()))?;
    let grant = endpoint.exchange(code).await.map_err(|e| match e {
        GrantError::Definitive { status, code } => {
            InstallError::Refused(code.unwrap_or_else(|| status.to_string()))
        }
        other => InstallError::Unavailable(other.to_string()),
    })?;
    let tenant = grant.tenant().cloned().ok_or(InstallError::NoTenant)?;
    let company = grant
        .user_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("company"));
    tokens
        .store_grant(api, &tenant, CredentialKind::Oauth, grant)
        .await
        .map_err(|e| InstallError::Store(e.to_string()))?;
    let store = tokens.vault().store();
    store
        .set_installation_state(api, &tenant, InstallationState::Active, now_ms())
        .await
        .map_err(|e| InstallError::Store(e.to_string()))?;
    tokens.forget(api, &tenant);
    tracing::info!(api = %api, tenant = %tenant, company, "OAuth install completed; the installation is active");
    if company {
        // Best effort: links also come from events, and minting finds them either way.
        if let Err(e) = location::link_installed(tokens, api, &tenant).await {
            tracing::warn!(api = %api, tenant = %tenant, error = %e, "listing the company's installed locations failed");
        }
    }
    Ok(tenant)
}
