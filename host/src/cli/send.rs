//! `wasmhook send`: signs a body the way a configured source's sender does and posts it to the
//! server, printing the answer. How users check their setup end to end.
//!
//! Invariants: the body is sent byte for byte as read from the file (signatures cover the raw
//! bytes); secrets and keys are read from the config's references or the `--key` file and are
//! never printed.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;

use crate::{
    config::Config,
    ids::now_ms,
    secret::SecretRef,
    sources::sign::{Signing, content_type, sign},
};

/// Arguments of `wasmhook send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The config file (it names the source, its scheme and its secrets).
    #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
    pub config: PathBuf,
    /// The `[[sources]]` name to sign for.
    #[arg(long)]
    pub source: String,
    /// The body to send (sent byte for byte as signed).
    #[arg(long)]
    pub file: PathBuf,
    /// Where to post; default: the configured listener's `/webhooks/<source>`.
    #[arg(long)]
    pub url: Option<String>,
    /// A file with the key to sign with instead of the source's configured secret: a shared
    /// secret, a `whsec_`/`whsk_` key, or (HighLevel) an Ed25519 or RSA private key in PEM.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The event kind, for schemes that send it in a header (GitHub `X-GitHub-Event`, Shopify
    /// `X-Shopify-Topic`).
    #[arg(long)]
    pub kind: Option<String>,
    /// A PEM certificate to trust for an HTTPS URL (e.g. a self-signed test certificate).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// Runs `wasmhook send`: 0 on a 2xx answer, 1 on another answer, 2 on a usage problem.
pub fn run(args: SendArgs) -> ExitCode {
    match send(&args) {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wasmhook send: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn send(args: &SendArgs) -> anyhow::Result<reqwest::StatusCode> {
    use anyhow::Context;
    let config = Config::load(&args.config)?;
    let source = config.source(&args.source).with_context(|| {
        let names: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
        format!(
            "no source `{}` in {}; configured: {}",
            args.source,
            args.config.display(),
            names.join(", ")
        )
    })?;
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let key = match &args.key {
        Some(path) => Some(
            SecretRef::File(path.clone())
                .load()
                .context("reading --key")?,
        ),
        None => None,
    };
    let headers = sign(
        source,
        &Signing {
            key: key.as_ref(),
            now_secs: now_ms() / 1000,
            kind: args.kind.as_deref(),
        },
        &body,
    )?;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => default_url(&config, &args.source),
    };
    let mut client = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &args.ca {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        client = client.add_root_certificate(
            reqwest::Certificate::from_pem(&pem).context("--ca is not a PEM certificate")?,
        );
    }
    let client = client.build().context("building the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut request = client
            .post(&url)
            .header("content-type", content_type(source, &body))
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        println!("HTTP {}", status.as_u16());
        println!("{text}");
        Ok(status)
    })
}

/// `http(s)://<listener>/webhooks/<source>`, with a wildcard listen address made loopback.
fn default_url(config: &Config, source: &str) -> String {
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}/webhooks/{source}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_default_url_follows_the_listener_and_tls() {
        let config =
            Config::parse(Path::new("w.toml"), "[server]\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        assert_eq!(
            default_url(&config, "gh"),
            "http://127.0.0.1:9000/webhooks/gh"
        );
    }

    #[test]
    fn an_unknown_source_names_the_configured_ones() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wasmhook.toml");
        std::fs::write(dir.path().join("s"), "x").unwrap();
        std::fs::write(
            &config,
            "[[sources]]\nname = \"gh\"\nscheme = \"github\"\nsecrets = [{ file = \"s\" }]\n",
        )
        .unwrap();
        let err = send(&SendArgs {
            config,
            source: "nope".into(),
            file: dir.path().join("body.json"),
            url: None,
            key: None,
            kind: None,
            ca: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no source `nope`") && err.contains("gh"),
            "{err}"
        );
    }
}
