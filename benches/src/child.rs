//! A `wasmhook serve` child process for the benchmarks that time the real binary: started with
//! a clean environment, its stderr read for the listening addresses, its memory read from
//! `/proc/<pid>/status`, stopped with SIGTERM.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The `wasmhook` binary built next to the running benchmark (same profile).
pub fn wasmhook_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("wasmhook");
    anyhow::ensure!(
        bin.is_file(),
        "{} does not exist: build the server in the benchmark's profile first \
         (`cargo build --release -p wasmhook -p wasmhook-benches`, or `scripts/bench`)",
        bin.display()
    );
    Ok(bin)
}

/// A running server.
pub struct Server {
    child: tokio::process::Child,
    /// When the process was spawned.
    pub started: Instant,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

impl Server {
    /// Spawns `wasmhook serve --config <config>` and waits for its listening line.
    pub async fn start(config: &Path) -> anyhow::Result<Server> {
        let mut cmd = tokio::process::Command::new(wasmhook_binary()?);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().context("spawning wasmhook")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addrs) = wasmhook_tests::child::parse_listening(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(Ok(addrs));
                }
                if tx.is_some() {
                    seen.push(line);
                }
            }
            if let Some(tx) = tx.take() {
                let _ = tx.send(Err(seen.join("\n")));
            }
        });
        let (public, admin) = match tokio::time::timeout(Duration::from_secs(120), rx).await {
            Ok(Ok(Ok(addrs))) => addrs,
            Ok(Ok(Err(log))) => anyhow::bail!("wasmhook exited before listening; its log:\n{log}"),
            _ => anyhow::bail!("wasmhook did not log its listening addresses within 120 s"),
        };
        Ok(Server {
            child,
            started,
            public,
            admin,
        })
    }

    /// Polls `url` every millisecond until it answers 200; the time since the spawn.
    pub async fn wait_ok(&self, url: &str) -> anyhow::Result<Duration> {
        let client = reqwest::Client::new();
        let limit = Duration::from_secs(300);
        loop {
            if let Ok(r) = client.get(url).send().await
                && r.status() == 200
            {
                return Ok(self.started.elapsed());
            }
            anyhow::ensure!(
                self.started.elapsed() < limit,
                "{url} did not answer 200 within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A `VmRSS`-style field of `/proc/<pid>/status`, in bytes (`VmRSS`: now, `VmHWM`: peak).
    pub fn memory(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the server has exited")?;
        proc_status(pid, field)
    }

    /// SIGTERM, then waits for the exit (so the next run can open the same store).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid with a valid signal number.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// A `kB` field of `/proc/<pid>/status` in bytes.
pub fn proc_status(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed status line")?
        .parse()?;
    Ok(kb * 1024)
}
