//! `wasmhook test PLUGIN --event FILE [--responses FILE]`: runs a plugin's handler once on an
//! event, against the recording mock API, and prints the API calls it made, its log lines and
//! how it ended. The quickest loop while writing a handler: no server, no network, no store
//! left behind.
//!
//! Invariants: the event goes through the same signing, verification and envelope code as a
//! real webhook (so kind, tenant and id are what the server would see, and a body the server
//! would refuse is refused here with the server's reason); the plugin runs in the production
//! runtime with its manifest's limits and capabilities; its kv lives in a temporary store
//! deleted afterwards; no token is read or sent.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context;
use clap::Args;

use super::{mock_api::MockApi, responses::Responses};
use crate::{
    api::ApiClient,
    config::{Config, SourceConfig, StoreUrl},
    ids::{DeliveryId, now_ms},
    plugins::Manifest,
    runtime::{DeliveryInfo, Invocation, Outcome, Runtime, Services},
    secret::SecretRef,
    sources::{
        Envelope, Source,
        sign::{Signing, sign},
    },
    store::{AnyStore, StoredEvent},
};

/// Arguments of `wasmhook test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// The plugin: its name in the plugins folder, or the path of its `.wasm` (with the
    /// manifest next to it).
    pub plugin: String,
    /// The webhook body to run it on (e.g. `events/contact-create.json`).
    #[arg(long)]
    pub event: PathBuf,
    /// Canned API answers: a JSON file mapping "METHOD /path" to { "status", "body" }; calls
    /// nothing matches get 200 {}.
    #[arg(long)]
    pub responses: Option<PathBuf>,
    /// The config (sources, APIs, plugins folder).
    #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
    pub config: PathBuf,
    /// The `[[sources]]` the event comes from; default: the one the plugin subscribes to, or
    /// the only one.
    #[arg(long)]
    pub source: Option<String>,
    /// A key to sign the event with instead of the source's own (as for `wasmhook send`).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// Runs `wasmhook test`: 0 when the handler succeeded, 1 when it did not, 2 when the plugin,
/// event or config could not be used.
pub fn run(args: TestArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(test(&args)) {
        Ok(report) => {
            print!("{report}");
            if report.succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("wasmhook test: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What one run showed.
struct Report {
    event: StoredEvent,
    subscribed: bool,
    calls: Vec<super::mock_api::MockCall>,
    invocation: Invocation,
    succeeded: bool,
}

async fn test(args: &TestArgs) -> anyhow::Result<Report> {
    let config = Config::load(&args.config).with_context(|| {
        "`wasmhook test` reads the sources and APIs from the config; run it in the folder `wasmhook init` set up, or pass --config"
    })?;
    let (manifest_path, wasm_path) = plugin_paths(&args.plugin, &config.plugins.dir);
    let manifest = Manifest::load(&manifest_path)?;
    let wasm = tokio::fs::read(&wasm_path).await.with_context(|| {
        format!(
            "cannot read {} (build it with `wasmhook build`)",
            wasm_path.display()
        )
    })?;
    let source = pick_source(&config, &manifest, args.source.as_deref())?;
    let body = tokio::fs::read(&args.event)
        .await
        .with_context(|| format!("cannot read {}", args.event.display()))?;
    let envelope = envelope(source, &body, args.key.as_deref()).with_context(|| {
        format!(
            "{} as a webhook of source `{}`",
            args.event.display(),
            source.name
        )
    })?;
    let event = StoredEvent {
        source: source.name.clone(),
        id: envelope.id,
        kind: envelope.kind,
        tenant: envelope.tenant,
        received_at_ms: now_ms(),
        payload: body,
    };
    let subscribed = manifest.subscribes_to(event.source.as_str(), &event.kind);

    let responses = match &args.responses {
        Some(path) => Responses::load(path)?,
        None => Responses::default(),
    };
    let mock = MockApi::start(config.apis.keys().cloned(), responses).await?;
    let api = ApiClient::new(&mock.redirect(&config.apis)).context("building the API client")?;
    let scratch = tempfile::tempdir().context("creating a temporary store")?;
    let store = AnyStore::open(&StoreUrl::Sqlite(scratch.path().join("test.db")))
        .await
        .context("opening a temporary store")?;
    let runtime = Runtime::new(Services {
        store: store.clone(),
        api,
    })
    .context("starting the plugin runtime")?;
    let loader = runtime.clone();
    let plugin = tokio::task::spawn_blocking(move || loader.load(manifest, &wasm))
        .await
        .context("compiling stopped unexpectedly")?
        .with_context(|| format!("{}", wasm_path.display()))?;
    let delivery = DeliveryInfo {
        id: DeliveryId::new("test-delivery"),
        attempt: 1,
        idempotency_key: format!("test:{}", event.id),
    };
    let invocation = runtime.invoke(&Arc::new(plugin), &event, &delivery).await;
    store.close().await;
    Ok(Report {
        succeeded: invocation.outcome == Outcome::Succeeded,
        calls: mock.calls(),
        event,
        subscribed,
        invocation,
    })
}

/// The manifest and component of `plugin`: a `.wasm` path, or a name in `plugins_dir`.
fn plugin_paths(plugin: &str, plugins_dir: &Path) -> (PathBuf, PathBuf) {
    let as_path = Path::new(plugin);
    let wasm = if as_path.extension().is_some_and(|e| e == "wasm") {
        as_path.to_path_buf()
    } else {
        plugins_dir.join(format!("{plugin}.wasm"))
    };
    (wasm.with_extension("toml"), wasm)
}

/// `--source`, else the configured source the manifest names first, else the only source.
fn pick_source<'c>(
    config: &'c Config,
    manifest: &Manifest,
    given: Option<&str>,
) -> anyhow::Result<&'c SourceConfig> {
    let names = || {
        config
            .sources
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = given {
        return config.source(name).with_context(|| {
            format!(
                "no source `{name}` in {}; configured: {}",
                config.path.display(),
                names()
            )
        });
    }
    let subscribed = manifest
        .events
        .iter()
        .filter_map(|e| e.source.as_deref())
        .find_map(|name| config.source(name));
    match (subscribed, config.sources.as_slice()) {
        (Some(source), _) => Ok(source),
        (None, [only]) => Ok(only),
        (None, []) => anyhow::bail!("{} has no [[sources]]", config.path.display()),
        (None, _) => anyhow::bail!("pass --source: one of {}", names()),
    }
}

/// The envelope the server would read from `body`, signed as the source's sender would sign it.
fn envelope(source: &SourceConfig, body: &[u8], key: Option<&Path>) -> anyhow::Result<Envelope> {
    let key = key
        .map(|path| SecretRef::File(path.to_path_buf()).load())
        .transpose()
        .context("reading --key")?;
    let now = now_ms();
    let headers: http::HeaderMap = sign(
        source,
        &Signing {
            key: key.as_ref(),
            now_secs: now / 1000,
            kind: None,
        },
        body,
    )?
    .into_iter()
    .filter_map(|(name, value)| Some((name, http::HeaderValue::try_from(value).ok()?)))
    .collect();
    let verified = Arc::new(Source::from_config(source)?)
        .verify(&headers, bytes::Bytes::copy_from_slice(body))?;
    Ok(verified.envelope(now)?)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.event;
        writeln!(
            f,
            "event: {}:{} tenant {} id {}",
            e.source, e.kind, e.tenant, e.id
        )?;
        if !self.subscribed {
            writeln!(
                f,
                "note: the manifest's `events` do not include {}:{}; the server would not deliver it",
                e.source, e.kind
            )?;
        }
        writeln!(f, "api calls ({}):", self.calls.len())?;
        for call in &self.calls {
            writeln!(f, "  {call}")?;
        }
        writeln!(f, "logs ({}):", self.invocation.logs.len())?;
        for line in &self.invocation.logs {
            write!(f, "  {} {}", line.level, line.message.trim_end())?;
            for (k, v) in &line.fields {
                write!(f, " {k}={v}")?;
            }
            writeln!(f)?;
        }
        let took = self.invocation.duration.as_millis();
        match &self.invocation.outcome {
            Outcome::Succeeded => writeln!(f, "result: succeeded in {took} ms"),
            Outcome::Retry { reason, after } => match after {
                Some(after) => writeln!(f, "result: retry after {after:?}: {reason}"),
                None => writeln!(f, "result: retry: {reason}"),
            },
            Outcome::Fail(reason) => writeln!(f, "result: failed: {reason}"),
            Outcome::Trap(reason) => writeln!(f, "result: trapped: {reason}"),
            Outcome::Timeout => writeln!(f, "result: timed out (manifest `timeout`)"),
            Outcome::MemoryExceeded(reason) => {
                writeln!(f, "result: out of memory (manifest `memory`): {reason}")
            }
            Outcome::Deferred { after, note } => {
                writeln!(
                    f,
                    "result: would wait {after:?} without spending an attempt: {note}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, sources: &str) -> Config {
        Config::parse(&dir.join("wasmhook.toml"), sources).unwrap()
    }

    #[test]
    fn a_plugin_is_a_name_in_the_plugins_folder_or_a_wasm_path() {
        let (manifest, wasm) = plugin_paths("tagger", Path::new("plugins"));
        assert_eq!(
            (manifest, wasm),
            (
                PathBuf::from("plugins/tagger.toml"),
                PathBuf::from("plugins/tagger.wasm")
            )
        );
        let (manifest, _) = plugin_paths("out/t.wasm", Path::new("plugins"));
        assert_eq!(manifest, PathBuf::from("out/t.toml"));
    }

    #[test]
    fn the_source_is_the_subscribed_one_or_the_only_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "x").unwrap();
        let two = config(
            dir.path(),
            "[[sources]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [{ file = \"s\" }]\n\
             [[sources]]\nname = \"shop\"\nscheme = \"shopify\"\nsecrets = [{ file = \"s\" }]\n",
        );
        let manifest = |events: &str| {
            Manifest::parse(
                Path::new("p.toml"),
                &format!("name = \"p\"\nevents = [{events}]\n"),
            )
            .unwrap()
        };
        let picked = pick_source(&two, &manifest("\"shop:orders/create\""), None).unwrap();
        assert_eq!(picked.name.as_str(), "shop");
        let err = pick_source(&two, &manifest("\"*\""), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--source") && err.contains("gh, shop"),
            "{err}"
        );
        let err = pick_source(&two, &manifest("\"*\""), Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no source `nope`"), "{err}");
        let one = config(
            dir.path(),
            "[[sources]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [{ file = \"s\" }]\n",
        );
        assert_eq!(
            pick_source(&one, &manifest("\"*\""), None)
                .unwrap()
                .name
                .as_str(),
            "gh"
        );
    }

    #[test]
    fn the_envelope_is_the_servers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "secret").unwrap();
        let config = config(
            dir.path(),
            "[[sources]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [{ file = \"s\" }]\n\
             tenant = { pointer = \"/org\" }\n",
        );
        let envelope = envelope(&config.sources[0], br#"{"org":"acme"}"#, None).unwrap();
        assert_eq!(envelope.tenant.as_str(), "acme");
    }
}
