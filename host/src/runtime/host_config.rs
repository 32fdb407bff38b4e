//! The `config` import: the plugin's own `[config]` table from its manifest, read-only.
//! Top-level strings are returned as they are; every other value as JSON text, so a plugin
//! reads `tag = "new-lead"` as `new-lead` and `limits = { max = 3 }` as `{"max":3}`.

use serde_json::{Map, Value};

use super::{bindings::config::Host, state::State};

impl Host for State {
    async fn get(&mut self, key: String) -> Option<String> {
        lookup(&self.config, &key)
    }

    async fn all(&mut self) -> String {
        Value::Object(self.config.as_ref().clone()).to_string()
    }
}

/// The value of `key` as the plugin sees it.
fn lookup(config: &Map<String, Value>, key: &str) -> Option<String> {
    config.get(key).map(|value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_plain_and_other_values_are_json() {
        let config: Map<String, Value> = serde_json::from_str(
            r#"{"tag": "new-lead", "max": 3, "on": true, "nested": {"a": [1, "x"]}}"#,
        )
        .unwrap();
        assert_eq!(lookup(&config, "tag").as_deref(), Some("new-lead"));
        assert_eq!(lookup(&config, "max").as_deref(), Some("3"));
        assert_eq!(lookup(&config, "on").as_deref(), Some("true"));
        assert_eq!(
            lookup(&config, "nested").as_deref(),
            Some(r#"{"a":[1,"x"]}"#)
        );
        assert_eq!(lookup(&config, "missing"), None);
    }
}
