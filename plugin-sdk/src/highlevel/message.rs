//! Conversation message events (`InboundMessage`, `OutboundMessage`): SMS, e-mail, WhatsApp,
//! calls and the rest, flat at the top level of the body.

use serde::{Deserialize, Deserializer};

use super::null_as_default;

/// A message in a conversation. Missing text fields are empty.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Message {
    /// The location (sub-account) it belongs to.
    #[serde(deserialize_with = "null_as_default")]
    pub location_id: String,
    /// The contact on the other side.
    #[serde(deserialize_with = "null_as_default")]
    pub contact_id: String,
    /// The conversation it is part of.
    #[serde(deserialize_with = "null_as_default")]
    pub conversation_id: String,
    /// The message id, when the body carries one.
    #[serde(deserialize_with = "null_as_default")]
    pub message_id: String,
    /// `SMS`, `Email`, `WhatsApp`, `Call`, `GMB`, `FB`, `IG`, ...
    #[serde(deserialize_with = "null_as_default")]
    pub message_type: String,
    /// `inbound` or `outbound`.
    #[serde(deserialize_with = "null_as_default")]
    pub direction: String,
    /// The text (HTML for e-mail).
    #[serde(deserialize_with = "null_as_default")]
    pub body: String,
    /// Delivery status, e.g. `delivered`.
    #[serde(deserialize_with = "null_as_default")]
    pub status: String,
    /// MIME type of the body, e.g. `text/plain`.
    #[serde(deserialize_with = "null_as_default")]
    pub content_type: String,
    /// Attachment URLs.
    #[serde(deserialize_with = "null_as_default")]
    pub attachments: Vec<String>,
    /// E-mail subject.
    #[serde(deserialize_with = "null_as_default")]
    pub subject: String,
    /// E-mail sender.
    #[serde(deserialize_with = "null_as_default")]
    pub from: String,
    /// E-mail recipients (one address or a list in the body; always a list here).
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// When it was sent or received (ISO 8601, as sent).
    #[serde(deserialize_with = "null_as_default")]
    pub date_added: String,
}

impl Message {
    /// Whether the contact sent it.
    pub fn is_inbound(&self) -> bool {
        self.direction == "inbound"
    }

    /// Whether it is an SMS.
    pub fn is_sms(&self) -> bool {
        self.message_type.eq_ignore_ascii_case("sms")
    }
}

/// A string or a list of strings (or null), as a list.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}
