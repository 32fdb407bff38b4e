//! Configuration: `wasmhook.toml` is read into raw serde structs (`raw`), then validated into the
//! typed structs below (`validate`) before any port is bound. Validation collects every problem,
//! each naming the file, the field and the fix. Durations and sizes are written as humans write
//! them (`"10s"`, `"32MiB"`); secrets are referenced by env var or file, never inlined.
//! `wasmhook.example.toml` at the repository root documents every field and its default.

mod alerts;
mod api_retry;
mod apis;
mod credentials;
mod error;
mod raw;
mod raw_sources;
mod sources;
mod store_url;
mod units;
mod validate;
mod validate_sources;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

pub use alerts::{AlertWebhook, AlertsConfig};
pub use apis::{
    ApiConfig, BreakerConfig, CacheRule, DEFAULT_CACHE_MAX, DEFAULT_CACHE_TTL, DEFAULT_MAX_PAGES,
    DEFAULT_PAGE_LIMIT, RateLimit, default_cache_rules,
};
pub use credentials::{CredentialsConfig, MASTER_KEY_ENV, OAuthConfig};
pub use error::{ConfigError, Problem};
pub use sources::{
    DEFAULT_TOLERANCE, FieldOverrides, FieldRule, GitHubConfig, HighLevelConfig, HmacConfig,
    MacAlgorithm, MacEncoding, SchemeConfig, ShopifyConfig, SlackConfig, SourceConfig,
    StandardWebhooksConfig, StripeConfig,
};
pub use store_url::{PostgresUrl, StoreUrl, redact as redact_url};
pub use units::{parse_duration, parse_size};

use crate::{ids::ApiName, secret::SecretRef};

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was read from (relative paths in it are resolved against its folder).
    pub path: PathBuf,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub plugins: PluginsConfig,
    pub sources: Vec<SourceConfig>,
    pub apis: BTreeMap<ApiName, ApiConfig>,
    pub admin: AdminConfig,
    pub telemetry: TelemetryConfig,
    pub credentials: CredentialsConfig,
    pub alerts: AlertsConfig,
}

/// `[server]`: the public listener and its limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Public listener (webhooks, OAuth callbacks, `/healthz`). Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest accepted webhook body in bytes, enforced while reading. Default 1 MiB.
    pub max_body: usize,
    /// Time allowed for a client to send the request headers. Default 10 s.
    pub header_timeout: Duration,
    /// Time allowed for a client to send the whole body once headers are in. Default 10 s.
    pub body_timeout: Duration,
    /// Ingress requests handled at once; more get 503 + `Retry-After`. Default 1024.
    pub max_concurrent_requests: usize,
    /// `[server.tls]`: serve HTTPS with this certificate and key; `None` serves plain HTTP
    /// (behind a TLS-terminating proxy).
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: the certificate chain and private key files (PEM). Both are read at start-up
/// and again on SIGHUP, so a renewed certificate takes over without a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[admin]`: the admin listener (metrics, readiness, operators' API).
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Admin listener. Default `127.0.0.1:9090` (loopback: never expose it publicly).
    pub listen: SocketAddr,
    /// Bearer token for `/admin/...`; without one the admin API answers 403 to everything.
    pub token: Option<SecretRef>,
}

/// `[storage]`.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub url: StoreUrl,
    /// How long an event id is remembered for dedup (and events are kept). Default 7 days.
    pub retention: Duration,
    /// How long dead deliveries (and their events) are kept for inspection and replay.
    /// Default 30 days.
    pub dead_retention: Duration,
    /// Keep payloads after every delivery of them succeeded. Default false (data
    /// minimisation: only source, id, kind, tenant, time and the payload's hash stay).
    pub keep_payloads: bool,
    /// How often the retention collector runs. Default 1 minute.
    pub gc_interval: Duration,
    /// PostgreSQL connections this process keeps open at most. Default 16; ignored by SQLite.
    pub pool_size: usize,
}

/// `[plugins]`: the plugin folder and the dispatcher.
#[derive(Clone, Debug)]
pub struct PluginsConfig {
    /// Folder of `name.wasm` + `name.toml` pairs. Default `plugins`.
    pub dir: PathBuf,
    /// Deliveries run at once across all plugins. Default 2 x CPU cores.
    pub workers: usize,
    /// Threads of the plugin runtime (separate from the HTTP runtime). Default CPU cores.
    pub threads: usize,
    /// First retry delay after a failed attempt; doubles each attempt with ±10% jitter. Default 1 s.
    pub retry_base: Duration,
    /// Longest retry delay. Default 1 h.
    pub retry_max: Duration,
    /// How often idle workers look for due deliveries (new events wake them at once). Default 250 ms.
    pub poll_interval: Duration,
    /// The on-disk compile cache (created `0700`; refused if others may write to it). Default
    /// `compile-cache` next to the SQLite file.
    pub cache_dir: PathBuf,
    /// Reload plugins on file-system events in `dir`. Default true.
    pub watch: bool,
    /// Quiet time after the last file-system event before reloading. Default 25 ms.
    pub reload_debounce: Duration,
    /// How often `dir` is rescanned for changes regardless of events. Default 30 s.
    pub rescan_interval: Duration,
}

/// `[telemetry]`.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter. Default `info`.
    pub log_filter: String,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: impl Into<PathBuf>) -> Result<Config, ConfigError> {
        let path = path.into();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }

    /// Validates `text` as if read from `path` (used by `load` and by tests).
    pub fn parse(path: &std::path::Path, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        validate::validate(path, raw)
    }

    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const EXAMPLE: &str = include_str!("../../../wasmhook.example.toml");

    #[test]
    fn the_example_config_parses_with_its_documented_defaults() {
        let config = Config::parse(Path::new("conf/wasmhook.toml"), EXAMPLE).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.max_body, 1 << 20);
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(
            config.storage.url,
            StoreUrl::Sqlite(Path::new("conf/data/wasmhook.db").to_path_buf())
        );
        assert_eq!(config.storage.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            config.alerts.token_expiry_horizon,
            crate::config::AlertsConfig::default().token_expiry_horizon
        );
        assert_eq!(
            config.storage.dead_retention,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert!(!config.storage.keep_payloads);
        assert_eq!(config.storage.gc_interval, Duration::from_secs(60));
        assert_eq!(config.storage.pool_size, 16);
        assert_eq!(config.plugins.dir, Path::new("conf/plugins"));
        assert_eq!(
            config.plugins.cache_dir,
            Path::new("conf/data/compile-cache"),
            "the compile cache lives beside the store"
        );
        assert!(config.plugins.watch);
        assert_eq!(config.plugins.reload_debounce, Duration::from_millis(25));
        assert_eq!(config.plugins.rescan_interval, Duration::from_secs(30));
        let source = config.source("highlevel").unwrap();
        let SchemeConfig::HighLevel(hl) = &source.scheme else {
            panic!("the example's highlevel source is not highlevel")
        };
        assert_eq!(hl.app_id, "your-highlevel-app-id");
        assert_eq!(
            hl.ed25519_keys.len(),
            1,
            "defaults to the published Ed25519 key"
        );
        assert_eq!(hl.rsa_keys.len(), 1, "defaults to the published RSA key");
        assert_eq!(hl.max_age, Duration::from_secs(72 * 3600));
        let api = &config.apis[&ApiName::new("highlevel")];
        assert_eq!(api.version_for("/contacts/abc"), Some("2021-07-28"));
        assert_eq!(api.version_for("/calendars/events"), Some("2021-04-15"));
        assert_eq!(
            api.version_for("/conversations/messages"),
            Some("2021-04-15")
        );
        assert_eq!(api.version_for("/calendars"), Some("2021-04-15"));
        assert_eq!(api.version_for("/calendarsx"), Some("2021-07-28"));
        assert_eq!(api.token, Some(SecretRef::Env("HIGHLEVEL_TOKEN".into())));
        let oauth = api.oauth.as_ref().expect("the example configures OAuth");
        assert_eq!(
            oauth.token_url.as_str(),
            "https://services.leadconnectorhq.com/oauth/token"
        );
        assert_eq!(
            oauth.client_id,
            SecretRef::Env("HIGHLEVEL_CLIENT_ID".into())
        );
        assert_eq!(
            oauth.location_token_path.as_deref(),
            Some("/oauth/locationToken")
        );
        assert_eq!(oauth.request_timeout, Duration::from_secs(10));
        let credentials = &config.credentials;
        let defaults = CredentialsConfig::default();
        assert_eq!(
            credentials.master_key,
            SecretRef::Env(MASTER_KEY_ENV.into())
        );
        assert!(credentials.old_master_keys.is_empty());
        assert_eq!(credentials.refresh_when_left, defaults.refresh_when_left);
        assert_eq!(credentials.idle_refresh, defaults.idle_refresh);
        assert_eq!(credentials.check_interval, defaults.check_interval);
        assert_eq!(
            credentials.rotate_after,
            Duration::from_secs(90 * 24 * 3600)
        );
        assert_eq!(credentials.overlap, defaults.overlap);
        assert_eq!(credentials.wait_recheck, defaults.wait_recheck);
        let alerts = &config.alerts;
        assert!(alerts.webhook.is_none(), "the example POSTs nowhere");
        assert_eq!(alerts.api_error_rate, 0.5);
        assert_eq!(alerts.api_error_window, Duration::from_secs(300));
        assert_eq!(alerts.api_error_min_requests, 20);
        assert_eq!(alerts.auth_failures, 3);
        assert_eq!(alerts.auth_failure_window, Duration::from_secs(600));
        assert_eq!(alerts.queue_age, Duration::from_secs(300));
        assert_eq!(alerts.check_interval, Duration::from_secs(15));
    }

    #[test]
    fn the_quick_start_config_parses() {
        let text = include_str!("../../../examples/wasmhook.toml");
        let config = Config::parse(Path::new("examples/wasmhook.toml"), text).unwrap();
        assert_eq!(config.plugins.dir, Path::new("examples/plugins"));
        assert!(config.apis.contains_key(&ApiName::new("highlevel")));
    }

    #[test]
    fn an_empty_file_gives_every_default() {
        let config = Config::parse(Path::new("w.toml"), "").unwrap();
        assert!(config.sources.is_empty());
        assert_eq!(config.server.header_timeout, Duration::from_secs(10));
    }

    fn problems(text: &str) -> String {
        match Config::parse(Path::new("cfg/wasmhook.toml"), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_unknown_field_is_named_with_the_file() {
        let msg = problems("[server]\nlisten = \"127.0.0.1:1\"\nmax_bodyy = \"1MiB\"\n");
        assert!(msg.contains("cfg/wasmhook.toml"), "{msg}");
        assert!(msg.contains("max_bodyy"), "{msg}");
    }

    #[test]
    fn bad_values_are_all_reported_with_field_and_fix() {
        let msg = problems(
            r#"
[server]
listen = "nowhere"
max_body = "lots"
[storage]
url = "mysql://x"
[[sources]]
name = "High Level"
scheme = "highlevel"
api = "missing"
[apis.hl]
base_url = "ftp://x"
token = "plain-text-token"
"#,
        );
        for needle in [
            "server.listen",
            "host:port",
            "server.max_body",
            "64MiB",
            "storage.url",
            "sources[0].name",
            "sources[0].app_id",
            "sources[0].api",
            "apis.hl.base_url",
            "apis.hl.token",
            "never written into the config",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        assert!(
            !msg.contains("plain-text-token"),
            "a secret leaked into:\n{msg}"
        );
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_its_password_never_shows() {
        let text = "[storage]\nurl = \"postgres://app:s3cret@db:5432/hooks\"\npool_size = 4\n\
                    [[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"a\"\n";
        let config = Config::parse(Path::new("cfg/wasmhook.toml"), text).unwrap();
        let StoreUrl::Postgres(url) = &config.storage.url else {
            panic!("expected PostgreSQL, got {:?}", config.storage.url)
        };
        assert_eq!(url.expose(), "postgres://app:s3cret@db:5432/hooks");
        assert_eq!(config.storage.pool_size, 4);
        assert!(!format!("{config:?}").contains("s3cret"));

        let msg = problems(
            "[storage]\nurl = \"postgres://app:s3cret@/hooks\"\npool_size = 0\n\
             [[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"a\"\n",
        );
        for needle in [
            "cfg/wasmhook.toml",
            "storage.url",
            "postgres://user@host",
            "storage.pool_size",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        assert!(!msg.contains("s3cret"), "the password leaked into:\n{msg}");
    }

    #[test]
    fn a_replay_window_longer_than_retention_is_refused() {
        let msg = problems(
            "[storage]\nretention = \"1h\"\n[[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\n\
             app_id = \"a\"\nmax_age = \"2h\"\n",
        );
        assert!(msg.contains("sources[0].max_age"), "{msg}");
        assert!(msg.contains("storage.retention"), "{msg}");
    }

    #[test]
    fn an_unknown_scheme_is_named() {
        let msg = problems("[[sources]]\nname = \"x\"\nscheme = \"carrier-pigeon\"\n");
        assert!(msg.contains("carrier-pigeon"), "{msg}");
    }
}
