//! Where a scheme finds an event's id, kind and tenant: each field is a list of places (a header
//! or a JSON pointer into the body), tried in order; a `[[sources]]` override replaces the
//! scheme's list for that field.
//!
//! Fallbacks when no place has a value: the id is `sha256:<hex of the raw body>` (so an
//! identical redelivery still deduplicates), the kind is empty, and the tenant is the source's
//! own name (a single-tenant sender such as one GitHub repository).
//!
//! Values are strings, or integers written as their decimal text (GitHub's numeric ids); any
//! other JSON type, or a value longer than [`MAX_FIELD_LEN`], is a 400 naming the field.

use http::{HeaderMap, HeaderName};
use serde_json::Value;

use super::{
    EnvelopeError, MAX_FIELD_LEN,
    envelope::{Envelope, Lifecycle, fallback_event_id},
};
use crate::{
    config::{FieldOverrides, FieldRule},
    ids::{EventId, SourceName, TenantId},
};

/// One place a field may be read from, as a scheme states its defaults.
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    Header(&'static str),
    Pointer(&'static str),
}

/// A scheme's defaults: the places of the id, the kind and the tenant, in order.
pub(super) struct Defaults {
    pub id: &'static [Place],
    pub kind: &'static [Place],
    pub tenant: &'static [Place],
}

/// The places a configured source reads its fields from.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    id: Vec<FieldRule>,
    kind: Vec<FieldRule>,
    tenant: Vec<FieldRule>,
}

impl Plan {
    /// The scheme's `defaults`, with each field the config overrides replaced.
    pub(super) fn new(defaults: &Defaults, overrides: &FieldOverrides) -> Plan {
        let pick = |over: &Option<FieldRule>, places: &[Place]| match over {
            Some(rule) => vec![rule.clone()],
            None => places.iter().map(|p| p.rule()).collect(),
        };
        Plan {
            id: pick(&overrides.event_id, defaults.id),
            kind: pick(&overrides.kind, defaults.kind),
            tenant: pick(&overrides.tenant, defaults.tenant),
        }
    }

    /// [`Plan::envelope`] of a JSON body, parsed here (a body that is not JSON is refused).
    pub(super) fn json_envelope(
        &self,
        source: &SourceName,
        headers: &HeaderMap,
        body: &[u8],
        sent_at_ms: Option<i64>,
    ) -> Result<Envelope, EnvelopeError> {
        let doc = super::envelope::json_document(body)?;
        self.envelope(source, headers, &doc, body, sent_at_ms)
    }

    /// The envelope of a verified request: `doc` is its body as JSON (or its form fields as a
    /// JSON object), `sent_at_ms` the signed timestamp, if any.
    pub(super) fn envelope(
        &self,
        source: &SourceName,
        headers: &HeaderMap,
        doc: &Value,
        body: &[u8],
        sent_at_ms: Option<i64>,
    ) -> Result<Envelope, EnvelopeError> {
        let id = first(&self.id, headers, doc)?;
        let kind = first(&self.kind, headers, doc)?;
        let tenant = first(&self.tenant, headers, doc)?;
        Ok(Envelope {
            id: id
                .map(EventId::new)
                .unwrap_or_else(|| fallback_event_id(body)),
            kind: kind.unwrap_or_default(),
            tenant: TenantId::new(tenant.unwrap_or_else(|| source.as_str().to_string())),
            sent_at_ms,
            company: None,
            lifecycle: Lifecycle::Other,
        })
    }
}

impl Place {
    fn rule(self) -> FieldRule {
        match self {
            Place::Header(name) => FieldRule::Header(HeaderName::from_static(name)),
            Place::Pointer(pointer) => FieldRule::Pointer(pointer.to_string()),
        }
    }
}

/// The first place in `rules` with a value.
fn first(
    rules: &[FieldRule],
    headers: &HeaderMap,
    doc: &Value,
) -> Result<Option<String>, EnvelopeError> {
    for rule in rules {
        if let Some(value) = read(rule, headers, doc)? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// The value at one place: `None` when absent, null or empty.
pub(super) fn read(
    rule: &FieldRule,
    headers: &HeaderMap,
    doc: &Value,
) -> Result<Option<String>, EnvelopeError> {
    let invalid = |field: String| EnvelopeError::InvalidField {
        field,
        max: MAX_FIELD_LEN,
    };
    let text = match rule {
        FieldRule::Header(name) => match headers.get(name) {
            None => return Ok(None),
            Some(value) => value
                .to_str()
                .map_err(|_| invalid(format!("{name} header")))?
                .trim()
                .to_string(),
        },
        FieldRule::Pointer(pointer) => match doc.pointer(pointer) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(_) => return Err(invalid(pointer.clone())),
        },
    };
    if text.len() > MAX_FIELD_LEN {
        let field = match rule {
            FieldRule::Header(name) => format!("{name} header"),
            FieldRule::Pointer(pointer) => pointer.clone(),
        };
        return Err(invalid(field));
    }
    Ok((!text.is_empty()).then_some(text))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    const DEFAULTS: Defaults = Defaults {
        id: &[Place::Header("x-id"), Place::Pointer("/id")],
        kind: &[Place::Pointer("/type")],
        tenant: &[Place::Pointer("/account")],
    };

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    fn envelope(plan: &Plan, h: &HeaderMap, doc: Value) -> Result<Envelope, EnvelopeError> {
        let body = serde_json::to_vec(&doc).unwrap();
        plan.envelope(&SourceName::new("src"), h, &doc, &body, Some(7))
    }

    #[test]
    fn defaults_are_tried_in_order_and_fall_back() {
        let plan = Plan::new(&DEFAULTS, &FieldOverrides::default());
        let env = envelope(
            &plan,
            &headers(&[("x-id", "h-1")]),
            json!({"id": "b-1", "type": "t"}),
        )
        .unwrap();
        assert_eq!((env.id.as_str(), env.kind.as_str()), ("h-1", "t"));
        assert_eq!(
            env.tenant.as_str(),
            "src",
            "the source name stands in for a tenant"
        );
        assert_eq!(env.sent_at_ms, Some(7));

        let env = envelope(
            &plan,
            &HeaderMap::new(),
            json!({"id": 42, "account": "acct_1"}),
        )
        .unwrap();
        assert_eq!(env.id.as_str(), "42", "integers are ids too");
        assert_eq!(env.kind, "");
        assert_eq!(env.tenant.as_str(), "acct_1");

        let doc = json!({"other": true});
        let body = serde_json::to_vec(&doc).unwrap();
        let env = plan
            .envelope(
                &SourceName::new("src"),
                &HeaderMap::new(),
                &doc,
                &body,
                None,
            )
            .unwrap();
        assert_eq!(env.id, fallback_event_id(&body));
    }

    #[test]
    fn overrides_replace_the_defaults() {
        let overrides = FieldOverrides {
            event_id: Some(FieldRule::Pointer("/data/object/id".into())),
            kind: Some(FieldRule::Header(HeaderName::from_static("x-kind"))),
            tenant: None,
        };
        let plan = Plan::new(&DEFAULTS, &overrides);
        let env = envelope(
            &plan,
            &headers(&[("x-id", "ignored"), ("x-kind", "charge")]),
            json!({"id": "ignored", "type": "ignored", "data": {"object": {"id": "ch_1"}}}),
        )
        .unwrap();
        assert_eq!((env.id.as_str(), env.kind.as_str()), ("ch_1", "charge"));
    }

    #[test]
    fn wrong_types_and_overlong_values_name_the_field() {
        let plan = Plan::new(&DEFAULTS, &FieldOverrides::default());
        let err = envelope(&plan, &HeaderMap::new(), json!({"type": {"a": 1}})).unwrap_err();
        assert_eq!(err.code(), "invalid_field");
        assert!(err.to_string().contains("/type"), "{err}");
        let err = envelope(&plan, &HeaderMap::new(), json!({"id": 1.5})).unwrap_err();
        assert!(err.to_string().contains("/id"), "{err}");
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        let err = envelope(&plan, &HeaderMap::new(), json!({"account": long})).unwrap_err();
        assert!(err.to_string().contains("/account"), "{err}");
    }
}
