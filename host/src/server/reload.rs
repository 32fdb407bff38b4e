//! Reloading on SIGHUP: the config file is read again, and its sources (with their secrets and
//! keys) and the TLS certificate are put in force without dropping a connection or a request.
//!
//! Invariants: a reload is all or nothing per part: if the new config does not validate, or a
//! secret or the certificate cannot be read, the old ones stay in force and the problem is
//! logged as an alert. Settings other than sources and TLS take effect at the next restart,
//! which the log says.

use std::{path::Path, sync::Arc};

use super::tls::LiveCert;
use crate::{
    alerts::{self, AlertKind},
    config::{Config, TlsConfig},
    sources::{LiveSources, Sources},
};

/// What a reload swaps.
#[derive(Clone)]
pub struct Reloadable {
    pub sources: Arc<LiveSources>,
    /// The certificate in force, when serving HTTPS.
    pub cert: Option<Arc<LiveCert>>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub struct Reloaded {
    pub sources: bool,
    pub cert: bool,
}

impl Reloadable {
    /// Reads `path` again and swaps what can be swapped.
    pub fn reload(&self, path: &Path) -> Reloaded {
        let config = match Config::load(path) {
            Ok(config) => config,
            Err(e) => {
                alerts::raise(
                    AlertKind::Reload,
                    "reload refused: the config does not validate; the running settings stay",
                    &e.to_string(),
                );
                count("refused");
                return Reloaded {
                    sources: false,
                    cert: false,
                };
            }
        };
        let sources = match Sources::from_config(&config.sources) {
            Ok(sources) => {
                let count = sources.len();
                self.sources.replace(sources);
                tracing::info!(sources = count, "reloaded sources and their secrets");
                true
            }
            Err(e) => {
                alerts::raise(
                    AlertKind::Reload,
                    "reload of the sources failed; the previous secrets stay in force",
                    &e.to_string(),
                );
                false
            }
        };
        let cert = self.reload_cert(config.server.tls.as_ref());
        count(if sources { "ok" } else { "failed" });
        tracing::info!(
            "reload done; settings other than sources and TLS apply at the next restart"
        );
        Reloaded { sources, cert }
    }

    fn reload_cert(&self, tls: Option<&TlsConfig>) -> bool {
        match (&self.cert, tls) {
            (Some(live), Some(tls)) => match live.reload(tls) {
                Ok(()) => {
                    tracing::info!(cert = %tls.cert.display(), "reloaded the TLS certificate");
                    true
                }
                Err(e) => {
                    alerts::raise(
                        AlertKind::Reload,
                        "reload of the TLS certificate failed; the previous one stays in force",
                        &e.to_string(),
                    );
                    false
                }
            },
            (None, Some(_)) => {
                tracing::warn!("[server.tls] was added; restart to serve HTTPS");
                false
            }
            (Some(_), None) => {
                tracing::warn!("[server.tls] was removed; HTTPS stays on until a restart");
                false
            }
            (None, None) => false,
        }
    }
}

/// Counts one reload in `wasmhook_reloads_total{result}`: `ok`, `failed` (a part kept its old
/// settings) or `refused` (the config did not validate).
fn count(result: &'static str) {
    metrics::counter!("wasmhook_reloads_total", "result" => result).increment(1);
}

/// Reloads on every SIGHUP until the process ends. Without Unix signals, does nothing.
pub async fn on_sighup(reloadable: Reloadable, path: std::path::PathBuf) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; secrets and certificates reload only on restart");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading sources and TLS");
            // Reading files and secrets blocks briefly; keep it off the async workers.
            let (reloadable, path) = (reloadable.clone(), path.clone());
            if let Err(e) = tokio::task::spawn_blocking(move || reloadable.reload(&path)).await {
                tracing::error!(error = %e, "the reload task failed");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (reloadable, path);
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write_config(dir: &Path, secret_file: &str) -> PathBuf {
        let path = dir.join("wasmhook.toml");
        std::fs::write(
            &path,
            format!(
                "[[sources]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [{{ file = \"{secret_file}\" }}]\n"
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn a_reload_swaps_the_secrets_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.secret"), "first").unwrap();
        let path = write_config(dir.path(), "a.secret");
        let config = Config::load(&path).unwrap();
        let reloadable = Reloadable {
            sources: Arc::new(LiveSources::new(
                Sources::from_config(&config.sources).unwrap(),
            )),
            cert: None,
        };
        let before = reloadable.sources.current();

        std::fs::write(dir.path().join("a.secret"), "second").unwrap();
        assert_eq!(
            reloadable.reload(&path),
            Reloaded {
                sources: true,
                cert: false
            }
        );
        assert!(!Arc::ptr_eq(&before, &reloadable.sources.current()));

        // A secret that vanished: the running sources stay.
        let current = reloadable.sources.current();
        std::fs::remove_file(dir.path().join("a.secret")).unwrap();
        assert!(!reloadable.reload(&path).sources);
        assert!(Arc::ptr_eq(&current, &reloadable.sources.current()));

        // A config that no longer validates: nothing changes.
        std::fs::write(&path, "[server]\nlisten = \"nowhere\"\n").unwrap();
        assert!(!reloadable.reload(&path).sources);
        assert!(Arc::ptr_eq(&current, &reloadable.sources.current()));
    }
}
