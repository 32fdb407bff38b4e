//! Uninstall erasure: once the plugins subscribed to an UNINSTALL have run (none of its
//! deliveries is pending or running), everything held about the tenant goes — its credentials,
//! kv data, cached API answers, stored events and deliveries — and the tombstone stays, so later
//! events are refused until a new INSTALL. An agency (company) UNINSTALL erases the locations
//! it covers too, and leaves each of them a tombstone.
//!
//! Invariant: the tombstone is marked erased only after every erase step succeeded; a failed
//! pass is retried at the next tick, and every step is idempotent.

use std::time::Duration;

use tokio::sync::watch;

use super::tokens::StoredTokens;
use crate::{
    api::ApiClient,
    ids::{ApiName, TenantId, now_ms},
    installations::InstallationState,
    store::{AnyStore, EraseRequest, Removed, Store, StoreError},
};

/// Tombstones erased per pass.
const BATCH: usize = 16;

/// Runs until `stop` turns true, looking for tombstones to erase every `interval`.
pub async fn run(
    store: AnyStore,
    tokens: StoredTokens,
    client: ApiClient,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match store.uninstalls_to_erase(BATCH).await {
            Ok(tombstones) => {
                for (api, tenant) in tombstones {
                    if let Err(e) = erase(&store, &tokens, &client, &api, &tenant).await {
                        tracing::error!(api = %api, tenant = %tenant, error = %e, "erasing an uninstalled tenant failed; will try again");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "looking for uninstalled tenants to erase failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Erases `tenant` of `api` and the locations it covers, then marks its tombstone erased.
pub async fn erase(
    store: &AnyStore,
    tokens: &StoredTokens,
    client: &ApiClient,
    api: &ApiName,
    tenant: &TenantId,
) -> Result<Removed, StoreError> {
    let locations = store.covered_locations(api, tenant).await?;
    let mut total = Removed::default();
    let mut credentials = 0;
    for target in std::iter::once(tenant).chain(&locations) {
        total.add(
            store
                .erase(EraseRequest {
                    tenant: target.clone(),
                    contact: None,
                })
                .await?,
        );
        credentials += store.delete_credential(api, target).await?;
        client.forget_tenant(api, target);
        tokens.forget(api, target);
    }
    for location in &locations {
        store
            .set_installation_state(api, location, InstallationState::Uninstalled, now_ms())
            .await?;
        store.mark_erased(api, location).await?;
    }
    store.mark_erased(api, tenant).await?;
    tracing::info!(
        api = %api,
        tenant = %tenant,
        locations = locations.len(),
        events = total.events,
        deliveries = total.deliveries,
        kv_entries = total.kv_entries,
        credentials,
        "erased an uninstalled tenant"
    );
    Ok(total)
}
