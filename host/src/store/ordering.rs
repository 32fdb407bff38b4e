//! Ordering keys: a plugin's manifest `ordering_key` is a JSON pointer (RFC 6901, e.g.
//! `/contactId`) into the event's payload; the value it points at, stored with each delivery at
//! ingest, makes that plugin's deliveries with the same value run one at a time, in arrival
//! order.
//!
//! Resolved once at ingest (the payload is parsed only when a subscriber asks for a key), so the
//! claim query compares stored text and the order holds across restarts. A pointer that names
//! nothing in the payload (or a payload that is not JSON) gives no key: such a delivery is not
//! ordered against any other, since there is nothing to order it by.

/// The ordering key of each delivery: `pointers[i]` resolved against `payload`.
pub fn resolve(payload: &[u8], pointers: &[Option<&str>]) -> Vec<Option<String>> {
    if pointers.iter().all(Option::is_none) {
        return vec![None; pointers.len()];
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
    pointers
        .iter()
        .map(|pointer| {
            let value = parsed.as_ref()?.pointer((*pointer)?)?;
            key_text(value)
        })
        .collect()
}

/// A strings' own text; numbers and booleans as JSON; `null`, arrays and objects give no key
/// (they name no single thing to order by).
fn key_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_resolve_against_the_payload() {
        let payload = br#"{"contactId":"c-1","n":7,"deep":{"id":"x"},"nil":null,"arr":[1]}"#;
        let keys = resolve(
            payload,
            &[
                Some("/contactId"),
                None,
                Some("/n"),
                Some("/deep/id"),
                Some("/missing"),
                Some("/nil"),
                Some("/arr"),
            ],
        );
        assert_eq!(
            keys,
            vec![
                Some("c-1".to_owned()),
                None,
                Some("7".to_owned()),
                Some("x".to_owned()),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn a_payload_that_is_not_json_gives_no_keys() {
        assert_eq!(resolve(b"\xff not json", &[Some("/a")]), vec![None]);
    }
}
