//! Opportunity events (`OpportunityCreate`, `...Update`, `...Delete`, `...StatusUpdate`,
//! `...StageUpdate`, `...AssignedToUpdate`, `...MonetaryValueUpdate`): the opportunity, flat at
//! the top level of the body.

use serde::Deserialize;

use super::null_as_default;

/// A HighLevel opportunity (a deal in a pipeline). Missing text fields are empty.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Opportunity {
    /// The opportunity id.
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// The location (sub-account) it belongs to.
    #[serde(deserialize_with = "null_as_default")]
    pub location_id: String,
    /// Its name.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// The contact it is about.
    #[serde(deserialize_with = "null_as_default")]
    pub contact_id: String,
    /// The pipeline it is in.
    #[serde(deserialize_with = "null_as_default")]
    pub pipeline_id: String,
    /// The stage of that pipeline it is in.
    #[serde(deserialize_with = "null_as_default")]
    pub pipeline_stage_id: String,
    /// `open`, `won`, `lost` or `abandoned`.
    #[serde(deserialize_with = "null_as_default")]
    pub status: String,
    /// Its value in the location's currency, when set.
    pub monetary_value: Option<f64>,
    /// The user it is assigned to.
    #[serde(deserialize_with = "null_as_default")]
    pub assigned_to: String,
    /// Where it came from.
    #[serde(deserialize_with = "null_as_default")]
    pub source: String,
    /// When it was created (ISO 8601, as sent).
    #[serde(deserialize_with = "null_as_default")]
    pub date_added: String,
}

impl Opportunity {
    /// Whether the status is `won`.
    pub fn is_won(&self) -> bool {
        self.status == "won"
    }
}
