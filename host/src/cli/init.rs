//! `wasmhook init [DIR]`: a working development setup in one command: a config, the plugins
//! folder, a dev signing key the config trusts (and `wasmhook send` signs with), and a sample
//! event to send.
//!
//! Invariants: nothing existing is overwritten (any file it would write that exists stops it
//! before anything is written); private keys are created readable by the owner only; the dev
//! config trusts only the generated key, never HighLevel's published keys, so nothing but
//! `send` can reach its plugins.

use std::{
    fs,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, ValueEnum};
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};

/// The app id of the dev config and its sample event: HighLevel refuses other apps' events.
pub const DEV_APP_ID: &str = "dev-app";

/// The tenant (HighLevel location) of the sample event.
pub const DEV_LOCATION: &str = "dev-location";

/// Arguments of `wasmhook init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The folder to set up (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The public listener of the new config.
    #[arg(long, env = "WASMHOOK_INIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The admin listener of the new config.
    #[arg(
        long,
        env = "WASMHOOK_INIT_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub admin_listen: SocketAddr,
    /// How webhooks are signed: HighLevel's Ed25519 signature, or a Standard Webhooks secret.
    #[arg(long, value_enum, default_value_t = DevScheme::Highlevel)]
    pub scheme: DevScheme,
}

/// The signature schemes `init` can set up a dev key for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DevScheme {
    /// A `highlevel` source trusting a generated Ed25519 key pair.
    Highlevel,
    /// A `standard-webhooks` source with a generated `whsec_` secret.
    StandardWebhooks,
}

/// Runs `wasmhook init`: 0 when the setup was written, 2 when it could not be.
pub fn run(args: InitArgs) -> ExitCode {
    match init(&args) {
        Ok(written) => {
            println!("wasmhook init: wrote {}:", args.dir.display());
            for path in written {
                println!("  {}", path.display());
            }
            println!(
                "next: `wasmhook new my-plugin --lang rust` (or python, js), `wasmhook build my-plugin`, `wasmhook dev`, \
                 then `wasmhook send --source {} --file events/contact-create.json`",
                source_name(args.scheme)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmhook init: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes the setup into `args.dir`; returns the paths written, relative to it.
fn init(args: &InitArgs) -> anyhow::Result<Vec<PathBuf>> {
    let dir = &args.dir;
    let key_files: &[&str] = match args.scheme {
        DevScheme::Highlevel => &["keys/highlevel-dev.pem", "keys/highlevel-dev.pub.pem"],
        DevScheme::StandardWebhooks => &["keys/webhook-secret"],
    };
    let taken: Vec<String> = ["wasmhook.toml", "events/contact-create.json"]
        .iter()
        .chain(key_files)
        .map(|relative| dir.join(relative))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !taken.is_empty() {
        anyhow::bail!(
            "{} already exists; run `wasmhook init` in an empty folder, or remove it first",
            taken.join(", ")
        );
    }
    for sub in ["plugins", "keys", "events"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let mut written = Vec::new();
    match args.scheme {
        DevScheme::Highlevel => {
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let private = key
                .to_pkcs8_pem(LineEnding::LF)
                .context("encoding the dev key")?;
            let public = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .context("encoding the dev key's public half")?;
            write_new(
                dir,
                "keys/highlevel-dev.pem",
                private.as_bytes(),
                true,
                &mut written,
            )?;
            write_new(
                dir,
                "keys/highlevel-dev.pub.pem",
                public.as_bytes(),
                false,
                &mut written,
            )?;
        }
        DevScheme::StandardWebhooks => {
            use base64::Engine;
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            let text = format!(
                "whsec_{}\n",
                base64::engine::general_purpose::STANDARD.encode(secret)
            );
            write_new(
                dir,
                "keys/webhook-secret",
                text.as_bytes(),
                true,
                &mut written,
            )?;
        }
    }
    write_new(
        dir,
        "events/contact-create.json",
        sample_event().as_bytes(),
        false,
        &mut written,
    )?;
    write_new(
        dir,
        "wasmhook.toml",
        config_text(args).as_bytes(),
        false,
        &mut written,
    )?;
    Ok(written)
}

/// The source's name in the dev config (and so in manifests' `events`).
pub fn source_name(scheme: DevScheme) -> &'static str {
    match scheme {
        DevScheme::Highlevel => "highlevel",
        DevScheme::StandardWebhooks => "webhooks",
    }
}

/// The dev config. The API points at HighLevel; `wasmhook dev` redirects it to its mock.
fn config_text(args: &InitArgs) -> String {
    let source = match args.scheme {
        DevScheme::Highlevel => format!(
            r#"[[sources]]
name = "highlevel"
scheme = "highlevel"
api = "highlevel"
app_id = "{DEV_APP_ID}"
# Trust only the dev key written by `wasmhook init` (not HighLevel's published keys), and sign
# with its private half in `wasmhook send`. For production, remove these three lines and
# `signing_key`, and set app_id to your marketplace app's id.
ed25519_keys = [{{ file = "keys/highlevel-dev.pub.pem" }}]
rsa_keys = []
signing_key = {{ file = "keys/highlevel-dev.pem" }}
# Accept events of locations that never sent INSTALL (production: remove this line).
require_installation = false
"#
        ),
        DevScheme::StandardWebhooks => r#"[[sources]]
name = "webhooks"
scheme = "standard-webhooks"
api = "highlevel"
# The dev secret written by `wasmhook init`; `wasmhook send` signs with it too.
secrets = [{ file = "keys/webhook-secret" }]
"#
        .to_owned(),
    };
    format!(
        r#"# Development config written by `wasmhook init`. Every field and its default is documented
# in wasmhook.example.toml. `wasmhook dev` serves it with every API pointed at a recording mock;
# `wasmhook serve` uses the real APIs.

[server]
listen = "{listen}"

[admin]
listen = "{admin}"

[storage]
url = "sqlite://data/wasmhook.db"

[plugins]
dir = "plugins"

{source}
[apis.highlevel]
base_url = "https://services.leadconnectorhq.com"
# Read by `wasmhook serve` only; `wasmhook dev` sends no token to its mock.
token = {{ env = "HIGHLEVEL_TOKEN" }}
idempotency_header = "Idempotency-Key"

[apis.highlevel.versions]
"/" = "2021-07-28"
"/calendars" = "2021-04-15"
"/conversations" = "2021-04-15"
"#,
        listen = args.listen,
        admin = args.admin_listen,
    )
}

/// A HighLevel `ContactCreate` for the dev app and location.
fn sample_event() -> String {
    format!(
        r#"{{
  "type": "ContactCreate",
  "appId": "{DEV_APP_ID}",
  "locationId": "{DEV_LOCATION}",
  "id": "dev-contact-1",
  "firstName": "Ada",
  "lastName": "Lovelace",
  "email": "ada@example.com",
  "tags": []
}}
"#
    )
}

/// Writes `dir/relative`, refusing to replace an existing file; `private` files are created
/// readable by the owner only.
fn write_new(
    dir: &Path,
    relative: &str,
    bytes: &[u8],
    private: bool,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let path = dir.join(relative);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {} (is it there already?)", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(PathBuf::from(relative));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        config::{Config, SchemeConfig},
        ids::now_ms,
        sources::{
            Source,
            sign::{Signing, sign},
        },
    };

    fn args(dir: &Path, scheme: DevScheme) -> InitArgs {
        InitArgs {
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:18080".parse().unwrap(),
            admin_listen: "127.0.0.1:19090".parse().unwrap(),
            scheme,
        }
    }

    /// Signs the sample event as `send` would and verifies it as the server would.
    fn sample_verifies(dir: &Path) {
        let config = Config::load(dir.join("wasmhook.toml")).unwrap();
        let body = fs::read(dir.join("events/contact-create.json")).unwrap();
        let headers = sign(
            &config.sources[0],
            &Signing {
                key: None,
                now_secs: now_ms() / 1000,
                kind: None,
            },
            &body,
        )
        .unwrap();
        let headers: http::HeaderMap = headers
            .into_iter()
            .map(|(k, v)| (k, http::HeaderValue::try_from(v).unwrap()))
            .collect();
        let source = Arc::new(Source::from_config(&config.sources[0]).unwrap());
        let envelope = source
            .verify(&headers, body.into())
            .unwrap()
            .envelope(now_ms())
            .unwrap();
        assert_eq!(envelope.kind, "ContactCreate");
    }

    #[test]
    fn a_highlevel_setup_trusts_only_its_dev_key_and_send_signs_with_it() {
        let dir = tempfile::tempdir().unwrap();
        init(&args(dir.path(), DevScheme::Highlevel)).unwrap();
        let config = Config::load(dir.path().join("wasmhook.toml")).unwrap();
        assert_eq!(config.server.listen.port(), 18080);
        assert_eq!(config.admin.listen.port(), 19090);
        assert!(dir.path().join("plugins").is_dir());
        let SchemeConfig::HighLevel(hl) = &config.sources[0].scheme else {
            panic!("not a HighLevel source")
        };
        assert_eq!(hl.ed25519_keys.len(), 1);
        assert!(
            hl.rsa_keys.is_empty(),
            "the published RSA key is not trusted"
        );
        assert!(!hl.require_installation);
        sample_verifies(dir.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("keys/highlevel-dev.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the private key is the owner's alone");
        }
    }

    #[test]
    fn a_standard_webhooks_setup_signs_and_verifies_with_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        init(&args(dir.path(), DevScheme::StandardWebhooks)).unwrap();
        let config = Config::load(dir.path().join("wasmhook.toml")).unwrap();
        assert_eq!(config.sources[0].name.as_str(), "webhooks");
        sample_verifies(dir.path());
    }

    #[test]
    fn an_existing_key_stops_it_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("keys")).unwrap();
        fs::write(dir.path().join("keys/highlevel-dev.pem"), "mine").unwrap();
        let err = init(&args(dir.path(), DevScheme::Highlevel)).unwrap_err();
        assert!(err.to_string().contains("highlevel-dev.pem"), "{err}");
        assert!(!dir.path().join("wasmhook.toml").exists());
        assert!(!dir.path().join("events").exists());
    }

    #[test]
    fn an_existing_config_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("wasmhook.toml"), "# mine\n").unwrap();
        let err = init(&args(dir.path(), DevScheme::Highlevel)).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("wasmhook.toml")).unwrap(),
            "# mine\n"
        );
        assert!(!dir.path().join("keys").exists(), "nothing written");
    }
}
