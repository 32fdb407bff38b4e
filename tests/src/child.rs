//! Runs the real `wasmhook` binary as a child process: for crash tests (SIGKILL), signal
//! handling, and anything that must see the process exactly as users run it (environment,
//! exit codes, stderr).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use tokio::io::{AsyncBufReadExt, BufReader};

/// The `wasmhook` binary, built once per test process (cargo's lock makes parallel test
/// processes safe; a build with nothing to do takes a fraction of a second).
pub fn wasmhook_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = crate::repo_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = std::process::Command::new(cargo)
            .args([
                "build",
                "-p",
                "wasmhook",
                "--bin",
                "wasmhook",
                "--message-format=short",
            ])
            .current_dir(&root)
            .output()
            .expect("running cargo");
        assert!(
            output.status.success(),
            "building wasmhook failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("wasmhook")
    })
}

/// A running `wasmhook serve` child. Killed when dropped.
pub struct ChildServer {
    child: tokio::process::Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// Every stderr line so far (the log).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ChildServer {
    /// Starts `wasmhook serve --config <config>` with `env` added to a clean environment, and
    /// waits until it logs its listening addresses.
    pub async fn start(config: &Path, env: &[(&str, &str)]) -> ChildServer {
        let mut cmd = tokio::process::Command::new(wasmhook_binary());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env_clear()
            .env("RUST_LOG", "info")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning wasmhook");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addrs_tx, addrs_rx) = tokio::sync::oneshot::channel();
        let log2 = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut addrs_tx = Some(addrs_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addrs) = parse_listening(&line)
                    && let Some(tx) = addrs_tx.take()
                {
                    let _ = tx.send(addrs);
                }
                log2.lock().unwrap().push(line);
            }
        });
        let (public, admin) = match tokio::time::timeout(Duration::from_secs(60), addrs_rx).await {
            Ok(Ok(addrs)) => addrs,
            _ => panic!(
                "wasmhook did not start; its log:\n{}",
                log.lock().unwrap().join("\n")
            ),
        };
        ChildServer {
            child,
            public,
            admin,
            log,
        }
    }

    /// The admin API of this server.
    pub fn admin(&self) -> crate::Admin {
        crate::Admin::new(self.admin)
    }

    /// Posts `body` to `/webhooks/{source}` with `headers`.
    pub async fn post(
        &self,
        source: &str,
        body: &[u8],
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        crate::post_webhook(&reqwest::Client::new(), self.public, source, body, headers).await
    }

    /// `http://<public>/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// The process id (for signals such as SIGHUP).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process with SIGKILL: no cleanup, like a crash or an OOM kill.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with our own child's pid and a valid signal number.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("wasmhook did not exit after SIGTERM")
            .unwrap()
    }

    /// The log so far, one string.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// Parses the `wasmhook listening` log line (`public_addr=... admin_addr=...`, or its JSON
/// form `"public_addr":"...","admin_addr":"..."`) into (public, admin). The benchmarks that
/// start the binary themselves use it too.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if !line.contains("wasmhook listening") {
        return None;
    }
    let field = |name: &str| -> Option<SocketAddr> {
        let start = line.find(name)? + name.len();
        let rest = &line[start..];
        let value = rest
            .trim_start_matches('"')
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .next()?;
        value.parse().ok()
    };
    let either = |name: &str| field(&format!("{name}=")).or_else(|| field(&format!("{name}\":")));
    Some((either("public_addr")?, either("admin_addr")?))
}
