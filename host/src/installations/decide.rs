//! The decision: given what a verified event says ([`Facts`]) and what the store holds for its
//! tenant ([`Current`]), accept it (with the installation change and link it implies) or refuse
//! it with a reason. Pure, so every rule is tested here and the store only supplies rows.
//!
//! The rules, in order:
//! 1. The tenant's own installation, when there is one, decides: a live one (pending, active,
//!    needs-reauth) accepts, a tombstone refuses. A location uninstalled on its own stays
//!    refused even while its company's installation is live.
//! 2. Without one, the company's installation decides (the event's `companyId`, else a
//!    recorded company -> location link): a company install covers its locations.
//! 3. INSTALL is always accepted (it is how an installation starts) and creates or revives a
//!    pending installation; UNINSTALL of a live installation is accepted and leaves a tombstone.
//! 4. A lifecycle event older than the state it would change (an INSTALL retried after a newer
//!    UNINSTALL) changes nothing, and is refused as superseded when installations are required.
//! 5. With `require` off, every event is accepted; INSTALL / UNINSTALL still keep the table.

use super::InstallationState;
use crate::{ids::TenantId, sources::Lifecycle};

/// What a verified event says about installations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub lifecycle: Lifecycle,
    pub tenant: TenantId,
    /// The company named next to the tenant, if any.
    pub company: Option<TenantId>,
    /// The sender's time of the event (its timestamp, else when it was received), ms.
    pub at_ms: i64,
}

/// What the store holds: (state, state_at_ms) of the tenant's installation and of its company's
/// (the event's company, else the one linked to the tenant), when they exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Current {
    pub tenant: Option<(InstallationState, i64)>,
    pub company: Option<(InstallationState, i64)>,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Store the event, and apply these changes in the same transaction.
    Accept {
        change: Option<StateChange>,
        /// Record that `company` covers `location`.
        link: Option<(TenantId, TenantId)>,
    },
    /// Do not store the event.
    Refuse(Refusal),
}

/// A new state for the tenant's installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub tenant: TenantId,
    pub state: InstallationState,
    pub at_ms: i64,
}

/// Why an event was refused (HTTP 403, each with its code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Neither the tenant nor its company has an installation.
    #[error("the tenant has no installation of this app; events are accepted after INSTALL")]
    NotInstalled,
    /// The tenant's installation was uninstalled.
    #[error(
        "the app was uninstalled for this tenant; events are accepted again after a new INSTALL"
    )]
    Uninstalled,
    /// An INSTALL or UNINSTALL older than the installation's current state.
    #[error(
        "a newer INSTALL or UNINSTALL of this tenant was already recorded; this one is out of date"
    )]
    Superseded,
}

impl Refusal {
    /// Stable code for responses and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotInstalled => "not_installed",
            Refusal::Uninstalled => "uninstalled",
            Refusal::Superseded => "superseded",
        }
    }
}

/// Decides whether the event is accepted; `require` is the source's `require_installation`.
pub fn decide(require: bool, facts: &Facts, current: &Current) -> Decision {
    let link = facts
        .company
        .clone()
        .filter(|company| *company != facts.tenant)
        .map(|company| (company, facts.tenant.clone()));
    let change = |state| {
        Some(StateChange {
            tenant: facts.tenant.clone(),
            state,
            at_ms: facts.at_ms,
        })
    };
    // Rule 4: a change may not go back in time.
    let stale = current.tenant.is_some_and(|(_, at)| facts.at_ms < at);
    let live = |row: Option<(InstallationState, i64)>| row.map(|(state, _)| state.accepts_events());
    // Rules 1 and 2: the tenant's own row, else its company's.
    let covered = match live(current.tenant) {
        Some(accepts) => accepts,
        None => live(current.company).unwrap_or(false),
    };
    match facts.lifecycle {
        Lifecycle::Install => {
            if stale {
                return if require {
                    Decision::Refuse(Refusal::Superseded)
                } else {
                    Decision::Accept { change: None, link }
                };
            }
            let change = match current.tenant {
                // Already live: keep its state (and, later, its credentials).
                Some((state, _)) if state.accepts_events() => None,
                _ => change(InstallationState::Pending),
            };
            Decision::Accept { change, link }
        }
        Lifecycle::Uninstall => {
            if require && !covered {
                return Decision::Refuse(refusal(current));
            }
            if stale {
                return if require {
                    Decision::Refuse(Refusal::Superseded)
                } else {
                    Decision::Accept { change: None, link }
                };
            }
            Decision::Accept {
                change: change(InstallationState::Uninstalled),
                link,
            }
        }
        Lifecycle::Other => {
            if require && !covered {
                return Decision::Refuse(refusal(current));
            }
            Decision::Accept { change: None, link }
        }
    }
}

/// Why an uncovered tenant is refused: its own tombstone, or no installation at all.
fn refusal(current: &Current) -> Refusal {
    match current.tenant {
        Some((InstallationState::Uninstalled, _)) => Refusal::Uninstalled,
        _ => Refusal::NotInstalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstallationState::*;

    fn facts(lifecycle: Lifecycle, company: Option<&str>, at_ms: i64) -> Facts {
        Facts {
            lifecycle,
            tenant: TenantId::new("loc-1"),
            company: company.map(TenantId::new),
            at_ms,
        }
    }

    fn current(tenant: Option<InstallationState>, company: Option<InstallationState>) -> Current {
        Current {
            tenant: tenant.map(|s| (s, 100)),
            company: company.map(|s| (s, 100)),
        }
    }

    fn accepted(d: &Decision) -> bool {
        matches!(d, Decision::Accept { .. })
    }

    #[test]
    fn an_unknown_tenant_is_refused_until_install() {
        let event = facts(Lifecycle::Other, None, 200);
        assert_eq!(
            decide(true, &event, &Current::default()),
            Decision::Refuse(Refusal::NotInstalled)
        );
        let install = decide(
            true,
            &facts(Lifecycle::Install, None, 200),
            &Current::default(),
        );
        assert_eq!(
            install,
            Decision::Accept {
                change: Some(StateChange {
                    tenant: TenantId::new("loc-1"),
                    state: Pending,
                    at_ms: 200
                }),
                link: None
            }
        );
        for state in [Pending, Active, NeedsReauth] {
            assert!(
                accepted(&decide(true, &event, &current(Some(state), None))),
                "{state:?}"
            );
        }
    }

    #[test]
    fn uninstall_leaves_a_tombstone_that_refuses_until_a_new_install() {
        let uninstall = decide(
            true,
            &facts(Lifecycle::Uninstall, None, 200),
            &current(Some(Active), None),
        );
        assert!(matches!(
            uninstall,
            Decision::Accept {
                change: Some(StateChange {
                    state: Uninstalled,
                    ..
                }),
                ..
            }
        ));
        let tomb = current(Some(Uninstalled), None);
        assert_eq!(
            decide(true, &facts(Lifecycle::Other, None, 300), &tomb),
            Decision::Refuse(Refusal::Uninstalled)
        );
        assert_eq!(
            decide(true, &facts(Lifecycle::Uninstall, None, 300), &tomb),
            Decision::Refuse(Refusal::Uninstalled),
            "a second UNINSTALL has nothing left to uninstall"
        );
        let revive = decide(true, &facts(Lifecycle::Install, None, 300), &tomb);
        assert!(matches!(
            revive,
            Decision::Accept {
                change: Some(StateChange { state: Pending, .. }),
                ..
            }
        ));
    }

    #[test]
    fn an_install_on_a_live_installation_keeps_its_state() {
        for state in [Pending, Active, NeedsReauth] {
            assert_eq!(
                decide(
                    true,
                    &facts(Lifecycle::Install, None, 300),
                    &current(Some(state), None)
                ),
                Decision::Accept {
                    change: None,
                    link: None
                }
            );
        }
    }

    #[test]
    fn out_of_date_lifecycle_events_change_nothing() {
        // An INSTALL sent at 50 arrives after the UNINSTALL of 100.
        let old_install = facts(Lifecycle::Install, None, 50);
        let tomb = current(Some(Uninstalled), None);
        assert_eq!(
            decide(true, &old_install, &tomb),
            Decision::Refuse(Refusal::Superseded)
        );
        assert_eq!(
            decide(false, &old_install, &tomb),
            Decision::Accept {
                change: None,
                link: None
            }
        );
        let old_uninstall = facts(Lifecycle::Uninstall, None, 50);
        assert_eq!(
            decide(true, &old_uninstall, &current(Some(Pending), None)),
            Decision::Refuse(Refusal::Superseded)
        );
    }

    #[test]
    fn a_company_installation_covers_its_locations() {
        let event = facts(Lifecycle::Other, Some("co-1"), 200);
        let d = decide(true, &event, &current(None, Some(Active)));
        assert_eq!(
            d,
            Decision::Accept {
                change: None,
                link: Some((TenantId::new("co-1"), TenantId::new("loc-1")))
            }
        );
        // Through a recorded link (the event itself names no company).
        let event = facts(Lifecycle::Other, None, 200);
        assert!(accepted(&decide(
            true,
            &event,
            &current(None, Some(Pending))
        )));
        // An uninstalled company covers nothing.
        assert_eq!(
            decide(true, &event, &current(None, Some(Uninstalled))),
            Decision::Refuse(Refusal::NotInstalled)
        );
        // The location's own tombstone wins over its company's live installation.
        assert_eq!(
            decide(true, &event, &current(Some(Uninstalled), Some(Active))),
            Decision::Refuse(Refusal::Uninstalled)
        );
    }

    #[test]
    fn without_require_everything_is_accepted_and_the_table_is_kept() {
        let event = facts(Lifecycle::Other, None, 200);
        assert!(accepted(&decide(false, &event, &Current::default())));
        assert!(accepted(&decide(
            false,
            &event,
            &current(Some(Uninstalled), None)
        )));
        let d = decide(
            false,
            &facts(Lifecycle::Uninstall, None, 200),
            &Current::default(),
        );
        assert!(matches!(
            d,
            Decision::Accept {
                change: Some(StateChange {
                    state: Uninstalled,
                    ..
                }),
                ..
            }
        ));
    }

    #[test]
    fn a_company_equal_to_the_tenant_is_no_link() {
        let mut event = facts(Lifecycle::Install, Some("loc-1"), 200);
        event.company = Some(TenantId::new("loc-1"));
        assert!(matches!(
            decide(true, &event, &Current::default()),
            Decision::Accept { link: None, .. }
        ));
    }

    #[test]
    fn refusal_codes_are_stable() {
        assert_eq!(Refusal::NotInstalled.code(), "not_installed");
        assert_eq!(Refusal::Uninstalled.code(), "uninstalled");
        assert_eq!(Refusal::Superseded.code(), "superseded");
    }
}
