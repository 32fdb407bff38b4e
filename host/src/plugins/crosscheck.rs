//! Checks a manifest against the host config: every API its capabilities name is configured
//! (`[apis.<name>]`), and every source its `events` name is configured (`[[sources]]`). A
//! manifest is valid on its own without this (plugins are written apart from any one host); a
//! name that no config entry matches is almost always a typo, and `wasmhook check` and the
//! start-up load say so, naming the manifest, the field and the fix.

use crate::{
    config::Config,
    plugins::{Manifest, ManifestError},
};

/// Every name in `manifest` that `config` does not know, each as an error naming the field.
pub fn check(manifest: &Manifest, config: &Config) -> Vec<ManifestError> {
    let mut problems = Vec::new();
    let err = |field: String, message: String| ManifestError {
        path: manifest.path.clone(),
        field,
        message,
    };
    let apis: Vec<&str> = config.apis.keys().map(|a| a.as_str()).collect();
    for api in manifest.capabilities.apis.keys() {
        if !apis.contains(&api.as_str()) {
            problems.push(err(
                format!("capabilities.api.{api}"),
                format!(
                    "no API `{api}` is configured in {} ({}); fix the name, or add an \
                     `[apis.{api}]` table to the config",
                    config.path.display(),
                    known("configured APIs", &apis),
                ),
            ));
        }
    }
    let sources: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    for (i, pattern) in manifest.events.iter().enumerate() {
        if let Some(source) = &pattern.source
            && !sources.contains(&source.as_str())
        {
            problems.push(err(
                "events".into(),
                format!(
                    "entry {}: no source `{source}` is configured in {} ({}), so it would never \
                     receive these events; fix the name, or add a `[[sources]]` entry named \
                     `{source}`",
                    i + 1,
                    config.path.display(),
                    known("configured sources", &sources),
                ),
            ));
        }
    }
    problems
}

/// "configured APIs: a, b" or "none are configured".
fn known(what: &str, names: &[&str]) -> String {
    if names.is_empty() {
        format!("no {what}")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        Config::parse(
            Path::new("conf/wasmhook.toml"),
            "[apis.highlevel]\nbase_url = \"https://api.example.test\"\n\
             [[sources]]\nname = \"highlevel\"\nscheme = \"highlevel\"\napp_id = \"a\"\n",
        )
        .unwrap()
    }

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(
            Path::new("plugins/p.toml"),
            &format!("name = \"p\"\n{text}"),
        )
        .unwrap()
    }

    #[test]
    fn known_names_pass() {
        let m = manifest(
            "events = [\"highlevel:ContactCreate\", \"*:INSTALL\", \"*\"]\n\
             [capabilities.api.highlevel]\nallow = [\"GET /contacts/*\"]\n",
        );
        assert!(check(&m, &config()).is_empty());
    }

    #[test]
    fn unknown_apis_and_sources_are_named_with_the_fix() {
        let m = manifest(
            "events = [\"highlevel:ContactCreate\", \"stripe:charge.succeeded\"]\n\
             [capabilities.api.hubspot]\nallow = [\"GET /x\"]\n",
        );
        let problems: Vec<String> = check(&m, &config()).iter().map(|e| e.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with("plugins/p.toml: capabilities.api.hubspot: no API `hubspot`"),
            "{problems:#?}"
        );
        assert!(
            problems[0].contains("configured APIs: highlevel")
                && problems[0].contains("[apis.hubspot]"),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("plugins/p.toml: events: entry 2: no source `stripe`"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("configured sources: highlevel"),
            "{problems:#?}"
        );
    }
}
