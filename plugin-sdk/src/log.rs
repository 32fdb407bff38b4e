//! Structured logging into the host's log. Each line is tagged by the host with the plugin,
//! event, delivery and tenant, and kept with the attempt (see `wasmhook deliveries show`).
//!
//! Use the macros [`trace!`](crate::trace), [`debug!`](crate::debug), [`info!`](crate::info),
//! [`warn!`](crate::warn) and [`error!`](crate::error). Each takes a `format!` message,
//! optionally followed by `;` and `key => value` fields (values use `Display`):
//!
//! ```no_run
//! use wasmhook_sdk::{info, warn};
//!
//! let contact = "c-1";
//! let tag = "new-lead";
//! info!("tagging started");
//! info!("tagging contact {contact}");
//! info!("tagged contact"; "contact" => contact, "tag" => tag);
//! warn!("tag {} was already present", tag; "contact" => contact);
//! ```
//!
//! Fields are better than interpolation for anything an operator filters on. The host caps
//! lines per delivery and drops the rest, so log decisions, not loops. Never log secrets or
//! personal data you do not need: logs outlive the event.
//!
//! `stdout` and `stderr` (`println!`, panics) also reach the host's log, as plain lines.

use crate::bindings::wasmhook::plugin::log as wit;

/// Severity of a log line.
pub use wit::Level;

/// Writes one log line with key-value fields. The macros call this; call it directly when the
/// level is only known at run time.
pub fn write(level: Level, message: &str, fields: &[(String, String)]) {
    wit::write(level, message, fields);
}

/// Writes a log line at a level chosen at run time; the level macros ([`info!`](crate::info),
/// ...) are shorthands for this.
///
/// ```no_run
/// use wasmhook_sdk::log::Level;
///
/// let level = if 3 > 2 { Level::Warn } else { Level::Info };
/// wasmhook_sdk::log!(level, "slow answer"; "ms" => 1_250);
/// ```
#[macro_export]
macro_rules! log {
    ($level:expr, $($rest:tt)+) => {{
        let (message, fields) = $crate::__log_record!($($rest)+);
        $crate::log::write($level, &message, &fields);
    }};
}

/// Builds `(message, fields)` for [`log!`]. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_record {
    // A literal format string, positional arguments, then `;` and at least one field. The
    // arguments are matched one by one so that the `;` can end them (an `expr` may be followed
    // by `;`, so the match is unambiguous).
    ($fmt:literal $(, $arg:expr)* ; $($key:expr => $value:expr),+ $(,)?) => {
        (
            ::std::format!($fmt $(, $arg)*),
            ::std::vec![$((
                ::std::string::ToString::to_string(&$key),
                ::std::string::ToString::to_string(&$value),
            )),+],
        )
    };
    // Anything `format!` accepts, no fields.
    ($($arg:tt)+) => {
        (
            ::std::format!($($arg)+),
            ::std::vec::Vec::<(::std::string::String, ::std::string::String)>::new(),
        )
    };
}

/// Logs at `trace` level: see [`log`](mod@crate::log) for the forms.
#[macro_export]
macro_rules! trace {
    ($($rest:tt)+) => { $crate::log!($crate::log::Level::Trace, $($rest)+) };
}

/// Logs at `debug` level: see [`log`](mod@crate::log) for the forms.
#[macro_export]
macro_rules! debug {
    ($($rest:tt)+) => { $crate::log!($crate::log::Level::Debug, $($rest)+) };
}

/// Logs at `info` level: see [`log`](mod@crate::log) for the forms.
#[macro_export]
macro_rules! info {
    ($($rest:tt)+) => { $crate::log!($crate::log::Level::Info, $($rest)+) };
}

/// Logs at `warn` level: see [`log`](mod@crate::log) for the forms.
#[macro_export]
macro_rules! warn {
    ($($rest:tt)+) => { $crate::log!($crate::log::Level::Warn, $($rest)+) };
}

/// Logs at `error` level: see [`log`](mod@crate::log) for the forms.
#[macro_export]
macro_rules! error {
    ($($rest:tt)+) => { $crate::log!($crate::log::Level::Error, $($rest)+) };
}

#[cfg(test)]
mod tests {
    fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
        fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn plain_message() {
        let (message, fields) = crate::__log_record!("tagging started");
        assert_eq!(message, "tagging started");
        assert!(fields.is_empty());
    }

    #[test]
    fn format_arguments_positional_inline_and_named() {
        let contact = "c-1";
        let (m1, _) = crate::__log_record!("contact {} has {} tags", contact, 2);
        let (m2, _) = crate::__log_record!("contact {contact}");
        let (m3, _) = crate::__log_record!("contact {c}", c = contact);
        assert_eq!(m1, "contact c-1 has 2 tags");
        assert_eq!(m2, "contact c-1");
        assert_eq!(m3, "contact c-1");
    }

    #[test]
    fn fields_after_a_semicolon() {
        let contact = String::from("c-1");
        let (message, fields) =
            crate::__log_record!("tagged"; "contact" => contact, "attempt" => 3,);
        assert_eq!(message, "tagged");
        assert_eq!(pairs(&fields), [("contact", "c-1"), ("attempt", "3")]);
        // The field took `contact` by reference.
        assert_eq!(contact, "c-1");
    }

    #[test]
    fn format_arguments_and_fields_together() {
        let tag = "new-lead";
        let (message, fields) = crate::__log_record!("tag {} added", tag; "contact" => "c-1");
        assert_eq!(message, "tag new-lead added");
        assert_eq!(pairs(&fields), [("contact", "c-1")]);
    }
}
