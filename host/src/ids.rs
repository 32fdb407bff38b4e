//! Identifier newtypes. Each wraps a `String` so that an event id can never be passed where a
//! delivery id or a plugin name is expected; all of them display as their inner text.

use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps `value` without checking it; callers validate where the value comes from.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The inner text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the inner text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A webhook's id, unique per source: the sender's id or `sha256:<hex>` of the raw body.
    EventId
);
string_id!(
    /// One (event, plugin) delivery. Stable across attempts; a UUIDv7 so ids sort by creation.
    DeliveryId
);
string_id!(
    /// A plugin's name from its manifest; also the stem of its `.wasm` / `.toml` files.
    PluginName
);
string_id!(
    /// The tenant an event belongs to (HighLevel `locationId` / `companyId` / `altId`).
    TenantId
);
string_id!(
    /// A configured source's name (`[[sources]] name`), the `{source}` in `/webhooks/{source}`.
    SourceName
);
string_id!(
    /// A configured API's name (`[apis.<name>]`).
    ApiName
);
string_id!(
    /// Fences a claimed delivery: only the holder of the current token may renew or complete it.
    LeaseToken
);

impl DeliveryId {
    /// A new, time-ordered delivery id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl LeaseToken {
    /// A new random lease token.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// Milliseconds since the Unix epoch, the one time unit stored and passed around.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
