//! The rate budget replicas share: a sliding window of the requests sent per (api, tenant),
//! kept in `rate_slots`, so N replicas together stay under an API's limit (HighLevel: 100
//! requests per 10 s per app and tenant) instead of each spending the whole budget.
//!
//! Invariants:
//! - A take runs under a transaction-level advisory lock per (api, tenant): counting the
//!   window and recording the new request are one step across every replica.
//! - Times are the database's wall clock at the moment of the take (`clock_timestamp()`, not
//!   the transaction's start, which may be before the lock wait), so all replicas measure the
//!   window on one clock.
//! - The window is widened by [`SEND_MARGIN`]: a request recorded at `t` reaches the API a
//!   little later, and the margin keeps the API's own count of any window within the limit.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::{PostgresStore, duration_ms};
use crate::{
    ids::{ApiName, TenantId},
    store::StoreError,
};

/// Added to the window: covers the time between the take and the request's arrival at the
/// API, and the difference between the database's clock and the API's.
pub const SEND_MARGIN: Duration = Duration::from_millis(500);

/// What a take gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Recorded: send now.
    Granted,
    /// The window is full: the oldest request in it leaves after this long; try again then.
    Wait(Duration),
}

impl PostgresStore {
    /// Takes one request's slot from the shared budget of (`api`, `tenant`): at most
    /// `requests` in any window of `per` (plus [`SEND_MARGIN`]), across every process on
    /// this database.
    pub async fn take_rate_slot(
        &self,
        api: &ApiName,
        tenant: &TenantId,
        requests: u32,
        per: Duration,
    ) -> Result<Slot, StoreError> {
        let window = duration_ms(per.saturating_add(SEND_MARGIN));
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let key = format!("{}\u{1f}{}", api.as_str(), tenant.as_str());
        tx.execute(
            "SELECT pg_advisory_xact_lock(
                 hashtextextended('wasmhook.pace.' || current_schema() || '.' || $1, 0))",
            &[&key],
        )
        .await?;
        let now: i64 = tx
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .await?
            .try_get(0)?;
        let expire = tx
            .prepare_cached(
                "DELETE FROM rate_slots WHERE api = $1 AND tenant = $2 AND taken_at_ms <= $3",
            )
            .await?;
        tx.execute(&expire, &[&api.as_str(), &tenant.as_str(), &(now - window)])
            .await?;
        let count = tx
            .prepare_cached(
                "SELECT count(*), min(taken_at_ms) FROM rate_slots WHERE api = $1 AND tenant = $2",
            )
            .await?;
        let row = tx
            .query_one(&count, &[&api.as_str(), &tenant.as_str()])
            .await?;
        let (used, oldest): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        if used >= i64::from(requests) {
            tx.commit().await?;
            let frees_at = oldest.unwrap_or(now).saturating_add(window);
            let wait = u64::try_from((frees_at - now).max(1)).unwrap_or(1);
            return Ok(Slot::Wait(Duration::from_millis(wait)));
        }
        let record = tx
            .prepare_cached("INSERT INTO rate_slots (api, tenant, taken_at_ms) VALUES ($1, $2, $3)")
            .await?;
        tx.execute(&record, &[&api.as_str(), &tenant.as_str(), &now])
            .await?;
        tx.commit().await?;
        Ok(Slot::Granted)
    }
}
