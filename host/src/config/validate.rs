//! Raw config -> typed config. Collects every problem before failing, so one run shows them all.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    AdminConfig, Config, ConfigError, LogFormat, PluginsConfig, Problem, ServerConfig,
    SourceConfig, StorageConfig, StoreUrl, TelemetryConfig,
    alerts::validate_alerts,
    apis::validate_api,
    credentials::validate_credentials,
    raw::{RawConfig, RawPublicKey, RawSecret},
    units::{parse_duration, parse_size},
    validate_sources::{check_replay_windows, validate_source, validate_tls},
};
use crate::{ids::ApiName, secret::SecretRef};

/// PostgreSQL connections per process unless `storage.pool_size` says otherwise: the workers
/// (2 x cores) plus ingestion and the background tasks, on the small machines this runs on.
const DEFAULT_POOL_SIZE: usize = 16;

/// More connections than this from one process only queue inside PostgreSQL.
const MAX_POOL_SIZE: usize = 1024;

/// `storage.url` as a backend, or a problem saying what to write.
fn store_url(c: &mut Checker<'_>, text: &str) -> StoreUrl {
    let fallback = |c: &Checker<'_>| StoreUrl::Sqlite(c.path(Path::new("data/wasmhook.db")));
    if let Some(path) = text.strip_prefix("sqlite://") {
        if path.is_empty() {
            c.problem(
                "storage.url",
                "`sqlite://` names no file; write \"sqlite://path/to/wasmhook.db\"",
            );
            return fallback(c);
        }
        return StoreUrl::Sqlite(c.path(Path::new(path)));
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return match crate::config::PostgresUrl::parse(text) {
            Ok(url) => StoreUrl::Postgres(url),
            Err(message) => {
                c.problem("storage.url", message);
                fallback(c)
            }
        };
    }
    c.problem(
        "storage.url",
        format!(
            "`{}` is not a store URL; write \"sqlite://path/to/wasmhook.db\" (one process) or \
             \"postgres://user@host:5432/database\" (several replicas)",
            crate::config::redact_url(text)
        ),
    );
    fallback(c)
}

/// Collects problems while reading fields.
pub(super) struct Checker<'a> {
    base: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn duration(
        &mut self,
        field: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        match value.map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.problem(field, e);
                default
            }
        }
    }

    pub(super) fn size(&mut self, field: &str, value: Option<&str>, default: u64) -> u64 {
        match value.map(parse_size) {
            None => default,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                self.problem(field, e);
                default
            }
        }
    }

    fn addr(&mut self, field: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.problem(
                field,
                format!("`{text}` is not an address; write host:port, e.g. \"127.0.0.1:8080\""),
            );
            default.parse().expect("default address parses")
        })
    }

    pub(super) fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn secret(&mut self, field: &str, raw: Option<RawSecret>) -> Option<SecretRef> {
        self.secret_ref(field, &raw?)
    }

    /// A secret reference, or a problem when the secret is written inline or names neither or
    /// both of `env` and `file`. The inline value is never repeated in the message.
    pub(super) fn secret_ref(&mut self, field: &str, raw: &RawSecret) -> Option<SecretRef> {
        match raw {
            RawSecret::Inline(_) => {
                self.problem(
                    field,
                    "secrets are never written into the config; use { env = \"VAR\" } or { file = \"path\" }",
                );
                None
            }
            RawSecret::Ref(r) => match (&r.env, &r.file) {
                (Some(env), None) if !env.is_empty() => Some(SecretRef::Env(env.clone())),
                (None, Some(file)) => Some(SecretRef::File(self.path(file))),
                _ => {
                    self.problem(field, "give exactly one of `env` or `file`");
                    None
                }
            },
        }
    }

    pub(super) fn pem(&mut self, field: &str, key: RawPublicKey) -> Option<String> {
        match (key.pem, key.file) {
            (Some(pem), None) => Some(pem),
            (None, Some(file)) => {
                let path = self.path(&file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some(text),
                    Err(e) => {
                        self.problem(field, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            _ => {
                self.problem(
                    field,
                    "give exactly one of `pem` (inline PEM text) or `file`",
                );
                None
            }
        }
    }
}

pub(super) fn validate(path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let mut c = Checker {
        base,
        problems: Vec::new(),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    let server = ServerConfig {
        listen: c.addr(
            "server.listen",
            raw.server.listen.as_deref(),
            "127.0.0.1:8080",
        ),
        max_body: c.size("server.max_body", raw.server.max_body.as_deref(), 1 << 20) as usize,
        header_timeout: c.duration(
            "server.header_timeout",
            raw.server.header_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        body_timeout: c.duration(
            "server.body_timeout",
            raw.server.body_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        max_concurrent_requests: raw.server.max_concurrent_requests.unwrap_or(1024),
        tls: None,
    };
    if server.max_concurrent_requests == 0 {
        c.problem("server.max_concurrent_requests", "must be at least 1");
    }
    let server = ServerConfig {
        tls: validate_tls(&mut c, raw.server.tls),
        ..server
    };

    let admin = AdminConfig {
        listen: c.addr(
            "admin.listen",
            raw.admin.listen.as_deref(),
            "127.0.0.1:9090",
        ),
        token: c.secret("admin.token", raw.admin.token),
    };

    let url_text = raw
        .storage
        .url
        .as_deref()
        .unwrap_or("sqlite://data/wasmhook.db");
    let url = store_url(&mut c, url_text);
    let storage = StorageConfig {
        url,
        retention: c.duration(
            "storage.retention",
            raw.storage.retention.as_deref(),
            Duration::from_secs(7 * 24 * 3600),
        ),
        dead_retention: c.duration(
            "storage.dead_retention",
            raw.storage.dead_retention.as_deref(),
            Duration::from_secs(30 * 24 * 3600),
        ),
        keep_payloads: raw.storage.keep_payloads.unwrap_or(false),
        gc_interval: c.duration(
            "storage.gc_interval",
            raw.storage.gc_interval.as_deref(),
            Duration::from_secs(60),
        ),
        pool_size: raw.storage.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
    };
    if storage.pool_size == 0 || storage.pool_size > MAX_POOL_SIZE {
        c.problem(
            "storage.pool_size",
            format!("must be between 1 and {MAX_POOL_SIZE}, e.g. {DEFAULT_POOL_SIZE}"),
        );
    }
    if storage.gc_interval.is_zero() {
        c.problem(
            "storage.gc_interval",
            "must be longer than zero, e.g. \"1m\"",
        );
    }

    let plugins = PluginsConfig {
        dir: c.path(raw.plugins.dir.as_deref().unwrap_or(Path::new("plugins"))),
        workers: raw.plugins.workers.unwrap_or(2 * cores),
        threads: raw.plugins.threads.unwrap_or(cores),
        retry_base: c.duration(
            "plugins.retry_base",
            raw.plugins.retry_base.as_deref(),
            Duration::from_secs(1),
        ),
        retry_max: c.duration(
            "plugins.retry_max",
            raw.plugins.retry_max.as_deref(),
            Duration::from_secs(3600),
        ),
        poll_interval: c.duration(
            "plugins.poll_interval",
            raw.plugins.poll_interval.as_deref(),
            Duration::from_millis(250),
        ),
        cache_dir: match &raw.plugins.cache_dir {
            Some(dir) => c.path(dir),
            // Beside the data it belongs with: the SQLite file's folder.
            None => match &storage.url {
                StoreUrl::Sqlite(db) => db.parent().unwrap_or(Path::new(".")).join("compile-cache"),
                // Compiled plugins are per machine, not shared state: beside the config.
                StoreUrl::Postgres(_) => c.path(Path::new("data/compile-cache")),
            },
        },
        watch: raw.plugins.watch.unwrap_or(true),
        reload_debounce: c.duration(
            "plugins.reload_debounce",
            raw.plugins.reload_debounce.as_deref(),
            Duration::from_millis(25),
        ),
        rescan_interval: c.duration(
            "plugins.rescan_interval",
            raw.plugins.rescan_interval.as_deref(),
            Duration::from_secs(30),
        ),
    };
    if plugins.rescan_interval.is_zero() {
        c.problem(
            "plugins.rescan_interval",
            "must be longer than zero, e.g. \"30s\"",
        );
    }
    if plugins.workers == 0 {
        c.problem("plugins.workers", "must be at least 1");
    }
    if plugins.threads == 0 {
        c.problem("plugins.threads", "must be at least 1");
    }

    let log_format = match raw.telemetry.log_format.as_deref() {
        None | Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.problem(
                "telemetry.log_format",
                format!("`{other}` is not a log format; write \"human\" or \"json\""),
            );
            LogFormat::Human
        }
    };
    let telemetry = TelemetryConfig {
        log_format,
        log_filter: raw.telemetry.log_filter.unwrap_or_else(|| "info".into()),
    };

    let credentials = validate_credentials(&mut c, raw.credentials);
    let alerts = validate_alerts(&mut c, raw.alerts);

    let mut apis = BTreeMap::new();
    for (name, api) in raw.apis {
        if let Some(api) = validate_api(&mut c, &name, api) {
            apis.insert(ApiName::new(name), api);
        }
    }

    let mut sources: Vec<SourceConfig> = Vec::new();
    for (i, raw_source) in raw.sources.into_iter().enumerate() {
        let field = format!("sources[{i}]");
        let source = validate_source(&mut c, &field, raw_source);
        if sources.iter().any(|s| s.name == source.name) {
            c.problem(
                format!("{field}.name"),
                format!(
                    "`{}` is used by another source; names must be unique",
                    source.name
                ),
            );
        }
        if let Some(api) = &source.api
            && !apis.contains_key(api)
        {
            c.problem(
                format!("{field}.api"),
                format!("no [apis.{api}] is configured; add it or remove this field"),
            );
        }
        sources.push(source);
    }
    // A redelivery the sources still accept must still find its event to be recognised: the
    // replay window of every source ends inside the retention window.
    check_replay_windows(&mut c, &sources, storage.retention);

    if c.problems.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            server,
            storage,
            plugins,
            sources,
            apis,
            admin,
            telemetry,
            credentials,
            alerts,
        })
    } else {
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: c.problems,
        })
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
