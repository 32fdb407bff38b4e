//! How long a claimed delivery is held, and its renewal.
//!
//! A lease is the plugin's timeout plus [`LEASE_MARGIN`]: a worker that is alive always renews
//! (every third of the lease) long before it lapses, and even a worker that stopped renewing
//! would have seen its plugin cut off by the timeout first; so only a dead worker or process
//! lets a lease lapse, and a long-running delivery is never run twice. Short leases matter after
//! a crash: the deliveries the dead process held become claimable one lease later.

use std::time::Duration;

/// Added to the plugin's timeout: room for instantiation, the completion's write and a slow
/// disk, on top of the plugin's own budget.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The lease of a plugin with `timeout`.
pub fn lease_for(timeout: Duration) -> Duration {
    timeout.saturating_add(LEASE_MARGIN)
}

/// How often a lease of length `lease` is renewed.
pub(super) fn renew_every(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_outlasts_the_timeout_and_is_renewed_well_before_it_lapses() {
        let timeout = Duration::from_secs(30);
        let lease = lease_for(timeout);
        assert!(lease > timeout);
        assert!(
            renew_every(lease) * 2 < lease,
            "two renewals fit in one lease"
        );
        assert_eq!(lease_for(Duration::MAX), Duration::MAX, "saturates");
    }
}
