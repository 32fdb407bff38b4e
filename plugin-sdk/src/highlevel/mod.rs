//! Typed HighLevel webhook events: [`HighLevelEvent::parse`] (or [`Event::highlevel`]) turns a
//! payload into the struct for its kind, so a handler reads `contact.email` instead of walking
//! JSON.
//!
//! ```no_run
//! use wasmhook_sdk::{Delivery, Event, Handler, HandlerError, api, highlevel::HighLevelEvent};
//!
//! struct WelcomeNewContacts;
//!
//! impl Handler for WelcomeNewContacts {
//!     fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
//!         if let HighLevelEvent::Contact(contact) = event.highlevel()? {
//!             api::post("highlevel", format!("/contacts/{}/tags", contact.id))
//!                 .json(&serde_json::json!({ "tags": ["welcome"] }))
//!                 .send()?;
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Invariants: parsing is lenient, as HighLevel's deliveries require. Unknown keys are ignored
//! (real deliveries carry `appId`, `versionId`, `timestamp`, `webhookId` and more than the docs
//! show), and every documented key may be missing: text fields are then empty, lists empty and
//! optional values `None`. Only a key of the wrong JSON type (e.g. `"tags": "a"`) is an error.
//! A kind this module has no struct for is [`HighLevelEvent::Other`] with the whole document.
//!
//! [`Event::highlevel`]: crate::Event::highlevel

mod app;
mod appointment;
mod contact;
mod message;
mod opportunity;
#[cfg(test)]
mod tests;

pub use app::{Install, Trial, Uninstall};
pub use appointment::{Appointment, AppointmentEvent};
pub use contact::{Contact, CustomFieldValue};
pub use message::Message;
pub use opportunity::Opportunity;

use serde::de::DeserializeOwned;

use crate::error::JsonError;

/// A HighLevel webhook, typed by its kind. The kind itself (e.g. `ContactCreate` versus
/// `ContactUpdate`) stays available as [`Event::kind`](crate::Event::kind).
#[derive(Clone, Debug, PartialEq)]
pub enum HighLevelEvent {
    /// `ContactCreate`, `ContactUpdate`, `ContactDelete`, `ContactTagUpdate`,
    /// `ContactDndUpdate`.
    Contact(Contact),
    /// `OpportunityCreate`, `OpportunityUpdate`, `OpportunityDelete`,
    /// `OpportunityStatusUpdate`, `OpportunityStageUpdate`, `OpportunityAssignedToUpdate`,
    /// `OpportunityMonetaryValueUpdate`.
    Opportunity(Opportunity),
    /// `AppointmentCreate`, `AppointmentUpdate`, `AppointmentDelete`.
    Appointment(AppointmentEvent),
    /// `InboundMessage`, `OutboundMessage`.
    Message(Message),
    /// `INSTALL`: the app was installed on a location or an agency.
    Install(Install),
    /// `UNINSTALL`: the app was removed; the host erases the tenant's data after the plugins
    /// subscribed to it ran.
    Uninstall(Uninstall),
    /// Any other kind (or none): the payload as generic JSON.
    Other(serde_json::Value),
}

impl HighLevelEvent {
    /// Parses `payload` as the HighLevel event of kind `kind` (the host's event kind, which is
    /// the body's `type` for HighLevel; pass `""` to read `type` from the payload).
    pub fn parse(kind: &str, payload: &str) -> Result<HighLevelEvent, JsonError> {
        let from_body;
        let kind = if kind.is_empty() {
            from_body = body_type(payload)?;
            from_body.as_str()
        } else {
            kind
        };
        Ok(match kind {
            "ContactCreate" | "ContactUpdate" | "ContactDelete" | "ContactTagUpdate"
            | "ContactDndUpdate" => HighLevelEvent::Contact(decode(kind, payload)?),
            "OpportunityCreate"
            | "OpportunityUpdate"
            | "OpportunityDelete"
            | "OpportunityStatusUpdate"
            | "OpportunityStageUpdate"
            | "OpportunityAssignedToUpdate"
            | "OpportunityMonetaryValueUpdate" => {
                HighLevelEvent::Opportunity(decode(kind, payload)?)
            }
            "AppointmentCreate" | "AppointmentUpdate" | "AppointmentDelete" => {
                HighLevelEvent::Appointment(decode(kind, payload)?)
            }
            "InboundMessage" | "OutboundMessage" => HighLevelEvent::Message(decode(kind, payload)?),
            "INSTALL" => HighLevelEvent::Install(decode(kind, payload)?),
            "UNINSTALL" => HighLevelEvent::Uninstall(decode(kind, payload)?),
            _ => HighLevelEvent::Other(decode(kind, payload)?),
        })
    }

    /// The HighLevel location the event belongs to, when it names one.
    pub fn location_id(&self) -> Option<&str> {
        let id = match self {
            Self::Contact(c) => &c.location_id,
            Self::Opportunity(o) => &o.location_id,
            Self::Appointment(a) => &a.location_id,
            Self::Message(m) => &m.location_id,
            Self::Install(i) => return i.location_id.as_deref(),
            Self::Uninstall(u) => return u.location_id.as_deref(),
            Self::Other(v) => return v.get("locationId").and_then(|v| v.as_str()),
        };
        (!id.is_empty()).then_some(id.as_str())
    }
}

/// The body's `type`, or `""` when it has none (some HighLevel events carry no `type`).
fn body_type(payload: &str) -> Result<String, JsonError> {
    let value: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| JsonError::new("event payload", &e))?;
    Ok(value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned())
}

fn decode<T: DeserializeOwned>(kind: &str, payload: &str) -> Result<T, JsonError> {
    serde_json::from_str(payload).map_err(|e| JsonError::new(format!("{kind} event payload"), &e))
}

/// Reads a JSON `null` as the type's default, so `"tags": null` reads like a missing key.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
