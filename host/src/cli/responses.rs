//! Canned API answers for `wasmhook dev` and `wasmhook test`: a JSON file mapping
//! `"METHOD /path/pattern"` to the answer the mock API gives.
//!
//! ```json
//! {
//!   "GET /opportunities/pipelines": { "body": { "pipelines": [] } },
//!   "POST /contacts/*/tags": { "status": 201, "body": { "tags": ["new-lead"] } },
//!   "GET /contacts/*": { "status": 404, "body": { "message": "not found" } }
//! }
//! ```
//!
//! Patterns are written as in manifests' allow-lists (`*` one segment, `**` the rest); the first
//! matching entry in file order wins; a call nothing matches gets `200 {}`. `status` defaults to
//! 200, `body` to `{}`.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::api::AllowList;

/// One canned answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Canned {
    /// HTTP status, 100..=599.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Default for Canned {
    fn default() -> Self {
        Canned {
            status: 200,
            body: Value::Object(Default::default()),
        }
    }
}

/// The answers, in file order.
#[derive(Clone, Debug, Default)]
pub struct Responses {
    rules: Vec<(AllowList, Canned)>,
}

impl Responses {
    /// Reads a responses file; errors name the file, the entry and the fix.
    pub fn load(path: &Path) -> anyhow::Result<Responses> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Responses::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses the JSON text of a responses file.
    pub fn parse(text: &str) -> anyhow::Result<Responses> {
        // serde_json's `preserve_order` is off, so keep file order by reading entries by hand.
        let entries: Vec<(String, Value)> = ordered_entries(text)?;
        let mut rules = Vec::with_capacity(entries.len());
        for (key, answer) in entries {
            let list = AllowList::parse(std::slice::from_ref(&key)).map_err(|why| {
                anyhow::anyhow!(
                    "entry `{key}`: {why}; write keys as \"METHOD /path\", e.g. \"GET /contacts/*\""
                )
            })?;
            rules.push((list, canned(&key, answer)?));
        }
        Ok(Responses { rules })
    }

    /// The answer to `method path` (path with one leading `/`, no query).
    pub fn answer(&self, method: &http::Method, path: &str) -> Canned {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        self.rules
            .iter()
            .find(|(list, _)| list.find(method, &segments).is_some())
            .map(|(_, canned)| canned.clone())
            .unwrap_or_default()
    }
}

/// The top-level object's entries in the order written.
fn ordered_entries(text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    struct Ordered(Vec<(String, Value)>);
    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object mapping \"METHOD /path\" to { status, body }")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        entries.push(entry);
                    }
                    Ok(Ordered(entries))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    let Ordered(entries) = serde_json::from_str(text).context("not a responses file")?;
    Ok(entries)
}

fn canned(key: &str, answer: Value) -> anyhow::Result<Canned> {
    let Value::Object(mut fields) = answer else {
        anyhow::bail!(
            "entry `{key}`: expected an object like {{ \"status\": 200, \"body\": {{}} }}"
        );
    };
    let status = match fields.remove("status") {
        None => 200,
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|s| (100..=599).contains(s))
            .and_then(|s| u16::try_from(s).ok())
            .with_context(|| format!("entry `{key}`: status must be an HTTP status, 100..=599"))?,
        Some(_) => anyhow::bail!("entry `{key}`: status must be a number, e.g. 200"),
    };
    let body = fields
        .remove("body")
        .unwrap_or_else(|| Value::Object(Default::default()));
    if let Some(other) = fields.keys().next() {
        anyhow::bail!("entry `{key}`: unknown field `{other}`; an answer has `status` and `body`");
    }
    Ok(Canned { status, body })
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_first_matching_entry_answers_and_the_rest_get_200_empty() {
        let responses = Responses::parse(
            r#"{
                "GET /contacts/special": { "body": { "special": true } },
                "GET /contacts/*": { "status": 404, "body": { "message": "nope" } },
                "POST /contacts/**": { "status": 201 }
            }"#,
        )
        .unwrap();
        let special = responses.answer(&Method::GET, "/contacts/special");
        assert_eq!(
            (special.status, special.body),
            (200, json!({ "special": true }))
        );
        assert_eq!(responses.answer(&Method::GET, "/contacts/c-1").status, 404);
        let created = responses.answer(&Method::POST, "/contacts/c-1/tags");
        assert_eq!((created.status, created.body), (201, json!({})));
        assert_eq!(
            responses.answer(&Method::DELETE, "/contacts/c-1"),
            Canned::default()
        );
    }

    #[test]
    fn bad_entries_say_what_to_write() {
        let err = |text: &str| format!("{:#}", Responses::parse(text).unwrap_err());
        assert!(err(r#"{ "/contacts": {} }"#).contains("\"METHOD /path\""));
        assert!(err(r#"{ "GET /x": { "status": 42 } }"#).contains("100..=599"));
        assert!(err(r#"{ "GET /x": { "staus": 200 } }"#).contains("unknown field `staus`"));
        assert!(err(r#"{ "GET /x": [] }"#).contains("expected an object"));
        assert!(err("[]").contains("not a responses file"));
    }
}
