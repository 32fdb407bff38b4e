//! `TestServer`: the real `wasmhook::run` on ephemeral loopback ports, with its config written
//! to a temp dir exactly as a user would write it, plus helpers to post signed webhooks and to
//! watch deliveries through the admin API.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use wasmhook::store::DeliveryRecord;

use crate::{admin::Admin, fake_api::FakeApi, signing::HighLevelSigner};

/// The HighLevel app id test sources are configured with.
pub const APP_ID: &str = "test-app-0001";
/// The static API token tests configure (from a file, as a user would).
pub const API_TOKEN: &str = "pit-test-token-7f3a9c";
/// The admin API's bearer token in tests.
pub const ADMIN_TOKEN: &str = "admin-test-token-41d2";

/// Builds the config and plugin folder of a [`TestServer`].
pub struct TestServerBuilder {
    dir: tempfile::TempDir,
    /// Extra lines of the `[server]` table.
    server: String,
    sections: Vec<String>,
    plugins: Vec<(String, PathBuf, String)>,
    /// `storage.url`; None: SQLite in the test's folder.
    store_url: Option<String>,
}

impl TestServerBuilder {
    /// A `highlevel` source named `highlevel` trusting `signer`'s keys, app id [`APP_ID`].
    pub fn highlevel(self, signer: &HighLevelSigner) -> Self {
        self.highlevel_source("highlevel", signer, "")
    }

    /// A `highlevel` source with another name and extra TOML lines for the entry. Unless
    /// `extra` says otherwise, it does not require installations (most tests are not about them).
    pub fn highlevel_source(mut self, name: &str, signer: &HighLevelSigner, extra: &str) -> Self {
        let extra = if extra.contains("require_installation") {
            extra.to_string()
        } else {
            format!("require_installation = false\n{extra}")
        };
        let api = if self.sections.iter().any(|s| s.contains("[apis.highlevel]")) {
            "api = \"highlevel\"\n"
        } else {
            ""
        };
        self.sections.push(format!(
            "[[sources]]\nname = \"{name}\"\nscheme = \"highlevel\"\napp_id = \"{APP_ID}\"\n{api}\
             ed25519_keys = [{{ pem = \"\"\"\n{}\"\"\" }}]\nrsa_keys = [{{ pem = \"\"\"\n{}\"\"\" }}]\n{extra}\n",
            signer.ed25519_public_pem(),
            signer.rsa_public_pem(),
        ));
        self
    }

    /// An API named `name` pointing at `fake`, with [`API_TOKEN`] read from a file.
    pub fn api(self, name: &str, fake: &FakeApi) -> Self {
        self.api_with(name, fake, "")
    }

    /// [`TestServerBuilder::api`] with `extra` lines in the API's table (e.g. a `rate_limit`).
    pub fn api_with(mut self, name: &str, fake: &FakeApi, extra: &str) -> Self {
        let token_file = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&token_file, format!("{API_TOKEN}\n")).unwrap();
        self.sections.insert(
            0,
            format!(
                "[apis.{name}]\nbase_url = \"{}\"\ntoken = {{ file = \"{name}.token\" }}\n\
                 idempotency_header = \"{}\"\nrequest_timeout = \"5s\"\n{extra}\n\
                 [apis.{name}.versions]\n\"/\" = \"2021-07-28\"\n\"/conversations\" = \"2021-04-15\"\n",
                fake.url(),
                fake.idempotency_header()
            ),
        );
        self
    }

    /// Extra lines for the `[server]` table (e.g. `max_body = "1MiB"`).
    pub fn server(mut self, lines: &str) -> Self {
        self.server.push_str(lines);
        self.server.push('\n');
        self
    }

    /// Stores in the database at `url` (e.g. a PostgreSQL test schema's) instead of SQLite.
    pub fn store_url(mut self, url: &str) -> Self {
        self.store_url = Some(url.to_owned());
        self
    }

    /// Extra top-level TOML (e.g. a `[plugins]` table).
    pub fn toml(mut self, text: &str) -> Self {
        self.sections.push(text.to_string());
        self
    }

    /// Installs `wasm` as plugin `name` with `manifest` (TOML text).
    pub fn plugin(mut self, name: &str, wasm: &Path, manifest: &str) -> Self {
        self.plugins
            .push((name.to_string(), wasm.to_path_buf(), manifest.to_string()));
        self
    }

    /// The folder the config and plugins are written to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config and plugins; returns the config path and the temp dir.
    pub fn write(self) -> (PathBuf, tempfile::TempDir) {
        let dir = self.dir;
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir).unwrap();
        for (name, wasm, manifest) in &self.plugins {
            crate::plugins::install(&plugins_dir, wasm, name, manifest);
        }
        std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             token = {{ file = \"admin.token\" }}\n\n",
            self.server
        );
        // A test's own `[storage]` table gets the store URL added; otherwise it is the default.
        let store_url = format!(
            "url = {}\n",
            toml_string(
                self.store_url
                    .as_deref()
                    .unwrap_or("sqlite://data/wasmhook.db")
            )
        );
        let custom_storage = self.sections.iter().any(|s| s.contains("[storage]"));
        if !custom_storage {
            text.push_str(&format!("[storage]\n{store_url}\n"));
        }
        if !self.sections.iter().any(|s| s.contains("[plugins]")) {
            text.push_str("[plugins]\npoll_interval = \"50ms\"\nretry_base = \"100ms\"\nretry_max = \"2s\"\n\n");
        }
        for s in &self.sections {
            text.push_str(&s.replace("[storage]\n", &format!("[storage]\n{store_url}")));
            text.push('\n');
        }
        let path = dir.path().join("wasmhook.toml");
        std::fs::write(&path, text).unwrap();
        (path, dir)
    }

    /// Starts `wasmhook::run` in this process on ephemeral ports.
    pub async fn spawn(self) -> TestServer {
        let (config_path, dir) = self.write();
        let running = InProcess::start(&config_path).await;
        TestServer {
            public: running.public,
            admin: running.admin,
            dir,
            client: reqwest::Client::new(),
            running,
        }
    }
}

/// `wasmhook::run` in this process on the config file at a path, on fresh ephemeral ports. The
/// same config (and so the same data dir) can be started again after [`InProcess::stop`].
pub struct InProcess {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Loads `config` (panicking with the reason when it does not validate) and starts `run`.
    pub async fn start(config: &Path) -> InProcess {
        crate::init_test_logging();
        let config = wasmhook::config::Config::load(config)
            .unwrap_or_else(|e| panic!("test config does not validate: {e}"));
        let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (public_addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(wasmhook::run(
            config,
            wasmhook::Listeners { public, admin },
            async move {
                let _ = stopped.await;
            },
        ));
        InProcess {
            public: public_addr,
            admin: admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops gracefully and returns what `run` returned (Ok if it was already collected).
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task panicked"),
            None => Ok(()),
        }
    }

    /// Stops gracefully; panics if `run` failed.
    pub async fn stop(mut self) {
        self.shutdown()
            .await
            .expect("the server stopped with an error");
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A running server. Stops (gracefully) when [`TestServer::stop`] is called or it is dropped.
pub struct TestServer {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    running: InProcess,
}

impl TestServer {
    /// A builder with nothing configured.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            dir: tempfile::tempdir().unwrap(),
            server: String::new(),
            sections: Vec::new(),
            plugins: Vec::new(),
            store_url: None,
        }
    }

    /// `http://127.0.0.1:<port>` of the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// Posts `body` to `/webhooks/{source}` with `headers`.
    pub async fn post(
        &self,
        source: &str,
        body: &[u8],
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        crate::post_webhook(&self.client, self.public, source, body, headers).await
    }

    /// Posts `body` to the `highlevel` source signed with `signer`'s Ed25519 key.
    pub async fn post_highlevel(&self, signer: &HighLevelSigner, body: &[u8]) -> reqwest::Response {
        self.post(
            "highlevel",
            body,
            &[("x-ghl-signature", signer.sign_ed25519(body))],
        )
        .await
    }

    /// The admin API of this server.
    pub fn admin(&self) -> Admin {
        Admin::new(self.admin)
    }

    /// Deliveries matching the admin API query string (e.g. `event_id=...&plugin=...`).
    pub async fn deliveries(&self, query: &str) -> Vec<DeliveryRecord> {
        self.admin().deliveries(query).await
    }

    /// One delivery with its attempts.
    pub async fn delivery(&self, id: &str) -> DeliveryRecord {
        self.admin().delivery(id).await
    }

    /// Waits until the delivery of `event_id` to `plugin` is succeeded or dead.
    pub async fn wait_final(
        &self,
        event_id: &str,
        plugin: &str,
        timeout: Duration,
    ) -> DeliveryRecord {
        self.admin().wait_final(event_id, plugin, timeout).await
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.admin().metrics().await
    }

    /// Stops the server gracefully and returns what `run` returned. The temp dir stays until
    /// the `TestServer` is dropped, so tests can inspect the store afterwards.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.running.shutdown().await
    }

    /// The SQLite file of this server (open it after [`TestServer::stop`]).
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data/wasmhook.db")
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
