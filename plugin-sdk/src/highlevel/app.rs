//! App lifecycle events: `INSTALL` (location or agency level) and `UNINSTALL`.
//!
//! The tenant fields are optional here because they say which level the event is at: an agency
//! install carries `companyId` and no `locationId`.

use serde::Deserialize;

use super::null_as_default;

/// `INSTALL`: the app was installed.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Install {
    /// The marketplace app's id (the host already refused other apps' events).
    #[serde(deserialize_with = "null_as_default")]
    pub app_id: String,
    /// The app version installed.
    pub version_id: Option<String>,
    /// `Location` or `Company`, when the body says.
    pub install_type: Option<String>,
    /// The location, for a location-level install.
    pub location_id: Option<String>,
    /// The agency (company).
    pub company_id: Option<String>,
    /// The user who installed it.
    pub user_id: Option<String>,
    /// The agency's name.
    pub company_name: Option<String>,
    /// The plan chosen, for paid apps.
    pub plan_id: Option<String>,
    /// Whether the agency is white-labelled.
    pub is_whitelabel_company: Option<bool>,
    /// The trial, when the plan has one.
    pub trial: Option<Trial>,
}

impl Install {
    /// Whether the app was installed for a whole agency rather than one location.
    pub fn is_agency(&self) -> bool {
        match self.install_type.as_deref() {
            Some(kind) => {
                kind.eq_ignore_ascii_case("company") || kind.eq_ignore_ascii_case("agency")
            }
            None => self.location_id.is_none(),
        }
    }
}

/// A paid plan's trial.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Trial {
    /// Whether the install is on trial.
    pub on_trial: bool,
    /// Trial length in days.
    pub trial_duration: Option<u32>,
    /// When the trial started (ISO 8601, as sent).
    pub trial_start_date: Option<String>,
}

/// `UNINSTALL`: the app was removed. Clean up what the plugin keeps outside the host; the host
/// erases the tenant's tokens, kv, cache and stored events itself afterwards.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Uninstall {
    /// The marketplace app's id.
    #[serde(deserialize_with = "null_as_default")]
    pub app_id: String,
    /// The location, for a location-level uninstall.
    pub location_id: Option<String>,
    /// The agency, for an agency-level uninstall.
    pub company_id: Option<String>,
}
