//! Fixture bodies: HighLevel's documented webhook examples in `tests/fixtures/highlevel/`, and
//! bodies built from them the way real deliveries look (with `appId`, `timestamp` and
//! `webhookId` at the top level). Fixtures are read-only data; tests change copies.

use std::path::PathBuf;

use serde_json::Value;
use wasmhook::{ids::now_ms, sources::timestamp::format_rfc3339_ms};

/// The folder holding the HighLevel fixtures.
pub fn highlevel_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/highlevel")
}

/// The fixture `tests/fixtures/highlevel/<name>.json` (e.g. `contact-create`), parsed.
///
/// Panics with the path when the file is missing or not JSON: a test cannot run without it.
pub fn highlevel(name: &str) -> Value {
    let path = highlevel_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()))
}

/// The fixture `name` as a delivery for `app_id`: `appId`, a current `timestamp` (RFC 3339, ms,
/// UTC, as HighLevel sends it) and `webhookId` set at the top level, serialised to the bytes
/// to sign and send.
pub fn highlevel_signed_body(name: &str, app_id: &str, webhook_id: &str) -> Vec<u8> {
    let mut body = highlevel(name);
    let map = body
        .as_object_mut()
        .unwrap_or_else(|| panic!("fixture {name} is not a JSON object"));
    map.insert("appId".into(), Value::from(app_id));
    map.insert("timestamp".into(), Value::from(format_rfc3339_ms(now_ms())));
    map.insert("webhookId".into(), Value::from(webhook_id));
    serde_json::to_vec(&body).expect("serialising a JSON value")
}

/// [`highlevel_signed_body`] with `changes` merged in at the top level (`null` removes a key):
/// another tenant, an old `timestamp`, no `type`, ...
pub fn highlevel_body_with(name: &str, app_id: &str, webhook_id: &str, changes: Value) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&highlevel_signed_body(name, app_id, webhook_id))
        .expect("a signed body is JSON");
    let map = body.as_object_mut().expect("fixtures are JSON objects");
    let changes = changes
        .as_object()
        .unwrap_or_else(|| panic!("changes must be a JSON object, not {changes}"));
    for (key, value) in changes {
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    serde_json::to_vec(&body).expect("serialising a JSON value")
}

/// An RFC 3339 timestamp `age_ms` before now, as HighLevel writes them.
pub fn highlevel_timestamp_ago(age_ms: i64) -> String {
    format_rfc3339_ms(now_ms() - age_ms)
}

#[cfg(test)]
mod tests {
    use wasmhook::sources::timestamp::parse_rfc3339;

    use super::*;

    #[test]
    fn every_documented_fixture_is_a_json_object() {
        let mut names = 0;
        for entry in std::fs::read_dir(highlevel_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_stem().unwrap().to_str().unwrap();
                assert!(highlevel(name).is_object(), "{name}");
                names += 1;
            }
        }
        assert!(names >= 15, "found only {names} fixtures");
    }

    #[test]
    fn changes_are_merged_and_null_removes() {
        let body: Value = serde_json::from_slice(&highlevel_body_with(
            "install-location",
            "app-1",
            "wh-1",
            serde_json::json!({ "locationId": "loc-9", "companyId": null }),
        ))
        .unwrap();
        assert_eq!(body["locationId"], "loc-9");
        assert!(body.get("companyId").is_none());
        assert_eq!(body["type"], "INSTALL");
        let old = parse_rfc3339(&highlevel_timestamp_ago(3_600_000)).unwrap();
        assert!((now_ms() - old - 3_600_000).abs() < 1000);
    }

    #[test]
    fn a_signed_body_carries_app_timestamp_and_webhook_id() {
        let before = now_ms();
        let body: Value =
            serde_json::from_slice(&highlevel_signed_body("contact-create", "app-9", "wh-9"))
                .unwrap();
        assert_eq!(body["appId"], "app-9");
        assert_eq!(body["webhookId"], "wh-9");
        assert_eq!(
            body["type"], "ContactCreate",
            "the fixture's own fields are kept"
        );
        let sent = parse_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
        assert!(
            sent >= before - 1 && sent <= now_ms(),
            "timestamp is now: {sent}"
        );
    }
}
