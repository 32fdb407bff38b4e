//! Company -> location links from the installed-locations endpoint (HighLevel
//! `/oauth/installedLocations`), so a company token can mint location tokens for locations
//! whose events carry no company id. Minting itself happens in `tokens` when an event of a
//! covered location needs a token.

use super::{oauth::GrantError, tokens::StoredTokens};
use crate::{
    api::TokenSource,
    ids::{ApiName, TenantId},
    store::Store,
};

/// Why the links could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error("the company's token: {0}")]
    Token(#[from] crate::api::AuthError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Links every location where the app is installed under `company`; returns how many.
pub async fn link_installed(
    tokens: &StoredTokens,
    api: &ApiName,
    company: &TenantId,
) -> Result<usize, LinkError> {
    let Some(endpoint) = tokens.endpoint(api) else {
        return Ok(0);
    };
    let Some(token) = tokens.token(api, company).await? else {
        return Ok(0);
    };
    let locations = endpoint.installed_locations(&token, company).await?;
    let store = tokens.vault().store();
    for location in &locations {
        store.link_location(api, company, location).await?;
    }
    tracing::info!(api = %api, tenant = %company, locations = locations.len(), "linked the company's installed locations");
    Ok(locations.len())
}
