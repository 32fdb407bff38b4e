//! The operators' commands (`wasmhook deliveries|replay|purge|erase|tokens|keys|status`): a small HTTP client of a
//! running server's admin API (see `server::admin`).
//!
//! Where the server is and how to authenticate, first match wins:
//! - address: `--admin-url`, `WASMHOOK_ADMIN_URL`, else `[admin] listen` of the config file
//!   (an unspecified address such as `0.0.0.0` is reached on loopback);
//! - token: `WASMHOOK_ADMIN_TOKEN`, `--token-file`, else `[admin] token` of the config file.
//!
//! Invariants: the token is only ever sent in the `Authorization` header and never printed; every
//! failure names what to fix (e.g. "admin token missing: set WASMHOOK_ADMIN_TOKEN ...").

mod commands;
mod credentials;
mod parse;
mod status;

use std::{path::PathBuf, time::Duration};

use reqwest::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};

pub use commands::{
    DeliveriesArgs, EraseArgs, PurgeArgs, ReplayArgs, run_deliveries, run_erase, run_purge,
    run_replay,
};
pub use credentials::{KeysArgs, TokensArgs, run_keys, run_tokens};
pub use parse::{parse_rate, parse_since};
pub use status::{StatusArgs, run_status};

use crate::{config::Config, secret::Secret};

/// How long one admin request may take (a bulk replay or an erase of a large tenant included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the admin API is and how to reach it, as given on the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The server's config file, read for `[admin] listen` and `[admin] token`.
    #[arg(
        long,
        short,
        global = true,
        default_value = "wasmhook.toml",
        env = "WASMHOOK_CONFIG"
    )]
    pub config: PathBuf,
    /// The admin listener's base URL, e.g. `http://127.0.0.1:9090` (overrides the config).
    #[arg(long, global = true, env = "WASMHOOK_ADMIN_URL")]
    pub admin_url: Option<String>,
    /// A file holding the admin token (when `WASMHOOK_ADMIN_TOKEN` is not set).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why an admin command failed. Messages name the fix; none carries the token.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error(
        "admin token missing: set WASMHOOK_ADMIN_TOKEN, pass --token-file, or set [admin] token in {0}"
    )]
    TokenMissing(String),
    #[error("admin token: {0}")]
    Token(#[from] crate::secret::SecretError),
    #[error(
        "admin address unknown: pass --admin-url or set WASMHOOK_ADMIN_URL (cannot use {path}: {reason})"
    )]
    AddressUnknown { path: String, reason: String },
    #[error("`{0}` is not an admin URL; write e.g. http://127.0.0.1:9090")]
    BadUrl(String),
    #[error("cannot reach the admin API at {url}: {source} (is `wasmhook serve` running?)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server refused: {status} {code}: {message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the admin API: {0}")]
    BadAnswer(String),
    #[error("{0}")]
    Usage(String),
}

impl AdminClientError {
    /// The process exit code: 2 for what the operator must fix locally, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminClientError::TokenMissing(_)
            | AdminClientError::Token(_)
            | AdminClientError::AddressUnknown { .. }
            | AdminClientError::BadUrl(_)
            | AdminClientError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// A connected client of one server's admin API.
pub struct AdminClient {
    base: reqwest::Url,
    token: Secret,
    http: reqwest::Client,
}

impl AdminClient {
    /// Resolves the address and token of `target` (see the module docs).
    pub fn from_target(target: &Target) -> Result<AdminClient, AdminClientError> {
        // Read only when a value must come from it: with --admin-url and a token given, the
        // config file need not exist where the command runs.
        let cell = std::cell::OnceCell::new();
        let config =
            || cell.get_or_init(|| Config::load(&target.config).map_err(|e| e.to_string()));
        let config_name = || target.config.display().to_string();
        let base = match &target.admin_url {
            Some(url) => url.clone(),
            None => match config() {
                Ok(config) => {
                    let mut addr = config.admin.listen;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    format!("http://{addr}")
                }
                Err(reason) => {
                    return Err(AdminClientError::AddressUnknown {
                        path: config_name(),
                        reason: reason.clone(),
                    });
                }
            },
        };
        let base = reqwest::Url::parse(&base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| AdminClientError::BadUrl(base.clone()))?;
        let env_token = std::env::var("WASMHOOK_ADMIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let token = if let Some(token) = env_token {
            Secret::new(token)
        } else if let Some(file) = &target.token_file {
            crate::secret::SecretRef::File(file.clone()).load()?
        } else {
            match config() {
                Ok(Config {
                    admin:
                        crate::config::AdminConfig {
                            token: Some(reference),
                            ..
                        },
                    ..
                }) => reference.load()?,
                _ => return Err(AdminClientError::TokenMissing(config_name())),
            }
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AdminClientError::BadAnswer(e.to_string()))?;
        Ok(AdminClient { base, token, http })
    }

    /// Sends `method path` with an optional JSON body and decodes the JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, AdminClientError> {
        let url = self
            .base
            .join(path_and_query)
            .map_err(|_| AdminClientError::BadUrl(format!("{}{path_and_query}", self.base)))?;
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| AdminClientError::Unreachable {
                url: self.base.to_string(),
                source,
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| AdminClientError::BadAnswer(e.to_string()))?;
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            return Err(AdminClientError::Refused {
                status,
                code: error["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
                message: error["error"]["message"]
                    .as_str()
                    .unwrap_or(text.trim())
                    .to_owned(),
            });
        }
        serde_json::from_str(&text).map_err(|e| AdminClientError::BadAnswer(e.to_string()))
    }
}

/// Percent-encodes `value` for a URL query or path segment.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dir: &std::path::Path, config: &str) -> Target {
        let path = dir.join("wasmhook.toml");
        std::fs::write(&path, config).unwrap();
        Target {
            config: path,
            admin_url: None,
            token_file: None,
            json: false,
        }
    }

    #[test]
    fn address_and_token_come_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "s3cret\n").unwrap();
        let t = target(
            dir.path(),
            "[admin]\nlisten = \"0.0.0.0:9191\"\ntoken = { file = \"admin.token\" }\n",
        );
        // The test process may have the variable set by a developer: only run when it is not.
        if std::env::var("WASMHOOK_ADMIN_TOKEN").is_ok() {
            return;
        }
        let client = AdminClient::from_target(&t).unwrap();
        assert_eq!(client.base.as_str(), "http://127.0.0.1:9191/");
        assert_eq!(client.token.expose(), "s3cret");
    }

    #[test]
    fn a_missing_token_says_how_to_set_one() {
        if std::env::var("WASMHOOK_ADMIN_TOKEN").is_ok() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path(), "[admin]\nlisten = \"127.0.0.1:9191\"\n");
        let err = AdminClient::from_target(&t).err().expect("no token");
        let text = err.to_string();
        assert!(
            text.starts_with("admin token missing: set WASMHOOK_ADMIN_TOKEN"),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_missing_config_without_url_names_the_fix() {
        let t = Target {
            config: "/nonexistent/wasmhook.toml".into(),
            admin_url: None,
            token_file: None,
            json: false,
        };
        let err = AdminClient::from_target(&t).err().expect("no address");
        assert!(err.to_string().contains("--admin-url"), "{err}");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
        assert_eq!(encode("plain-1_2.3~"), "plain-1_2.3~");
    }
}
