//! The `slack` scheme: Slack's Events API, slash commands and interactivity.
//!
//! Verification: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 of `v0:<timestamp>:<body>` keyed
//! with the app's signing secret as written, and `X-Slack-Request-Timestamp` within the
//! tolerance (default 5 min) both ways.
//!
//! Bodies are JSON (Events API) or form-encoded (slash commands; interactivity sends one
//! `payload` field holding JSON, which is what the envelope reads then).
//!
//! Slack checks an Events API URL by sending a signed `url_verification` request and expects
//! its `challenge` echoed; [`Slack::challenge`] recognises it so ingress can answer without
//! storing anything. Without this, a Slack app could not be pointed at wasmhook at all.
//!
//! Envelope: id = `event_id` (Events API; slash commands have none, so the body hash), kind =
//! `event.type`, else `type`, else `command`; tenant = `team_id`, else `team.id` (interactivity),
//! else the source's name.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

use super::{
    Envelope, EnvelopeError, Proof, VerifyError,
    envelope::json_document,
    fields::{Defaults, Place, Plan},
    form, headers,
    mac::MacKeys,
    window,
};
use crate::{
    config::{FieldOverrides, MacAlgorithm},
    ids::SourceName,
    secret::Secret,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The signed timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const VERSION: &str = "v0";

/// Longest challenge echoed. Slack's are under 100 characters; the cap keeps a signed but odd
/// request from making us echo a large body.
const MAX_CHALLENGE: usize = 1024;

const DEFAULTS: Defaults = Defaults {
    id: &[Place::Pointer("/event_id")],
    kind: &[
        Place::Pointer("/event/type"),
        Place::Pointer("/type"),
        Place::Pointer("/command"),
    ],
    tenant: &[Place::Pointer("/team_id"), Place::Pointer("/team/id")],
};

/// A configured `slack` source's keys and rules.
pub struct Slack {
    keys: MacKeys,
    tolerance: Duration,
    plan: Plan,
}

impl Slack {
    /// Builds the scheme from the signing secrets; on failure, the index of the bad one and why.
    pub fn new(
        secrets: &[Secret],
        tolerance: Duration,
        fields: &FieldOverrides,
    ) -> Result<Slack, (usize, &'static str)> {
        Ok(Slack {
            keys: MacKeys::from_secrets(secrets, MacAlgorithm::Sha256)?,
            tolerance,
            plan: Plan::new(&DEFAULTS, fields),
        })
    }

    /// Checks `X-Slack-Signature` over `v0:timestamp:body` at `now_ms`.
    pub(super) fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Proof, VerifyError> {
        let value = headers::required(headers, SIGNATURE_HEADER)?;
        let ts = headers::required(headers, TIMESTAMP_HEADER)?;
        let sent_secs = headers::unix_seconds(TIMESTAMP_HEADER, ts)?;
        window::check(TIMESTAMP_HEADER, sent_secs, now_ms, self.tolerance)?;
        let Some(hex) = value.strip_prefix("v0=") else {
            return Err(VerifyError::NoSupportedVersion {
                header: SIGNATURE_HEADER.into(),
                supported: "v0",
            });
        };
        let signature = headers::hex(SIGNATURE_HEADER, hex)?;
        self.keys.prove(
            &[VERSION.as_bytes(), b":", ts.as_bytes(), b":", body],
            &[signature],
            SIGNATURE_HEADER,
            Some(sent_secs.saturating_mul(1000)),
        )
    }

    /// The envelope of a verified request (JSON or form-encoded).
    pub(super) fn envelope(
        &self,
        source: &SourceName,
        headers: &HeaderMap,
        body: &[u8],
        proof: Proof,
    ) -> Result<Envelope, EnvelopeError> {
        let doc = document(body)?;
        self.plan
            .envelope(source, headers, &doc, body, proof.signed_at_ms)
    }

    /// The challenge of a (verified) `url_verification` request, to echo back.
    pub(super) fn challenge(body: &[u8]) -> Option<String> {
        let doc = json_document(body).ok()?;
        if doc.get("type")?.as_str()? != "url_verification" {
            return None;
        }
        let challenge = doc.get("challenge")?.as_str()?;
        (!challenge.is_empty() && challenge.len() <= MAX_CHALLENGE).then(|| challenge.to_string())
    }

    /// The headers for `body` signed at `ts` under key `index` (for `wasmhook send`).
    pub(super) fn sign(
        &self,
        index: usize,
        ts: i64,
        body: &[u8],
    ) -> Option<Vec<(&'static str, String)>> {
        let ts = ts.to_string();
        let tag = self.keys.tag(
            index,
            &[VERSION.as_bytes(), b":", ts.as_bytes(), b":", body],
        )?;
        Some(vec![
            (TIMESTAMP_HEADER, ts),
            (SIGNATURE_HEADER, format!("v0={}", hex::encode(tag))),
        ])
    }
}

/// The body as a JSON document: JSON as is; a form's `payload` field when it holds JSON
/// (interactivity); otherwise the form's fields.
fn document(body: &[u8]) -> Result<Value, EnvelopeError> {
    if body.trim_ascii_start().starts_with(b"{") {
        return json_document(body);
    }
    let mut fields = form::to_object(body)?;
    if let Some(Value::String(payload)) = fields.get("payload")
        && payload.trim_start().starts_with('{')
    {
        return json_document(payload.as_bytes());
    }
    // A form without a payload: its own fields are the document.
    fields.retain(|_, v| v.is_string());
    Ok(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    // Slack's published example ("Verifying requests from Slack", api.slack.com/authentication/
    // verifying-requests-from-slack): a slash command body, its timestamp, the signing secret
    // and the resulting signature.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW_MS: i64 = 1_531_420_618_000;

    fn slack(secrets: &[&str]) -> Slack {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        Slack::new(
            &secrets,
            Duration::from_secs(300),
            &FieldOverrides::default(),
        )
        .unwrap()
    }

    fn headers(signature: &str, ts: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        map.insert(TIMESTAMP_HEADER, HeaderValue::from_str(ts).unwrap());
        map
    }

    #[test]
    fn the_documented_example_verifies_and_signs() {
        let s = slack(&["another-secret", DOC_SECRET]);
        let proof = s
            .verify(
                &headers(DOC_SIGNATURE, DOC_TIMESTAMP),
                DOC_BODY.as_bytes(),
                NOW_MS,
            )
            .unwrap();
        assert_eq!(proof.key, 1);
        assert_eq!(proof.signed_at_ms, Some(NOW_MS));
        let signed = s.sign(1, 1_531_420_618, DOC_BODY.as_bytes()).unwrap();
        assert_eq!(signed[1], (SIGNATURE_HEADER, DOC_SIGNATURE.to_string()));
    }

    #[test]
    fn reject_cases() {
        let s = slack(&[DOC_SECRET]);
        let body = DOC_BODY.as_bytes();
        let err = |h: HeaderMap, body: &[u8], now: i64| s.verify(&h, body, now).unwrap_err();
        let mut no_ts = headers(DOC_SIGNATURE, DOC_TIMESTAMP);
        no_ts.remove(TIMESTAMP_HEADER);
        assert_eq!(err(no_ts, body, NOW_MS).code(), "missing_signature");
        let mut no_sig = headers(DOC_SIGNATURE, DOC_TIMESTAMP);
        no_sig.remove(SIGNATURE_HEADER);
        assert_eq!(err(no_sig, body, NOW_MS).code(), "missing_signature");
        let v1 = DOC_SIGNATURE.replace("v0=", "v1=");
        assert!(matches!(
            err(headers(&v1, DOC_TIMESTAMP), body, NOW_MS),
            VerifyError::NoSupportedVersion { .. }
        ));
        assert_eq!(
            err(headers(&DOC_SIGNATURE[..40], DOC_TIMESTAMP), body, NOW_MS).code(),
            "bad_signature"
        );
        let mut flipped = body.to_vec();
        flipped[0] ^= 1;
        assert_eq!(
            err(headers(DOC_SIGNATURE, DOC_TIMESTAMP), &flipped, NOW_MS).code(),
            "bad_signature"
        );
        assert_eq!(
            err(headers(DOC_SIGNATURE, "1531420619"), body, NOW_MS).code(),
            "bad_signature"
        );
        assert_eq!(
            err(
                headers(DOC_SIGNATURE, DOC_TIMESTAMP),
                body,
                NOW_MS + 301_000
            )
            .code(),
            "stale_timestamp"
        );
        assert_eq!(
            err(
                headers(DOC_SIGNATURE, DOC_TIMESTAMP),
                body,
                NOW_MS - 301_000
            )
            .code(),
            "future_timestamp"
        );
        assert!(
            Slack::new(
                &[Secret::new("")],
                Duration::from_secs(300),
                &FieldOverrides::default()
            )
            .is_err()
        );
    }

    #[test]
    fn slash_commands_events_and_interactivity_have_envelopes() {
        let s = slack(&[DOC_SECRET]);
        let proof = Proof {
            kind: crate::sources::SignatureKind::HmacSha256,
            key: 0,
            signed_at_ms: Some(NOW_MS),
        };
        let name = SourceName::new("slack");
        let env = s
            .envelope(&name, &HeaderMap::new(), DOC_BODY.as_bytes(), proof)
            .unwrap();
        assert_eq!(env.kind, "/webhook-collect");
        assert_eq!(env.tenant.as_str(), "T1DC2JH3J");
        assert!(
            env.id.as_str().starts_with("sha256:"),
            "slash commands carry no id"
        );

        let event = serde_json::to_vec(&json!({
            "type": "event_callback", "team_id": "T123", "event_id": "Ev123",
            "event": {"type": "app_mention", "text": "hi"}
        }))
        .unwrap();
        let env = s.envelope(&name, &HeaderMap::new(), &event, proof).unwrap();
        assert_eq!(
            (env.id.as_str(), env.kind.as_str(), env.tenant.as_str()),
            ("Ev123", "app_mention", "T123")
        );

        let payload = "payload=%7B%22type%22%3A%22block_actions%22%2C%22team%22%3A%7B%22id%22%3A%22T9%22%7D%7D";
        let env = s
            .envelope(&name, &HeaderMap::new(), payload.as_bytes(), proof)
            .unwrap();
        assert_eq!(
            (env.kind.as_str(), env.tenant.as_str()),
            ("block_actions", "T9")
        );

        let err = s
            .envelope(&name, &HeaderMap::new(), b"a=%zz", proof)
            .unwrap_err();
        assert_eq!(err.code(), "malformed_form");
        let err = s
            .envelope(&name, &HeaderMap::new(), b"{not json", proof)
            .unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn url_verification_is_a_challenge() {
        let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            Slack::challenge(body).as_deref(),
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        );
        assert_eq!(
            Slack::challenge(br#"{"type":"event_callback","challenge":"x"}"#),
            None
        );
        assert_eq!(Slack::challenge(DOC_BODY.as_bytes()), None);
        let long = format!(
            r#"{{"type":"url_verification","challenge":"{}"}}"#,
            "x".repeat(2000)
        );
        assert_eq!(Slack::challenge(long.as_bytes()), None);
    }
}
