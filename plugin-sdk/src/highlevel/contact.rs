//! Contact events (`ContactCreate`, `ContactUpdate`, `ContactDelete`, `ContactTagUpdate`,
//! `ContactDndUpdate`): the contact, flat at the top level of the body.

use serde::Deserialize;

use super::null_as_default;

/// A HighLevel contact as its webhooks carry it. Missing text fields are empty.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Contact {
    /// The contact id.
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// The location (sub-account) it belongs to.
    #[serde(deserialize_with = "null_as_default")]
    pub location_id: String,
    /// Full name as HighLevel shows it.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// First name.
    #[serde(deserialize_with = "null_as_default")]
    pub first_name: String,
    /// Last name.
    #[serde(deserialize_with = "null_as_default")]
    pub last_name: String,
    /// E-mail address.
    #[serde(deserialize_with = "null_as_default")]
    pub email: String,
    /// Phone number, E.164 when HighLevel could normalise it.
    #[serde(deserialize_with = "null_as_default")]
    pub phone: String,
    /// Company name.
    #[serde(deserialize_with = "null_as_default")]
    pub company_name: String,
    /// Tags, as the full list after the change.
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Where the contact came from (e.g. a form's name).
    #[serde(deserialize_with = "null_as_default")]
    pub source: String,
    /// The user the contact is assigned to.
    #[serde(deserialize_with = "null_as_default")]
    pub assigned_to: String,
    /// Do-not-disturb on all channels, when the body says.
    pub dnd: Option<bool>,
    /// When the contact was created (ISO 8601, as sent).
    #[serde(deserialize_with = "null_as_default")]
    pub date_added: String,
    /// Custom field values.
    #[serde(deserialize_with = "null_as_default")]
    pub custom_fields: Vec<CustomFieldValue>,
    /// Street address.
    #[serde(deserialize_with = "null_as_default")]
    pub address1: String,
    /// City.
    #[serde(deserialize_with = "null_as_default")]
    pub city: String,
    /// State or region.
    #[serde(deserialize_with = "null_as_default")]
    pub state: String,
    /// Postal code.
    #[serde(deserialize_with = "null_as_default")]
    pub postal_code: String,
    /// Country code.
    #[serde(deserialize_with = "null_as_default")]
    pub country: String,
    /// Website.
    #[serde(deserialize_with = "null_as_default")]
    pub website: String,
}

/// One custom field's value on a contact.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CustomFieldValue {
    /// The custom field's id (see `GET /locations/{locationId}/customFields`).
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// The value as sent: text, a number, a list, ...
    pub value: serde_json::Value,
}

impl Contact {
    /// Whether the contact carries `tag` (exact match, as HighLevel compares tags).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The value of custom field `id`, if the contact has one.
    pub fn custom_field(&self, id: &str) -> Option<&serde_json::Value> {
        self.custom_fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| &f.value)
    }
}
