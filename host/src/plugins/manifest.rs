//! A plugin's manifest (`name.toml`), see DESIGN.md §4: what the plugin subscribes to, its
//! budget per delivery, what it may call, and its own configuration.
//!
//! Parsing goes through a plain TOML table rather than a serde struct so that every error names
//! the exact field (`capabilities.api.highlevel.allow`), says what is wrong and how to fix it.
//! Unknown fields are errors: a typo (`timout`) must not silently fall back to a default.
//!
//! Invariants of a [`Manifest`]: `name` equals the file stem and is 1-64 of `a-z0-9-_`;
//! `events` is non-empty; `timeout` > 0; `memory` within [`MIN_MEMORY`]..=[`MAX_MEMORY`];
//! `max_attempts` within 1..=[`MAX_ATTEMPTS`]; `concurrency` within 1..=[`MAX_CONCURRENCY`];
//! `ordering_key`, when set, a JSON pointer (`/field/sub`); capabilities parsed by the API module.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use toml::{Table, Value};

use crate::{
    api::{AllowList, Capabilities},
    config::{parse_duration, parse_size},
    ids::{ApiName, PluginName},
};

/// Default wall-clock budget per attempt: fits the API client's 1+2+4+8 s retry schedule.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest allowed timeout: a delivery holds a worker and a lease for this long.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default memory cap (all linear memories together).
pub const DEFAULT_MEMORY: u64 = 64 * 1024 * 1024;
/// Smallest memory cap: below this even a minimal Rust component cannot start (its stack alone
/// takes 1 MiB by default).
pub const MIN_MEMORY: u64 = 1024 * 1024;
/// Largest memory cap: one 32-bit linear memory's address space.
pub const MAX_MEMORY: u64 = 4 * 1024 * 1024 * 1024;
/// Default attempts before a delivery is dead.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Most attempts allowed.
pub const MAX_ATTEMPTS: u32 = 100;
/// Default API calls per attempt.
pub const DEFAULT_MAX_API_CALLS: u32 = 50;
/// Most API calls per attempt allowed.
pub const MAX_API_CALLS: u32 = 10_000;
/// Default deliveries of one plugin running at once.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// Most deliveries of one plugin running at once (the global `plugins.workers` also bounds it).
pub const MAX_CONCURRENCY: u32 = 1024;

/// Top-level fields a manifest may have.
const FIELDS: &[&str] = &[
    "name",
    "events",
    "timeout",
    "memory",
    "max_attempts",
    "max_api_calls",
    "concurrency",
    "ordering_key",
    "capabilities",
    "config",
];

/// A validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    pub name: PluginName,
    /// Which events it receives.
    pub events: Vec<EventPattern>,
    /// Wall-clock budget per attempt, host calls included. Default 30 s.
    pub timeout: Duration,
    /// Cap on all linear memories together, in bytes. Default 64 MiB.
    pub memory: u64,
    /// Attempts before a delivery is dead. Default 5.
    pub max_attempts: u32,
    /// API calls allowed per attempt. Default 50.
    pub max_api_calls: u32,
    /// Deliveries of this plugin running at once (within the global `plugins.workers`).
    /// Default 4.
    pub concurrency: u32,
    /// JSON pointer into the payload (e.g. `/contactId`): deliveries with the same value run
    /// one at a time, in arrival order. None: no ordering.
    pub ordering_key: Option<String>,
    pub capabilities: Capabilities,
    /// The `[config]` table, as JSON.
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// `source:kind` with `*` for either part, or `*` alone for everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPattern {
    /// None = any source.
    pub source: Option<String>,
    /// None = any kind.
    pub kind: Option<String>,
}

impl EventPattern {
    /// Whether an event of `kind` from `source` matches.
    pub fn matches(&self, source: &str, kind: &str) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self.kind.as_deref().is_none_or(|k| k == kind)
    }

    /// Parses `*`, `source:*`, `*:kind` or `source:kind`.
    pub fn parse(text: &str) -> Result<EventPattern, String> {
        let hint =
            "write \"source:Kind\" (e.g. \"highlevel:ContactCreate\"), \"source:*\" or \"*\"";
        if text == "*" {
            return Ok(EventPattern {
                source: None,
                kind: None,
            });
        }
        let Some((source, kind)) = text.split_once(':') else {
            return Err(format!("`{text}` has no `:`; {hint}"));
        };
        let part = |p: &str, what: &str| -> Result<Option<String>, String> {
            if p == "*" {
                Ok(None)
            } else if p.is_empty() || p.contains([':', '*']) || p.chars().any(char::is_whitespace) {
                Err(format!("`{text}` has an invalid {what}; {hint}"))
            } else {
                Ok(Some(p.to_string()))
            }
        };
        Ok(EventPattern {
            source: part(source, "source")?,
            kind: part(kind, "kind")?,
        })
    }
}

/// A manifest problem: the file, the field and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {message}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    /// The field, as a dotted path (`capabilities.api.highlevel.allow`); `file` for problems
    /// reading the file, `toml` for syntax errors.
    pub field: String,
    pub message: String,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            field: "file".into(),
            message: format!("cannot read it: {e}"),
        })?;
        Manifest::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (the file stem must equal `name`).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let err = |field: &str, message: String| ManifestError {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let mut table: Table = text.parse().map_err(|e: toml::de::Error| {
            err("toml", format!("not valid TOML: {}", e.message().trim()))
        })?;
        if let Some(unknown) = table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(err(
                unknown,
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        }

        let name = parse_name(path, table.remove("name")).map_err(|m| err("name", m))?;
        let events = parse_events(table.remove("events")).map_err(|m| err("events", m))?;
        let timeout = parse_timeout(table.remove("timeout")).map_err(|m| err("timeout", m))?;
        let memory = parse_memory(table.remove("memory")).map_err(|m| err("memory", m))?;
        let max_attempts = parse_count(
            table.remove("max_attempts"),
            DEFAULT_MAX_ATTEMPTS,
            1,
            MAX_ATTEMPTS,
        )
        .map_err(|m| err("max_attempts", m))?;
        let max_api_calls = parse_count(
            table.remove("max_api_calls"),
            DEFAULT_MAX_API_CALLS,
            0,
            MAX_API_CALLS,
        )
        .map_err(|m| err("max_api_calls", m))?;
        let concurrency = parse_count(
            table.remove("concurrency"),
            DEFAULT_CONCURRENCY,
            1,
            MAX_CONCURRENCY,
        )
        .map_err(|m| err("concurrency", m))?;
        let ordering_key =
            parse_ordering_key(table.remove("ordering_key")).map_err(|m| err("ordering_key", m))?;
        let capabilities = parse_capabilities(table.remove("capabilities"))
            .map_err(|(field, m)| err(&field, m))?;
        let config = match table.remove("config") {
            None => serde_json::Map::new(),
            Some(Value::Table(t)) => to_json_map(t),
            Some(_) => {
                return Err(err(
                    "config",
                    "must be a table; write it as a `[config]` section".into(),
                ));
            }
        };

        Ok(Manifest {
            path: path.to_path_buf(),
            name,
            events,
            timeout,
            memory,
            max_attempts,
            max_api_calls,
            concurrency,
            ordering_key,
            capabilities,
            config,
        })
    }

    /// Whether the plugin receives `kind` events from `source`.
    pub fn subscribes_to(&self, source: &str, kind: &str) -> bool {
        self.events.iter().any(|e| e.matches(source, kind))
    }
}

fn parse_name(path: &Path, value: Option<Value>) -> Result<PluginName, String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let name = match value {
        None => return Err(format!("missing; add `name = \"{stem}\"`")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("must be a string, e.g. `name = \"{stem}\"`")),
    };
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!(
            "`{name}` is not a plugin name; use 1-64 characters of a-z, 0-9, `-` and `_`"
        ));
    }
    if name != stem {
        return Err(format!(
            "`{name}` differs from the file name `{stem}`; the manifest and its component must \
             be `{name}.toml` and `{name}.wasm` (rename the files or the plugin)"
        ));
    }
    Ok(PluginName::new(name))
}

/// A JSON pointer (RFC 6901) into the payload: `/contactId`, `/contact/id`.
fn parse_ordering_key(value: Option<Value>) -> Result<Option<String>, String> {
    let example = "e.g. `ordering_key = \"/contactId\"`";
    match value {
        None => Ok(None),
        Some(Value::String(s)) if s.starts_with('/') && s.len() > 1 => Ok(Some(s)),
        Some(Value::String(s)) => Err(format!(
            "`{s}` is not a JSON pointer into the payload; start it with `/`, {example}"
        )),
        Some(_) => Err(format!("must be a string, {example}")),
    }
}

fn parse_events(value: Option<Value>) -> Result<Vec<EventPattern>, String> {
    let example = "e.g. `events = [\"highlevel:ContactCreate\"]`";
    let items = match value {
        None => return Err(format!("missing; list what the plugin handles, {example}")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("must be a list of strings, {example}")),
    };
    if items.is_empty() {
        return Err(format!(
            "is empty, so the plugin would never run; {example}"
        ));
    }
    let mut patterns = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::String(text) = item else {
            return Err(format!("entry {} is not a string; {example}", i + 1));
        };
        let pattern = EventPattern::parse(&text).map_err(|e| format!("entry {}: {e}", i + 1))?;
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Ok(patterns)
}

fn parse_timeout(value: Option<Value>) -> Result<Duration, String> {
    let timeout = match value {
        None => return Ok(DEFAULT_TIMEOUT),
        Some(Value::String(s)) => parse_duration(&s)?,
        Some(_) => return Err("must be a string such as \"30s\" or \"2m\"".into()),
    };
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(format!(
            "must be more than 0 and at most {}",
            humantime::format_duration(MAX_TIMEOUT)
        ));
    }
    Ok(timeout)
}

fn parse_memory(value: Option<Value>) -> Result<u64, String> {
    let bytes = match value {
        None => return Ok(DEFAULT_MEMORY),
        Some(Value::String(s)) => parse_size(&s)?,
        Some(Value::Integer(n)) => {
            u64::try_from(n).map_err(|_| "must not be negative".to_string())?
        }
        Some(_) => return Err("must be a size such as \"64MiB\"".into()),
    };
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
        return Err(format!(
            "{bytes} bytes is out of range; write between \"1MiB\" and \"4GiB\""
        ));
    }
    Ok(bytes)
}

fn parse_count(value: Option<Value>, default: u32, min: u32, max: u32) -> Result<u32, String> {
    match value {
        None => Ok(default),
        Some(Value::Integer(n)) if (i64::from(min)..=i64::from(max)).contains(&n) => Ok(n as u32),
        Some(_) => Err(format!("must be a whole number from {min} to {max}")),
    }
}

/// `[capabilities.api.<name>] allow = [...]`. Errors carry their own field path.
fn parse_capabilities(value: Option<Value>) -> Result<Capabilities, (String, String)> {
    let example = "write `[capabilities.api.<api-name>]` with `allow = [\"GET /contacts/*\"]`";
    let mut table = match value {
        None => return Ok(Capabilities::default()),
        Some(Value::Table(t)) => t,
        Some(_) => return Err(("capabilities".into(), format!("must be a table; {example}"))),
    };
    if let Some(unknown) = table.keys().find(|k| k.as_str() != "api") {
        return Err((
            format!("capabilities.{unknown}"),
            format!("unknown capability; only `api` exists: {example}"),
        ));
    }
    let apis = match table.remove("api") {
        None => Table::new(),
        Some(Value::Table(t)) => t,
        Some(_) => {
            return Err((
                "capabilities.api".into(),
                format!("must be a table; {example}"),
            ));
        }
    };
    let mut grants = BTreeMap::new();
    for (api, grant) in apis {
        let field = format!("capabilities.api.{api}");
        let Value::Table(mut grant) = grant else {
            return Err((field, format!("must be a table; {example}")));
        };
        if let Some(unknown) = grant.keys().find(|k| k.as_str() != "allow") {
            return Err((
                format!("{field}.{unknown}"),
                "unknown field; the only field is `allow`".into(),
            ));
        }
        let field = format!("{field}.allow");
        let rules = match grant.remove("allow") {
            None => return Err((field, format!("missing; {example}"))),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err((
                        field.clone(),
                        "every rule must be a string such as \"GET /contacts/*\"".to_string(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err((
                    field,
                    "must be a list of rules such as [\"GET /contacts/*\"]".into(),
                ));
            }
        };
        let list = AllowList::parse(&rules).map_err(|m| (field.clone(), m))?;
        grants.insert(ApiName::new(api), list);
    }
    Ok(Capabilities { apis: grants })
}

/// A TOML table as JSON. Datetimes become their RFC 3339 text.
fn to_json_map(table: Table) -> serde_json::Map<String, serde_json::Value> {
    table.into_iter().map(|(k, v)| (k, to_json(v))).collect()
}

fn to_json(value: Value) -> serde_json::Value {
    match value {
        Value::String(s) => serde_json::Value::String(s),
        Value::Integer(n) => serde_json::Value::from(n),
        // NaN and infinities have no JSON form; they become null.
        Value::Float(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Boolean(b) => serde_json::Value::Bool(b),
        Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        Value::Array(items) => serde_json::Value::Array(items.into_iter().map(to_json).collect()),
        Value::Table(t) => serde_json::Value::Object(to_json_map(t)),
    }
}

#[cfg(test)]
mod tests;
