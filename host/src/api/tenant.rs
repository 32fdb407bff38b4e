//! Tenant fields in a plugin's request: each `locationId`, `location_id`, `altId` or `companyId`
//! in the query or among the body's top-level keys must equal the delivery's tenant, so a
//! company-wide token cannot be pointed at another location.
//!
//! Invariants: every occurrence is checked — repeated query parameters and duplicate JSON keys
//! included (a JSON map type keeps only one of the duplicates, while the upstream parser may
//! read the other), and escaped key spellings (`"location\u0049d"`) are decoded before
//! comparing. Names are compared without ASCII case so `LocationID` cannot slip past an API
//! that reads names loosely. A body must be one JSON value and nothing else.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::ids::TenantId;

/// Query and top-level body fields that name a tenant.
pub const TENANT_FIELDS: [&str; 4] = ["locationId", "location_id", "altId", "companyId"];

/// Whether `name` is one of [`TENANT_FIELDS`], ignoring ASCII case.
pub fn is_tenant_field(name: &str) -> bool {
    TENANT_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// Checks every query pair; the error is a denial reason.
pub fn check_query(query: &[(String, String)], tenant: &TenantId) -> Result<(), String> {
    match query
        .iter()
        .find(|(key, value)| is_tenant_field(key) && value != tenant.as_str())
    {
        Some((key, _)) => Err(format!(
            "query parameter `{}` must be this delivery's tenant",
            shown(key)
        )),
        None => Ok(()),
    }
}

/// Checks that `text` is one JSON value whose top-level tenant fields (if it is an object) are
/// all the tenant, as strings. The error is a denial reason.
pub fn check_body(text: &str, tenant: &TenantId) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let verdict = TopLevel {
        tenant: tenant.as_str(),
    }
    .deserialize(&mut deserializer)
    .map_err(|_| "body is not JSON".to_string())?;
    deserializer
        .end()
        .map_err(|_| "body is not JSON".to_string())?;
    verdict
}

/// Keys are echoed to the plugin shortened: it sent them, but they need not fill a log line.
fn shown(key: &str) -> String {
    key.chars().take(64).collect()
}

/// Walks the top-level value without building it; yields the first tenant mismatch, if any.
struct TopLevel<'a> {
    tenant: &'a str,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Result<(), String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Result<(), String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut verdict = Ok(());
        // `String` keys: escapes are decoded, so an escaped spelling is compared as it reads.
        while let Some(key) = map.next_key::<String>()? {
            if is_tenant_field(&key) {
                let value: serde_json::Value = map.next_value()?;
                if verdict.is_ok() && value.as_str() != Some(self.tenant) {
                    verdict = Err(format!(
                        "body field `{}` must be this delivery's tenant",
                        shown(&key)
                    ));
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(verdict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Only top-level keys name the tenant; nested data is the API's business.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Ok(()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Result<(), String> {
        check_body(text, &TenantId::new("loc1"))
    }

    fn query(pairs: &[(&str, &str)]) -> Result<(), String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        check_query(&pairs, &TenantId::new("loc1"))
    }

    #[test]
    fn query_fields_must_be_the_tenant() {
        assert_eq!(query(&[("locationId", "loc1"), ("limit", "10")]), Ok(()));
        for field in TENANT_FIELDS.iter().copied().chain(["LOCATIONID", "AltID"]) {
            let why = query(&[(field, "loc2")]).unwrap_err();
            assert!(why.contains(&format!("`{field}`")), "{why}");
        }
        assert!(query(&[("locationId", "loc1"), ("locationId", "loc2")]).is_err());
        assert!(query(&[("locationId", "")]).is_err());
    }

    #[test]
    fn body_fields_must_be_the_tenant_as_a_string() {
        assert_eq!(body(r#"{"locationId":"loc1","tags":["a"]}"#), Ok(()));
        assert_eq!(body(r#"{"tags":["a"]}"#), Ok(()));
        for bad in [
            r#"{"locationId":"loc2"}"#,
            r#"{"location_id":"loc2"}"#,
            r#"{"altId":"loc2"}"#,
            r#"{"companyId":"co1"}"#,
            r#"{"altId":1}"#,
            r#"{"locationId":null}"#,
            r#"{"locationId":["loc1"]}"#,
            r#"{"LocationId":"loc2"}"#,
        ] {
            assert!(
                body(bad)
                    .unwrap_err()
                    .contains("must be this delivery's tenant"),
                "{bad}"
            );
        }
    }

    #[test]
    fn duplicate_and_escaped_keys_are_all_checked() {
        assert!(body(r#"{"locationId":"loc2","locationId":"loc1"}"#).is_err());
        assert!(body(r#"{"locationId":"loc1","locationId":"loc2"}"#).is_err());
        assert!(body(r#"{"location\u0049d":"loc2"}"#).is_err());
    }

    #[test]
    fn any_single_json_value_is_a_body_and_nothing_else_is() {
        for ok in [
            "[1,2]",
            r#"[{"locationId":"elsewhere"}]"#,
            r#"{"contact":{"locationId":"elsewhere"}}"#,
            "\"text\"",
            "3.5",
            "-1",
            "true",
            "null",
            " {} ",
        ] {
            assert_eq!(body(ok), Ok(()), "{ok}");
        }
        for bad in ["", "{not json", "{} {}", "{}x", "[1,", "nul"] {
            assert_eq!(body(bad), Err("body is not JSON".to_string()), "{bad}");
        }
    }
}
