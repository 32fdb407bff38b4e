//! `[apis.<name>]`: the typed configuration of one upstream API plugins call through the host,
//! and its validation from the raw TOML. Owns every default of the outbound client: timeouts and
//! sizes, pacing (`rate_limit`), the circuit breaker, pagination limits and the reference-data
//! cache rules. The retry schedule (`retry`) is validated in `api_retry.rs`.
//!
//! Invariants of a validated [`ApiConfig`]: `base_url` is http(s) with a host and no query or
//! fragment; `versions` is sorted longest prefix first; every path pattern parsed; every number
//! is within the bounds below (so the client can size its state from them without checks).

use std::time::Duration;

use super::{
    credentials::{OAuthConfig, validate_oauth},
    raw::{RawApi, RawBreaker, RawCacheRule, RawRateLimit},
    validate::{Checker, valid_name},
};
use crate::{
    api::{RetrySchedule, capability::PathPattern},
    ids::ApiName,
    secret::SecretRef,
};

/// Default per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Default largest response body: 4 MiB.
pub const DEFAULT_MAX_RESPONSE: usize = 4 << 20;
/// Default `limit` of a page when the endpoint is not declared in `list_endpoints`.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Default ceiling on the pages one walk may fetch.
pub const DEFAULT_MAX_PAGES: u32 = 100;
/// Default bound of the reference-data cache of one API: 8 MiB.
pub const DEFAULT_CACHE_MAX: usize = 8 << 20;
/// Default time a cached answer stays fresh when a cache rule names no `ttl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Default run of server errors that opens the circuit breaker.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default time an open breaker refuses calls before one probe is let through.
pub const DEFAULT_BREAKER_COOL_DOWN: Duration = Duration::from_secs(30);

/// Largest `rate_limit.requests`: the pacer keeps one timestamp per request in the window.
const MAX_WINDOW_REQUESTS: u32 = 100_000;
/// Largest `limit` (declared or default) a page may ask for.
const MAX_PAGE_LIMIT: u32 = 10_000;
/// Largest `max_pages`.
const MAX_MAX_PAGES: u32 = 100_000;

/// `[apis.<name>]`: an upstream API plugins may call through the host.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The API's name: the `<name>` in `[apis.<name>]`, in requests and in manifests.
    pub name: ApiName,
    /// Every request goes to this origin; plugins only choose the path.
    pub base_url: reqwest::Url,
    /// Static bearer token (e.g. a HighLevel Private Integration token).
    pub token: Option<SecretRef>,
    /// Header carrying `<idempotency-key>:<n>`, e.g. `Idempotency-Key`. None: not sent.
    pub idempotency_header: Option<http::HeaderName>,
    /// `Version` header values by path prefix, longest prefix first.
    pub versions: Vec<(String, String)>,
    /// Per-request timeout (also bounded by the delivery's remaining time). Default 15 s.
    pub request_timeout: Duration,
    /// Largest accepted response body. Default 4 MiB.
    pub max_response: usize,
    /// Request headers plugins may set (lower case). Default `content-type`, `accept`.
    pub allowed_headers: Vec<http::HeaderName>,
    /// Client-side pacing per (api, tenant). None: no configured limit — the API's own
    /// `X-RateLimit-*` headers and 429 waits are still followed. Default None.
    pub rate_limit: Option<RateLimit>,
    /// The per-API circuit breaker. Default 5 failures, 30 s cool-down.
    pub breaker: BreakerConfig,
    /// Declared list endpoints and their default `limit`: a GET on one of them without a
    /// `limit` gets this one, and pagination uses it. Default none.
    pub list_endpoints: Vec<(PathPattern, u32)>,
    /// `limit` sent when paginating an endpoint not in `list_endpoints`. Default 100.
    pub page_limit: u32,
    /// Ceiling on the pages one walk may fetch, whatever the plugin asks. Default 100.
    pub max_pages: u32,
    /// Which GET answers the reference-data cache may keep, for how long, and which webhook
    /// kinds drop them. Default [`default_cache_rules`].
    pub cache: Vec<CacheRule>,
    /// Bound of the cache's memory (keys, headers and bodies), in bytes; 0 disables it.
    /// Default 8 MiB.
    pub cache_max: usize,
    /// `[apis.<name>.oauth]`: installations of this API get OAuth tokens (code exchange,
    /// refresh, location minting). None: only static tokens.
    pub oauth: Option<OAuthConfig>,
    /// When and on which statuses a failed request is sent again. Default
    /// [`RetrySchedule::default`] (1 s, 2 s, 4 s, 8 s ±10% on 429, 500, 502, 503, 504).
    pub retry: RetrySchedule,
}

/// `rate_limit = { requests = 100, per = "10s", daily = 200000 }` (HighLevel's limits per app
/// and tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in any window of length `per`: 1..=100,000.
    pub requests: u32,
    /// The window. Above zero.
    pub per: Duration,
    /// Requests allowed per day, if the API has a daily quota.
    pub daily: Option<u64>,
}

/// `breaker = { failures = 5, cool_down = "30s" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive server errors or timeouts that open the breaker; 0 disables it.
    pub failures: u32,
    /// How long an open breaker refuses calls before it lets one probe through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: DEFAULT_BREAKER_FAILURES,
            cool_down: DEFAULT_BREAKER_COOL_DOWN,
        }
    }
}

/// One `[[apis.<name>.cache]]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheRule {
    /// GET paths (below the base path) whose answers may be cached: `*` one segment, `**` the
    /// rest, as in allow-lists.
    pub path: PathPattern,
    /// How long an answer stays fresh.
    pub ttl: Duration,
    /// Webhook kinds (e.g. `OpportunityCreate`) that drop the tenant's entries of this rule.
    pub invalidate_on: Vec<String>,
}

/// The rules used when an API configures no `cache`: HighLevel's reference data (the platform
/// guide names pipeline stages, calendars, custom field definitions and users), each fresh for
/// 10 minutes. Pipelines are dropped on opportunity creation and stage changes (an opportunity
/// in a new stage is the sign of an edited pipeline), users on user events; calendars and custom
/// fields have no webhook, so the TTL alone bounds their staleness.
pub fn default_cache_rules() -> Vec<CacheRule> {
    let ten_minutes = Duration::from_secs(600);
    let rule = |path: &str, kinds: &[&str]| CacheRule {
        path: PathPattern::parse(path).unwrap_or_else(|e| unreachable!("{path}: {e}")),
        ttl: ten_minutes,
        invalidate_on: kinds.iter().map(|k| k.to_string()).collect(),
    };
    let pipelines = ["OpportunityCreate", "OpportunityStageUpdate"];
    let users = ["UserCreate", "UserUpdate", "UserDelete"];
    vec![
        rule("/opportunities/pipelines", &pipelines),
        rule("/calendars", &[]),
        rule("/calendars/groups", &[]),
        rule("/locations/*/customFields", &[]),
        rule("/locations/*/customFields/*", &[]),
        rule("/users", &users),
        rule("/users/*", &users),
    ]
}

impl ApiConfig {
    /// An API at `base_url` with every other field at its default.
    pub fn new(name: ApiName, base_url: reqwest::Url) -> ApiConfig {
        ApiConfig {
            name,
            base_url,
            token: None,
            idempotency_header: None,
            versions: vec![],
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response: DEFAULT_MAX_RESPONSE,
            allowed_headers: vec![http::header::CONTENT_TYPE, http::header::ACCEPT],
            rate_limit: None,
            breaker: BreakerConfig::default(),
            list_endpoints: vec![],
            page_limit: DEFAULT_PAGE_LIMIT,
            max_pages: DEFAULT_MAX_PAGES,
            cache: default_cache_rules(),
            cache_max: DEFAULT_CACHE_MAX,
            oauth: None,
            retry: RetrySchedule::default(),
        }
    }

    /// The `Version` header for `path`: the value of the longest prefix that matches whole
    /// segments (`/calendars` covers `/calendars` and `/calendars/x`, not `/calendarsx`).
    pub fn version_for(&self, path: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(prefix, _)| {
                path.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                    prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
                })
            })
            .map(|(_, v)| v.as_str())
    }

    /// The declared `limit` of the list endpoint `path` (below the base path), if declared.
    pub fn list_limit(&self, path: &str) -> Option<u32> {
        self.list_endpoints
            .iter()
            .find(|(pattern, _)| pattern.matches_path(path))
            .map(|(_, limit)| *limit)
    }

    /// The `limit` a page of `path` is fetched with when the plugin names none: the declared
    /// one, else `page_limit`.
    pub fn page_limit_for(&self, path: &str) -> u32 {
        self.list_limit(path).unwrap_or(self.page_limit)
    }

    /// The first cache rule covering `path` and its index.
    pub fn cache_rule(&self, path: &str) -> Option<(usize, &CacheRule)> {
        self.cache
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.path.matches_path(path))
    }
}

/// Validates `[apis.<name>]`; problems go to `c`. None when the entry is unusable.
pub(super) fn validate_api(c: &mut Checker, name: &str, api: RawApi) -> Option<ApiConfig> {
    let field = format!("apis.{name}");
    if !valid_name(name) {
        c.problem(&field, "API names must be 1-64 of a-z, 0-9, `-`, `_`");
    }
    // Checked before base_url so one run reports both.
    let token = c.secret(&format!("{field}.token"), api.token);
    let base_url = match api.base_url.as_deref().map(reqwest::Url::parse) {
        Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            if url.query().is_some() || url.fragment().is_some() {
                c.problem(
                    format!("{field}.base_url"),
                    "must not carry a query or fragment",
                );
            }
            url
        }
        Some(_) => {
            c.problem(
                format!("{field}.base_url"),
                "not an http(s) URL; write e.g. \"https://services.leadconnectorhq.com\"",
            );
            return None;
        }
        None => {
            c.problem(
                format!("{field}.base_url"),
                "required: the API's origin, e.g. \"https://services.leadconnectorhq.com\"",
            );
            return None;
        }
    };
    let mut config = ApiConfig::new(ApiName::new(name), base_url);
    config.token = token;
    config.idempotency_header = api.idempotency_header.and_then(|h| {
        http::HeaderName::try_from(h.as_str())
            .map_err(|_| {
                c.problem(
                    format!("{field}.idempotency_header"),
                    format!("`{h}` is not a valid header name"),
                )
            })
            .ok()
    });
    config.versions = versions(c, &field, api.versions.unwrap_or_default());
    if let Some(headers) = api.allowed_headers {
        config.allowed_headers = allowed_headers(c, &field, headers);
    }
    config.request_timeout = c.duration(
        &format!("{field}.request_timeout"),
        api.request_timeout.as_deref(),
        DEFAULT_REQUEST_TIMEOUT,
    );
    config.max_response = c.size(
        &format!("{field}.max_response"),
        api.max_response.as_deref(),
        DEFAULT_MAX_RESPONSE as u64,
    ) as usize;
    config.rate_limit = api
        .rate_limit
        .and_then(|raw| rate_limit(c, &format!("{field}.rate_limit"), raw));
    if let Some(raw) = api.breaker {
        config.breaker = breaker(c, &format!("{field}.breaker"), raw);
    }
    for (pattern, limit) in api.list_endpoints.unwrap_or_default() {
        let at = format!("{field}.list_endpoints.\"{pattern}\"");
        let limit = bounded(c, &at, limit, 1, MAX_PAGE_LIMIT);
        if let Some(pattern) = pattern_of(c, &at, &pattern) {
            config.list_endpoints.push((pattern, limit));
        }
    }
    if let Some(limit) = api.page_limit {
        config.page_limit = bounded(c, &format!("{field}.page_limit"), limit, 1, MAX_PAGE_LIMIT);
    }
    if let Some(pages) = api.max_pages {
        config.max_pages = bounded(c, &format!("{field}.max_pages"), pages, 1, MAX_MAX_PAGES);
    }
    if let Some(rules) = api.cache {
        config.cache = rules
            .into_iter()
            .enumerate()
            .filter_map(|(i, raw)| cache_rule(c, &format!("{field}.cache[{i}]"), raw))
            .collect();
    }
    config.cache_max = c.size(
        &format!("{field}.cache_max"),
        api.cache_max.as_deref(),
        DEFAULT_CACHE_MAX as u64,
    ) as usize;
    config.oauth = api
        .oauth
        .and_then(|raw| validate_oauth(c, &format!("{field}.oauth"), raw));
    if let Some(raw) = api.retry {
        config.retry = super::api_retry::retry(c, &format!("{field}.retry"), raw);
    }
    Some(config)
}

fn versions(
    c: &mut Checker,
    field: &str,
    raw: std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut versions: Vec<(String, String)> = raw
        .into_iter()
        .filter(|(prefix, _)| {
            let ok = prefix.starts_with('/');
            if !ok {
                c.problem(
                    format!("{field}.versions"),
                    format!("prefix `{prefix}` must start with `/`"),
                );
            }
            ok
        })
        .collect();
    // Longest prefix first, so `version_for` can take the first match.
    versions.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    versions
}

fn allowed_headers(c: &mut Checker, field: &str, raw: Vec<String>) -> Vec<http::HeaderName> {
    raw.into_iter()
        .filter_map(|h| {
            let lower = h.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "authorization" | "host" | "version" | "cookie"
            ) {
                c.problem(
                    format!("{field}.allowed_headers"),
                    format!("`{h}` is set by the host and cannot be granted to plugins"),
                );
                return None;
            }
            http::HeaderName::try_from(lower.as_str())
                .map_err(|_| {
                    c.problem(
                        format!("{field}.allowed_headers"),
                        format!("`{h}` is not a valid header name"),
                    )
                })
                .ok()
        })
        .collect()
}

fn rate_limit(c: &mut Checker, field: &str, raw: RawRateLimit) -> Option<RateLimit> {
    let requests = bounded(
        c,
        &format!("{field}.requests"),
        raw.requests,
        1,
        MAX_WINDOW_REQUESTS,
    );
    let per = c.duration(&format!("{field}.per"), Some(&raw.per), Duration::ZERO);
    if per.is_zero() {
        c.problem(
            format!("{field}.per"),
            "the window must be longer than zero; write e.g. \"10s\"",
        );
        return None;
    }
    if raw.daily == Some(0) {
        c.problem(
            format!("{field}.daily"),
            "must be at least 1; leave it out when the API has no daily quota",
        );
    }
    Some(RateLimit {
        requests,
        per,
        daily: raw.daily.filter(|d| *d > 0),
    })
}

fn breaker(c: &mut Checker, field: &str, raw: RawBreaker) -> BreakerConfig {
    let failures = raw
        .failures
        .map(|n| bounded(c, &format!("{field}.failures"), n, 0, 1000))
        .unwrap_or(DEFAULT_BREAKER_FAILURES);
    let cool_down = c.duration(
        &format!("{field}.cool_down"),
        raw.cool_down.as_deref(),
        DEFAULT_BREAKER_COOL_DOWN,
    );
    if cool_down.is_zero() {
        c.problem(
            format!("{field}.cool_down"),
            "must be longer than zero; write e.g. \"30s\" (or set failures = 0 to disable)",
        );
    }
    BreakerConfig {
        failures,
        cool_down,
    }
}

fn cache_rule(c: &mut Checker, field: &str, raw: RawCacheRule) -> Option<CacheRule> {
    let ttl = c.duration(
        &format!("{field}.ttl"),
        raw.ttl.as_deref(),
        DEFAULT_CACHE_TTL,
    );
    if ttl.is_zero() {
        c.problem(
            format!("{field}.ttl"),
            "must be longer than zero; remove the rule to stop caching these paths",
        );
    }
    let invalidate_on: Vec<String> = raw.invalidate_on.unwrap_or_default();
    if let Some(bad) = invalidate_on
        .iter()
        .find(|k| k.is_empty() || k.len() > 128 || k.chars().any(char::is_whitespace))
    {
        c.problem(
            format!("{field}.invalidate_on"),
            format!("`{bad}` is not a webhook kind; write e.g. \"OpportunityCreate\""),
        );
    }
    let path = pattern_of(c, &format!("{field}.path"), &raw.path)?;
    Some(CacheRule {
        path,
        ttl,
        invalidate_on,
    })
}

fn pattern_of(c: &mut Checker, field: &str, text: &str) -> Option<PathPattern> {
    PathPattern::parse(text)
        .map_err(|why| c.problem(field, format!("`{text}`: {why}")))
        .ok()
}

/// `value` if within `min..=max`; else a problem naming the range, and the nearest bound.
fn bounded(c: &mut Checker, field: &str, value: u32, min: u32, max: u32) -> u32 {
    if !(min..=max).contains(&value) {
        c.problem(field, format!("must be between {min} and {max}"));
    }
    value.clamp(min, max)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn api(text: &str) -> Result<ApiConfig, String> {
        let toml = format!("[apis.hl]\nbase_url = \"https://api.example/v1\"\n{text}");
        Config::parse(Path::new("w.toml"), &toml)
            .map(|c| c.apis[&ApiName::new("hl")].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let a = api("").unwrap();
        assert_eq!(a.rate_limit, None);
        assert_eq!(a.breaker, BreakerConfig::default());
        assert_eq!(a.breaker.failures, 5);
        assert_eq!(a.breaker.cool_down, Duration::from_secs(30));
        assert_eq!(a.page_limit, 100);
        assert_eq!(a.max_pages, 100);
        assert_eq!(a.cache_max, 8 << 20);
        assert_eq!(a.cache, default_cache_rules());
        assert!(a.cache_rule("/opportunities/pipelines").is_some());
        assert!(a.cache_rule("/locations/l1/customFields").is_some());
        assert!(a.cache_rule("/users/u1").is_some());
        // Calendar events are not reference data.
        assert!(a.cache_rule("/calendars/events").is_none());
        assert!(a.cache_rule("/contacts/c1").is_none());
        assert_eq!(a.page_limit_for("/contacts"), 100);
    }

    #[test]
    fn traffic_fields_parse() {
        let a = api(r#"
rate_limit = { requests = 100, per = "10s", daily = 200000 }
breaker = { failures = 3, cool_down = "1m" }
list_endpoints = { "/contacts" = 50, "/conversations/*/messages" = 20 }
page_limit = 25
max_pages = 7
cache_max = "1MiB"
[[apis.hl.cache]]
path = "/opportunities/pipelines"
ttl = "2m"
invalidate_on = ["OpportunityCreate"]
"#)
        .unwrap();
        assert_eq!(
            a.rate_limit,
            Some(RateLimit {
                requests: 100,
                per: Duration::from_secs(10),
                daily: Some(200_000)
            })
        );
        assert_eq!(a.breaker.failures, 3);
        assert_eq!(a.breaker.cool_down, Duration::from_secs(60));
        assert_eq!(a.list_limit("/contacts"), Some(50));
        assert_eq!(a.list_limit("/contacts/c1"), None);
        assert_eq!(a.list_limit("/conversations/x/messages"), Some(20));
        assert_eq!(a.page_limit_for("/users/search"), 25);
        assert_eq!(a.max_pages, 7);
        assert_eq!(a.cache_max, 1 << 20);
        assert_eq!(a.cache.len(), 1);
        let (index, rule) = a.cache_rule("/opportunities/pipelines").unwrap();
        assert_eq!(index, 0);
        assert_eq!(rule.ttl, Duration::from_secs(120));
        assert_eq!(rule.invalidate_on, ["OpportunityCreate"]);
        // A configured list replaces the defaults.
        assert!(a.cache_rule("/users").is_none());
    }

    #[test]
    fn the_example_documents_the_highlevel_defaults() {
        let text = include_str!("../../../wasmhook.example.toml");
        let config = Config::parse(Path::new("wasmhook.toml"), text).unwrap();
        let a = &config.apis[&ApiName::new("highlevel")];
        assert_eq!(
            a.rate_limit,
            Some(RateLimit {
                requests: 100,
                per: Duration::from_secs(10),
                daily: Some(200_000)
            })
        );
        assert_eq!(a.breaker, BreakerConfig::default());
        assert_eq!(a.page_limit, DEFAULT_PAGE_LIMIT);
        assert_eq!(a.max_pages, DEFAULT_MAX_PAGES);
        assert_eq!(a.cache_max, DEFAULT_CACHE_MAX);
        assert_eq!(
            a.cache,
            default_cache_rules(),
            "the example spells out the defaults"
        );
        assert_eq!(a.list_limit("/contacts"), Some(100));
        assert_eq!(a.list_limit("/conversations/c1/messages"), Some(100));
        assert_eq!(a.retry, RetrySchedule::default());
    }

    #[test]
    fn an_empty_cache_list_caches_nothing() {
        assert!(api("cache = []").unwrap().cache.is_empty());
    }

    #[test]
    fn bad_traffic_fields_are_all_named() {
        let message = api(r#"
rate_limit = { requests = 0, per = "0s", daily = 0 }
breaker = { failures = 5000, cool_down = "0s" }
list_endpoints = { "contacts" = 0 }
page_limit = 0
max_pages = 0
cache_max = "lots"
[[apis.hl.cache]]
path = "/a/**/b"
ttl = "0s"
invalidate_on = ["Opportunity Create"]
"#)
        .unwrap_err();
        for needle in [
            "apis.hl.rate_limit.requests: must be between 1 and 100000",
            "apis.hl.rate_limit.per",
            "apis.hl.breaker.failures",
            "apis.hl.breaker.cool_down",
            "apis.hl.list_endpoints.\"contacts\": must be between 1 and 10000",
            "apis.hl.list_endpoints.\"contacts\": `contacts`: the path must start with `/`",
            "apis.hl.page_limit",
            "apis.hl.max_pages",
            "apis.hl.cache_max",
            "apis.hl.cache[0].ttl",
            "apis.hl.cache[0].invalidate_on",
            "apis.hl.cache[0].path",
        ] {
            assert!(
                message.contains(needle),
                "missing {needle:?} in:\n{message}"
            );
        }
        // The daily quota problem is reported only once the window is valid.
        let daily = api(r#"rate_limit = { requests = 1, per = "1s", daily = 0 }"#).unwrap_err();
        assert!(daily.contains("apis.hl.rate_limit.daily"), "{daily}");
    }

    #[test]
    fn unknown_traffic_keys_are_refused() {
        let message = api(r#"rate_limit = { requests = 1, per = "1s", burst = 3 }"#).unwrap_err();
        assert!(message.contains("burst"), "{message}");
    }
}
