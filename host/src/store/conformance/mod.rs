//! The store conformance suite: the behaviour every [`Store`] backend must show, written only
//! against the trait so that SQLite and PostgreSQL run the same checks.
//!
//! Call [`run_all`] with a function that returns a fresh, empty store, or one check at a time
//! (each is a `pub async fn` taking a fresh store) so a failure names the broken behaviour. The
//! checks panic with a message on failure, like any test. They need a multi-threaded tokio
//! runtime (they spawn concurrent callers) and take about a second in all: lease and expiry
//! checks sleep for short real times, and each such check pairs a short deadline (asserted to
//! pass) with a long one (asserted not to), so a slow machine cannot make them flaky.
//!
//! Compiled into the library (not `#[cfg(test)]`) so that the end-to-end test crate can run it.

mod completion;
mod credentials;
mod fixtures;
mod ingest;
mod installations;
mod kv;
mod leases;
mod listing;
mod maintenance;
mod scheduling;

use std::future::Future;

pub use self::{
    completion::*, credentials::*, ingest::*, installations::*, kv::*, leases::*, listing::*,
    maintenance::*, scheduling::*,
};
use super::Store;

/// Runs every check, each on a store returned by `fresh` (it must be new and empty).
pub async fn run_all<S, F, Fut>(fresh: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    ingest_stores_event_and_deliveries(fresh().await).await;
    duplicate_ingest_writes_nothing(fresh().await).await;
    event_without_subscribers_is_stored(fresh().await).await;
    concurrent_ingests_insert_each_event_once(fresh().await).await;
    claim_takes_oldest_due_first_with_its_event(fresh().await).await;
    concurrent_claimers_never_share_a_delivery(fresh().await).await;
    lease_hides_a_claimed_delivery_until_it_expires(fresh().await).await;
    renew_extends_the_lease(fresh().await).await;
    stale_token_is_lease_lost_and_writes_nothing(fresh().await).await;
    complete_succeeded_records_the_attempt(fresh().await).await;
    retry_is_due_at_its_time_and_not_before(fresh().await).await;
    complete_dead_records_the_attempt(fresh().await).await;
    expired_last_attempt_makes_the_delivery_dead(fresh().await).await;
    deliveries_lists_newest_first_and_filters(fresh().await).await;
    kv_get_set_delete(fresh().await).await;
    kv_compare_and_swap(fresh().await).await;
    kv_values_expire(fresh().await).await;
    kv_usage_counts_key_and_value_bytes(fresh().await).await;
    kv_scopes_are_isolated(fresh().await).await;
    claim_respects_each_plugins_free_slots(fresh().await).await;
    same_key_deliveries_run_one_at_a_time_in_order(fresh().await).await;
    defer_does_not_spend_an_attempt(fresh().await).await;
    replay_revives_a_dead_delivery_with_fresh_attempts(fresh().await).await;
    replay_dead_filters_and_paces(fresh().await).await;
    cancel_deletes_only_pending_deliveries(fresh().await).await;
    purge_deletes_dead_deliveries(fresh().await).await;
    retention_keeps_what_is_due_or_recent(fresh().await).await;
    erase_removes_a_tenant_or_a_contact(fresh().await).await;
    payload_is_dropped_once_every_delivery_succeeded(fresh().await).await;
    ping_answers(fresh().await).await;
    an_unknown_tenant_is_refused_and_nothing_is_written(fresh().await).await;
    install_accepts_and_uninstall_refuses_again(fresh().await).await;
    state_changes_never_go_back_in_time(fresh().await).await;
    a_company_installation_covers_linked_locations(fresh().await).await;
    concurrent_installs_store_the_event_once(fresh().await).await;
    credentials_swap_only_at_the_expected_version(fresh().await).await;
    the_refresh_lease_admits_one_holder_until_it_expires(fresh().await).await;
    a_tombstone_is_erasable_once_its_uninstall_deliveries_are_done(fresh().await).await;
}
