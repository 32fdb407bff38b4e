//! Appointment events (`AppointmentCreate`, `AppointmentUpdate`, `AppointmentDelete`): unlike
//! the other kinds, the entity is nested under `appointment`.

use serde::Deserialize;

use super::null_as_default;

/// The body of an appointment event.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct AppointmentEvent {
    /// The location (sub-account) it belongs to.
    #[serde(deserialize_with = "null_as_default")]
    pub location_id: String,
    /// The appointment.
    #[serde(deserialize_with = "null_as_default")]
    pub appointment: Appointment,
}

/// A calendar appointment. Missing text fields are empty.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Appointment {
    /// The appointment id.
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// Its title.
    #[serde(deserialize_with = "null_as_default")]
    pub title: String,
    /// The calendar it is booked in.
    #[serde(deserialize_with = "null_as_default")]
    pub calendar_id: String,
    /// The contact it is with.
    #[serde(deserialize_with = "null_as_default")]
    pub contact_id: String,
    /// The calendar group, if any.
    #[serde(deserialize_with = "null_as_default")]
    pub group_id: String,
    /// `confirmed`, `new`, `cancelled`, `showed`, `noshow`, `invalid`.
    #[serde(deserialize_with = "null_as_default")]
    pub appointment_status: String,
    /// The user it is assigned to.
    #[serde(deserialize_with = "null_as_default")]
    pub assigned_user_id: String,
    /// Every user taking part.
    #[serde(deserialize_with = "null_as_default")]
    pub users: Vec<String>,
    /// Free-text notes.
    #[serde(deserialize_with = "null_as_default")]
    pub notes: String,
    /// How it was booked (e.g. `booking_widget`).
    #[serde(deserialize_with = "null_as_default")]
    pub source: String,
    /// Where it takes place: an address or a meeting link.
    #[serde(deserialize_with = "null_as_default")]
    pub address: String,
    /// Start (ISO 8601 with offset, as sent).
    #[serde(deserialize_with = "null_as_default")]
    pub start_time: String,
    /// End (ISO 8601 with offset, as sent).
    #[serde(deserialize_with = "null_as_default")]
    pub end_time: String,
    /// When it was booked.
    #[serde(deserialize_with = "null_as_default")]
    pub date_added: String,
    /// When it last changed.
    #[serde(deserialize_with = "null_as_default")]
    pub date_updated: String,
}
