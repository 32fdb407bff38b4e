//! The `log` import: a plugin's structured log lines go into the delivery's capped log buffer
//! (kept with the attempt) and into the host's `tracing` log, tagged with the plugin, event,
//! delivery and tenant, and `plugin_log = true` so operators can filter them.
//!
//! Lines past the per-delivery cap are dropped from both: the cap protects the host's log too.

use super::{
    bindings::log::{Host, Level},
    logs::LogBuffer,
    state::{DeliveryTags, State},
};

impl Host for State {
    async fn write(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let (name, level) = match level {
            Level::Trace => ("trace", tracing::Level::TRACE),
            Level::Debug => ("debug", tracing::Level::DEBUG),
            Level::Info => ("info", tracing::Level::INFO),
            Level::Warn => ("warn", tracing::Level::WARN),
            Level::Error => ("error", tracing::Level::ERROR),
        };
        let line = LogBuffer::line(name, &message, fields);
        let kept = self
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.clone());
        if kept {
            emit(
                level,
                &self.tags,
                name,
                &line.message,
                &format_fields(&line.fields),
            );
        }
    }
}

/// The plugin's fields as one `key="value" ...` string (values quoted and escaped, so a field
/// cannot forge the shape of the host's log line).
pub fn format_fields(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{}={v:?}", k.escape_debug()));
    }
    out
}

/// Emits one plugin line into the host's log at `level`.
pub fn emit(
    level: tracing::Level,
    tags: &DeliveryTags,
    plugin_level: &str,
    message: &str,
    fields: &str,
) {
    // `tracing` needs the level as a constant at each call site, hence one arm per level.
    macro_rules! event {
        ($lvl:expr) => {
            tracing::event!(
                $lvl,
                plugin = %tags.plugin,
                event_id = %tags.event_id,
                delivery_id = %tags.delivery_id,
                tenant = %tags.tenant,
                plugin_log = true,
                plugin_level,
                fields,
                "{message}"
            )
        };
    }
    match level {
        tracing::Level::TRACE => event!(tracing::Level::TRACE),
        tracing::Level::DEBUG => event!(tracing::Level::DEBUG),
        tracing::Level::INFO => event!(tracing::Level::INFO),
        tracing::Level::WARN => event!(tracing::Level::WARN),
        _ => event!(tracing::Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_so_they_cannot_forge_log_structure() {
        let fields = vec![
            ("contact".to_string(), "c-1".to_string()),
            ("note".to_string(), "a \"b\"\nplugin_log=false".to_string()),
        ];
        assert_eq!(
            format_fields(&fields),
            r#"contact="c-1" note="a \"b\"\nplugin_log=false""#
        );
    }
}
