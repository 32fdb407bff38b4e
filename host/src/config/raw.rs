//! The config file as written: plain serde structs, every field optional where a default
//! exists, unknown fields rejected (so a typo is an error naming the field, not a silent default).

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

pub use super::raw_sources::{RawPublicKey, RawSource, RawTls};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub alerts: super::alerts::RawAlerts,
    #[serde(default)]
    pub sources: Vec<RawSource>,
    #[serde(default)]
    pub apis: BTreeMap<String, RawApi>,
    #[serde(default)]
    pub credentials: RawCredentials,
}

/// `[credentials]`: the master key and the token lifecycle.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub master_key: Option<RawSecret>,
    pub old_master_keys: Option<Vec<RawSecret>>,
    pub refresh_when_left: Option<f64>,
    pub idle_refresh: Option<String>,
    pub check_interval: Option<String>,
    pub rotate_after: Option<String>,
    pub overlap: Option<String>,
    pub wait_recheck: Option<String>,
}

/// `[apis.<name>.oauth]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    pub token_url: Option<String>,
    pub client_id: Option<RawSecret>,
    pub client_secret: Option<RawSecret>,
    pub redirect_url: Option<String>,
    pub user_type: Option<String>,
    pub location_token_path: Option<String>,
    pub installed_locations_path: Option<String>,
    pub app_id: Option<String>,
    pub request_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_body: Option<String>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub max_concurrent_requests: Option<usize>,
    pub tls: Option<RawTls>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<RawSecret>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub url: Option<String>,
    pub retention: Option<String>,
    pub dead_retention: Option<String>,
    pub keep_payloads: Option<bool>,
    pub gc_interval: Option<String>,
    pub pool_size: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub dir: Option<PathBuf>,
    pub workers: Option<usize>,
    pub threads: Option<usize>,
    pub retry_base: Option<String>,
    pub retry_max: Option<String>,
    pub poll_interval: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub watch: Option<bool>,
    pub reload_debounce: Option<String>,
    pub rescan_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub log_format: Option<String>,
    pub log_filter: Option<String>,
}

/// A secret reference. A bare string is accepted by serde only so validation can explain that
/// secrets are never written into the config itself.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Inline(
        #[allow(
            dead_code,
            reason = "only its presence matters: the value is never read"
        )]
        String,
    ),
    Ref(RawSecretRef),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub base_url: Option<String>,
    pub token: Option<RawSecret>,
    pub idempotency_header: Option<String>,
    pub versions: Option<BTreeMap<String, String>>,
    pub request_timeout: Option<String>,
    pub max_response: Option<String>,
    pub allowed_headers: Option<Vec<String>>,
    pub rate_limit: Option<RawRateLimit>,
    pub breaker: Option<RawBreaker>,
    pub list_endpoints: Option<BTreeMap<String, u32>>,
    pub page_limit: Option<u32>,
    pub max_pages: Option<u32>,
    pub cache: Option<Vec<RawCacheRule>>,
    pub cache_max: Option<String>,
    pub oauth: Option<RawOAuth>,
    pub retry: Option<RawRetry>,
}

/// `[apis.<name>.retry]`: `waits = ["1s", "2s"]`, `jitter = 0.1`, `on = [429, 503]`,
/// `max_server_wait = "60s"`, `max_defer = "24h"`. Numbers are read wide so validation, not
/// serde, names a value out of range.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub waits: Option<Vec<String>>,
    pub jitter: Option<f64>,
    pub on: Option<Vec<i64>>,
    pub max_server_wait: Option<String>,
    pub max_defer: Option<String>,
}

/// `rate_limit = { requests = 100, per = "10s", daily = 200000 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub requests: u32,
    pub per: String,
    pub daily: Option<u64>,
}

/// `breaker = { failures = 5, cool_down = "30s" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failures: Option<u32>,
    pub cool_down: Option<String>,
}

/// One `[[apis.<name>.cache]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheRule {
    pub path: String,
    pub ttl: Option<String>,
    pub invalidate_on: Option<Vec<String>>,
}
