//! Pacing shared by replicas: with a PostgreSQL store, every attempt that got its local slot
//! (the per-process [`super::Pacer`], fair between plugins) also takes one from the (api,
//! tenant) budget in the database, so N replicas together stay under the API's configured
//! `rate_limit` instead of each spending all of it.
//!
//! Only the configured limit is shared; header corrections (`X-RateLimit-*`) and 429 waits stay
//! per process. If the database cannot be asked, the call goes on under the local pacer alone
//! (logged): an API call must not fail because the shared budget is unreachable, and the API's
//! own 429s still pace it.

use std::{sync::OnceLock, time::Duration};

use tokio::time::Instant;

use super::PaceError;
use crate::{
    config::RateLimit,
    ids::{ApiName, TenantId},
    store::postgres::{PostgresStore, pacing::Slot},
};

/// The database holding the shared budgets, set once when the store is PostgreSQL.
#[derive(Debug, Default)]
pub struct SharedBudget {
    store: OnceLock<PostgresStore>,
}

impl SharedBudget {
    /// Shares budgets through `store` from now on (the first call wins).
    pub fn share_through(&self, store: PostgresStore) {
        let _ = self.store.set(store);
    }

    /// Waits for a slot of the shared budget of (`api`, `tenant`) under `limit`, no later than
    /// `deadline`. Returns how long it waited.
    pub async fn take(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        limit: &RateLimit,
        deadline: Instant,
    ) -> Result<Duration, PaceError> {
        let Some(store) = self.store.get() else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        loop {
            match store
                .take_rate_slot(api, tenant, limit.requests, limit.per)
                .await
            {
                Ok(Slot::Granted) => return Ok(started.elapsed()),
                Ok(Slot::Wait(wait)) => {
                    let now = Instant::now();
                    if now + wait >= deadline {
                        return Err(PaceError::Deadline { retry_after: wait });
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::warn!(api = %api, error = %error,
                        "the shared rate budget is unreachable; pacing this call locally only");
                    return Ok(started.elapsed());
                }
            }
        }
    }
}
