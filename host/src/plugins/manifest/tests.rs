//! Manifest parsing: defaults, every field's validation, and errors naming file + field.

use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(Path::new("plugins/contact-tagger.toml"), text)
}

/// Parses `text`, expects an error on `field`, and returns its message.
fn error_on(text: &str, field: &str) -> String {
    let e = parse(text).expect_err("the manifest should be refused");
    assert_eq!(e.path, Path::new("plugins/contact-tagger.toml"));
    assert_eq!(e.field, field, "wrong field in: {e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("plugins/contact-tagger.toml: {field}: ")),
        "{shown}"
    );
    e.message
}

const MINIMAL: &str = r#"
name = "contact-tagger"
events = ["highlevel:ContactCreate"]
"#;

#[test]
fn a_minimal_manifest_gets_the_defaults() {
    let m = parse(MINIMAL).unwrap();
    assert_eq!(m.name.as_str(), "contact-tagger");
    assert_eq!(m.path, Path::new("plugins/contact-tagger.toml"));
    assert_eq!(m.timeout, Duration::from_secs(30));
    assert_eq!(m.memory, 64 * 1024 * 1024);
    assert_eq!(m.max_attempts, 5);
    assert_eq!(m.max_api_calls, 50);
    assert!(m.capabilities.apis.is_empty());
    assert!(m.config.is_empty());
    assert!(m.subscribes_to("highlevel", "ContactCreate"));
    assert!(!m.subscribes_to("highlevel", "ContactDelete"));
    assert!(!m.subscribes_to("stripe", "ContactCreate"));
}

#[test]
fn the_design_example_parses() {
    let m = parse(
        r#"
name = "contact-tagger"
events = ["highlevel:ContactCreate", "highlevel:ContactTagUpdate"]
timeout = "10s"
memory = "32MiB"
max_attempts = 3
max_api_calls = 20

[capabilities.api.highlevel]
allow = ["GET /contacts/*", "POST /contacts/*/tags", "GET /opportunities/pipelines"]

[config]
tag = "new-lead"
weights = [1, 2.5]
nested = { on = true, since = 1979-05-27T07:32:00Z }
"#,
    )
    .unwrap();
    assert_eq!(m.events.len(), 2);
    assert_eq!(m.timeout, Duration::from_secs(10));
    assert_eq!(m.memory, 32 * 1024 * 1024);
    assert_eq!(m.max_attempts, 3);
    assert_eq!(m.max_api_calls, 20);
    assert!(m.capabilities.apis.contains_key(&ApiName::new("highlevel")));
    assert_eq!(
        serde_json::Value::Object(m.config),
        serde_json::json!({
            "tag": "new-lead",
            "weights": [1, 2.5],
            "nested": {"on": true, "since": "1979-05-27T07:32:00Z"},
        })
    );
}

#[test]
fn event_patterns() {
    let all = EventPattern::parse("*").unwrap();
    assert!(all.matches("stripe", "invoice.paid"));
    let source = EventPattern::parse("github:*").unwrap();
    assert!(source.matches("github", "push"));
    assert!(!source.matches("stripe", "push"));
    let kind = EventPattern::parse("*:ContactCreate").unwrap();
    assert!(kind.matches("hl-eu", "ContactCreate"));
    for bad in ["ContactCreate", ":x", "x:", "a b:c", "a:b:c", "h*:x"] {
        assert!(EventPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn duplicate_event_patterns_are_merged() {
    let m = parse(
        r#"name = "contact-tagger"
events = ["highlevel:*", "highlevel:*"]"#,
    )
    .unwrap();
    assert_eq!(m.events.len(), 1);
}

#[test]
fn memory_may_be_a_byte_count() {
    let m = parse(&format!("{MINIMAL}memory = 2097152")).unwrap();
    assert_eq!(m.memory, 2 * 1024 * 1024);
}

#[test]
fn syntax_errors_name_the_file() {
    let message = error_on("name = ", "toml");
    assert!(message.contains("not valid TOML"), "{message}");
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let message = error_on(&format!("{MINIMAL}timout = \"5s\""), "timout");
    assert!(
        message.contains("timeout"),
        "lists the real fields: {message}"
    );
    error_on(
        &format!("{MINIMAL}[capabilities.apis.highlevel]\nallow = []"),
        "capabilities.apis",
    );
    error_on(
        &format!("{MINIMAL}[capabilities.api.highlevel]\nallow = []\ndeny = []"),
        "capabilities.api.highlevel.deny",
    );
}

#[test]
fn name_errors() {
    let message = error_on("events = [\"*\"]", "name");
    assert!(message.contains("name = \"contact-tagger\""), "{message}");
    error_on("name = 3\nevents = [\"*\"]", "name");
    let message = error_on("name = \"Contact Tagger\"\nevents = [\"*\"]", "name");
    assert!(message.contains("a-z"), "{message}");
    let message = error_on("name = \"other\"\nevents = [\"*\"]", "name");
    assert!(message.contains("contact-tagger"), "{message}");
}

#[test]
fn events_errors() {
    error_on("name = \"contact-tagger\"", "events");
    let message = error_on("name = \"contact-tagger\"\nevents = []", "events");
    assert!(message.contains("never run"), "{message}");
    error_on("name = \"contact-tagger\"\nevents = \"*\"", "events");
    error_on("name = \"contact-tagger\"\nevents = [1]", "events");
    let message = error_on(
        "name = \"contact-tagger\"\nevents = [\"*\", \"ContactCreate\"]",
        "events",
    );
    assert!(message.contains("entry 2"), "{message}");
}

#[test]
fn budget_errors() {
    let message = error_on(&format!("{MINIMAL}timeout = \"soon\""), "timeout");
    assert!(message.contains("30s"), "{message}");
    error_on(&format!("{MINIMAL}timeout = 30"), "timeout");
    error_on(&format!("{MINIMAL}timeout = \"0s\""), "timeout");
    error_on(&format!("{MINIMAL}timeout = \"2h\""), "timeout");
    error_on(&format!("{MINIMAL}memory = \"lots\""), "memory");
    error_on(&format!("{MINIMAL}memory = \"512KiB\""), "memory");
    error_on(&format!("{MINIMAL}memory = \"8GiB\""), "memory");
    error_on(&format!("{MINIMAL}memory = -1"), "memory");
    error_on(&format!("{MINIMAL}max_attempts = 0"), "max_attempts");
    error_on(&format!("{MINIMAL}max_attempts = 101"), "max_attempts");
    error_on(&format!("{MINIMAL}max_attempts = \"5\""), "max_attempts");
    error_on(&format!("{MINIMAL}max_api_calls = -1"), "max_api_calls");
    assert_eq!(
        parse(&format!("{MINIMAL}max_api_calls = 0"))
            .unwrap()
            .max_api_calls,
        0
    );
}

#[test]
fn capability_and_config_errors() {
    error_on(&format!("{MINIMAL}capabilities = 1"), "capabilities");
    error_on(
        &format!("{MINIMAL}[capabilities]\napi = 1"),
        "capabilities.api",
    );
    error_on(
        &format!("{MINIMAL}[capabilities.api]\nhighlevel = 1"),
        "capabilities.api.highlevel",
    );
    error_on(
        &format!("{MINIMAL}[capabilities.api.highlevel]"),
        "capabilities.api.highlevel.allow",
    );
    error_on(
        &format!("{MINIMAL}[capabilities.api.highlevel]\nallow = \"GET /x\""),
        "capabilities.api.highlevel.allow",
    );
    error_on(
        &format!("{MINIMAL}[capabilities.api.highlevel]\nallow = [1]"),
        "capabilities.api.highlevel.allow",
    );
    error_on(&format!("{MINIMAL}config = 1"), "config");
}

#[test]
fn load_reads_the_file_and_names_it_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contact-tagger.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(Manifest::load(&path).unwrap().path, path);

    let missing = dir.path().join("gone.toml");
    let e = Manifest::load(&missing).unwrap_err();
    assert_eq!(e.path, missing);
    assert_eq!(e.field, "file");
}

#[test]
fn concurrency_and_ordering_key_have_defaults_and_checks() {
    let m = parse(MINIMAL).unwrap();
    assert_eq!(m.concurrency, 4);
    assert_eq!(m.ordering_key, None);
    let m = parse(&format!(
        "{MINIMAL}concurrency = 1\nordering_key = \"/contactId\"\n"
    ))
    .unwrap();
    assert_eq!(m.concurrency, 1);
    assert_eq!(m.ordering_key.as_deref(), Some("/contactId"));
    let message = error_on(&format!("{MINIMAL}concurrency = 0\n"), "concurrency");
    assert!(!message.is_empty());
    let message = error_on(
        &format!("{MINIMAL}ordering_key = \"contactId\"\n"),
        "ordering_key",
    );
    assert!(message.contains("start it with `/`"), "{message}");
    error_on(&format!("{MINIMAL}ordering_key = 3\n"), "ordering_key");
}
