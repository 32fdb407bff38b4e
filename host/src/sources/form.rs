//! `application/x-www-form-urlencoded` bodies (Slack slash commands and interactivity), read
//! into a JSON object so the same JSON pointers address them.
//!
//! Invariants: decoding is strict (a `%` must be followed by two hex digits, the result must be
//! UTF-8), `+` is a space, and a key given twice keeps its first value. Errors say what is
//! wrong, never echo the body.

use serde_json::{Map, Value};

use super::EnvelopeError;

/// The fields of a form body as a JSON object of strings.
pub(super) fn to_object(body: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    let mut map = Map::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let key = decode(key)?;
        let value = decode(value)?;
        map.entry(key).or_insert(Value::String(value));
    }
    Ok(map)
}

/// Percent-decodes one component, `+` meaning a space.
fn decode(component: &[u8]) -> Result<String, EnvelopeError> {
    let mut out = Vec::with_capacity(component.len());
    let mut bytes = component.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|&h| hex_value(h));
                let lo = bytes.next().and_then(|&l| hex_value(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => {
                        return Err(EnvelopeError::MalformedForm(
                            "`%` must be followed by two hex digits",
                        ));
                    }
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| EnvelopeError::MalformedForm("a field is not UTF-8 text"))
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_slack_slash_command_fields() {
        let map = to_object(b"team_id=T1DC2JH3J&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fx&user_name=road+runner").unwrap();
        assert_eq!(map["team_id"], "T1DC2JH3J");
        assert_eq!(map["command"], "/webhook-collect");
        assert_eq!(map["text"], "");
        assert_eq!(map["response_url"], "https://hooks.slack.com/x");
        assert_eq!(map["user_name"], "road runner");
    }

    #[test]
    fn first_value_wins_and_bare_keys_are_empty() {
        let map = to_object(b"a=1&a=2&flag&&b=%C3%A9").unwrap();
        assert_eq!(map["a"], "1");
        assert_eq!(map["flag"], "");
        assert_eq!(map["b"], "é");
    }

    #[test]
    fn malformed_escapes_and_non_utf8_are_refused() {
        for bad in [&b"a=%4"[..], b"a=%zz", b"a=%FF", b"a=%"] {
            assert_eq!(
                to_object(bad).unwrap_err().code(),
                "malformed_form",
                "{bad:?}"
            );
        }
    }
}
