//! Checks a plugin's request against its capabilities and builds what will be sent. Everything
//! here runs before a byte leaves the host; any refusal is a reason for `ApiError::Denied`.
//!
//! Order: the plugin's grants on the API -> path rules and the join under the base URL -> the
//! allow-list, matched on the final path below the base path -> headers (only the API's
//! `allowed_headers`, never one the host sets) -> tenant fields in the query -> the body (JSON,
//! tenant fields) -> the query, percent-encoded by the URL library.
//!
//! Invariant: the origin of [`Prepared::url`] is the API's configured `base_url`, whatever the
//! plugin sent.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};

use super::{
    ApiRequest, Capabilities, path,
    tenant::{check_body, check_query},
};
use crate::{config::ApiConfig, ids::TenantId};

/// Headers the host owns (credentials, routing, framing): a plugin may never set them, even if
/// the API's config grants them by mistake.
const HOST_HEADERS: [&str; 13] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "version",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// A request that passed every check, ready to send (auth, `Version` and idempotency headers are
/// added per attempt by the sender).
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The request method.
    pub method: http::Method,
    /// The full URL: base origin and path prefix, the checked path, the encoded query.
    pub url: reqwest::Url,
    /// The path below the base path as sent; the key for `ApiConfig::version_for`.
    pub relative: String,
    /// The allow-list rule's pattern that matched: the path template for logs and metrics.
    pub template: String,
    /// `Accept` (default `application/json`), `Content-Type` with a body, and the plugin's
    /// allowed headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Option<Bytes>,
}

/// Checks `req` for the plugin holding `caps` on behalf of `tenant`, against `api`.
pub fn prepare(
    api: &ApiConfig,
    caps: &Capabilities,
    tenant: &TenantId,
    req: &ApiRequest,
) -> Result<Prepared, String> {
    let Some(allow) = caps.allow_list(&req.api) else {
        return Err(format!(
            "the plugin has no capabilities on api `{}`; grant them in its manifest under \
             [capabilities.api.{}]",
            req.api, req.api
        ));
    };
    let joined = path::join(&api.base_url, &req.path)?;
    let Some(rule) = allow.find(&req.method, &joined.segments()) else {
        let granted: Vec<String> = allow.rules().iter().map(ToString::to_string).collect();
        return Err(format!(
            "{} {} is not in the plugin's allow-list for api `{}` (allowed: {})",
            req.method,
            joined.relative,
            req.api,
            if granted.is_empty() {
                "nothing".to_string()
            } else {
                granted.join(", ")
            }
        ));
    };
    let headers = build_headers(api, &req.headers, req.body.is_some())?;
    check_query(&req.query, tenant)?;
    let body = match req.body.as_deref() {
        Some(text) => {
            check_body(text, tenant)?;
            Some(Bytes::copy_from_slice(text.as_bytes()))
        }
        None => None,
    };
    let mut url = joined.url;
    if !req.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&req.query);
    }
    Ok(Prepared {
        method: req.method.clone(),
        url,
        relative: joined.relative,
        template: rule.pattern().to_string(),
        headers,
        body,
    })
}

/// Default headers plus the plugin's, each name allowed by the API and not owned by the host.
fn build_headers(
    api: &ApiConfig,
    requested: &[(String, String)],
    has_body: bool,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    // Plugin values replace the defaults above; several values for one name are kept.
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in requested {
        let shown: String = name.chars().take(64).collect();
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{shown}` is not a valid header name"))?;
        let owned_by_host = HOST_HEADERS.contains(&parsed.as_str())
            || api.idempotency_header.as_ref() == Some(&parsed);
        if owned_by_host {
            return Err(format!("header `{shown}` is set by the host"));
        }
        if !api.allowed_headers.contains(&parsed) {
            let allowed: Vec<&str> = api.allowed_headers.iter().map(HeaderName::as_str).collect();
            return Err(format!(
                "header `{shown}` is not allowed on api `{}` (allowed: {})",
                api.name,
                allowed.join(", ")
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("header `{shown}` has a value that is not a valid header"))?;
        if !replaced.contains(&parsed) {
            headers.remove(&parsed);
            replaced.push(parsed.clone());
        }
        headers.append(parsed, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::{api::RetryMode, ids::ApiName};

    fn api_config() -> ApiConfig {
        let mut config = ApiConfig::new(
            ApiName::new("hl"),
            reqwest::Url::parse("https://api.example/v1").unwrap(),
        );
        config.idempotency_header = Some(HeaderName::from_static("idempotency-key"));
        config
    }

    fn caps(rules: &[&str]) -> Capabilities {
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        let mut caps = Capabilities::default();
        caps.apis.insert(
            ApiName::new("hl"),
            crate::api::AllowList::parse(&rules).unwrap(),
        );
        caps
    }

    fn request(method: http::Method, path: &str) -> ApiRequest {
        ApiRequest {
            api: ApiName::new("hl"),
            method,
            path: path.into(),
            query: vec![],
            body: None,
            retry: RetryMode::Auto,
            headers: vec![],
        }
    }

    fn run(req: &ApiRequest) -> Result<Prepared, String> {
        prepare(
            &api_config(),
            &caps(&["GET /contacts/*", "POST /contacts/*/tags", "GET /search/**"]),
            &TenantId::new("loc1"),
            req,
        )
    }

    #[test]
    fn allowed_request_keeps_origin_and_base_path() {
        let p = run(&request(http::Method::GET, "/contacts/c1")).unwrap();
        assert_eq!(p.url.as_str(), "https://api.example/v1/contacts/c1");
        assert_eq!(p.relative, "/contacts/c1");
        assert_eq!(p.template, "/contacts/*");
        assert_eq!(p.headers[header::ACCEPT], "application/json");
        assert!(p.headers.get(header::CONTENT_TYPE).is_none());
        assert!(p.body.is_none());
    }

    #[test]
    fn allow_list_is_matched_below_the_base_path() {
        let denied = run(&request(http::Method::GET, "/contacts")).unwrap_err();
        assert!(denied.contains("GET /contacts is not in the plugin's allow-list"));
        assert!(denied.contains("allowed: GET /contacts/*"), "{denied}");
        assert!(run(&request(http::Method::DELETE, "/contacts/c1")).is_err());
        assert!(run(&request(http::Method::GET, "/search/a/b/c")).is_ok());
        // A rule written with the base path does not match: rules are relative to it.
        let c = caps(&["GET /v1/contacts/*"]);
        let req = request(http::Method::GET, "/contacts/c1");
        assert!(prepare(&api_config(), &c, &TenantId::new("loc1"), &req).is_err());
    }

    #[test]
    fn no_grant_on_the_api_denies() {
        let mut req = request(http::Method::GET, "/contacts/c1");
        req.api = ApiName::new("other");
        let why = run(&req).unwrap_err();
        assert!(why.contains("no capabilities on api `other`"), "{why}");
    }

    #[test]
    fn query_is_encoded_and_tenant_checked() {
        let mut req = request(http::Method::GET, "/contacts/c1");
        req.query = vec![
            ("locationId".into(), "loc1".into()),
            ("q".into(), "a b&c=d/é".into()),
        ];
        let p = run(&req).unwrap();
        assert_eq!(
            p.url.query(),
            Some("locationId=loc1&q=a+b%26c%3Dd%2F%C3%A9")
        );
        for field in [
            "locationId",
            "location_id",
            "altId",
            "companyId",
            "LOCATIONID",
        ] {
            req.query = vec![(field.into(), "loc2".into())];
            let why = run(&req).unwrap_err();
            assert!(why.contains(&format!("`{field}`")), "{why}");
        }
        // A second, conflicting value is caught too.
        req.query = vec![
            ("locationId".into(), "loc1".into()),
            ("locationId".into(), "loc2".into()),
        ];
        assert!(run(&req).is_err());
    }

    #[test]
    fn body_must_be_json_with_the_tenant() {
        let mut req = request(http::Method::POST, "/contacts/c1/tags");
        req.body = Some(r#"{"tags":["a"],"locationId":"loc1"}"#.into());
        let p = run(&req).unwrap();
        assert_eq!(p.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            p.body.as_deref(),
            Some(req.body.as_deref().unwrap().as_bytes())
        );

        for body in [
            r#"{"locationId":"loc2"}"#,
            r#"{"companyId":"co9"}"#,
            r#"{"altId":1}"#,
            r#"{"location_id":null}"#,
        ] {
            req.body = Some(body.into());
            assert!(
                run(&req)
                    .unwrap_err()
                    .contains("must be this delivery's tenant")
            );
        }
        req.body = Some("{not json".into());
        assert_eq!(run(&req).unwrap_err(), "body is not JSON");
        // Nested fields are the API's business; only top-level keys name the tenant.
        req.body = Some(r#"{"contact":{"locationId":"loc2"}}"#.into());
        assert!(run(&req).is_ok());
    }

    #[test]
    fn headers_are_allow_listed() {
        let mut req = request(http::Method::POST, "/contacts/c1/tags");
        req.body = Some("{}".into());
        req.headers = vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )];
        let p = run(&req).unwrap();
        assert_eq!(
            p.headers
                .get_all(header::CONTENT_TYPE)
                .iter()
                .collect::<Vec<_>>(),
            vec!["application/json; charset=utf-8"]
        );

        req.headers = vec![("X-Forwarded-Host".into(), "evil.example".into())];
        let why = run(&req).unwrap_err();
        assert!(
            why.contains("header `X-Forwarded-Host` is not allowed"),
            "{why}"
        );
        assert!(why.contains("content-type, accept"), "{why}");

        for host_owned in ["Authorization", "host", "Idempotency-Key", "content-length"] {
            req.headers = vec![(host_owned.into(), "x".into())];
            assert!(
                run(&req).unwrap_err().contains("set by the host"),
                "{host_owned}"
            );
        }
        req.headers = vec![("bad header".into(), "x".into())];
        assert!(run(&req).unwrap_err().contains("not a valid header name"));
        req.headers = vec![("accept".into(), "a\nb".into())];
        assert!(run(&req).unwrap_err().contains("not a valid header"));
    }

    #[test]
    fn a_granted_host_header_is_still_refused() {
        let mut api = api_config();
        api.allowed_headers.push(header::AUTHORIZATION);
        let mut req = request(http::Method::GET, "/contacts/c1");
        req.headers = vec![("authorization".into(), "Bearer stolen".into())];
        let why =
            prepare(&api, &caps(&["GET /contacts/*"]), &TenantId::new("t"), &req).unwrap_err();
        assert!(why.contains("set by the host"));
    }
}
