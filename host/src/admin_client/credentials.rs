//! `wasmhook tokens set|rotate|list` and `wasmhook keys rotate|generate`: credentials through a
//! running server's admin API (the store is single-process, so the server does the work).
//!
//! A token is read from `--from-file` or standard input, never from the command line (where
//! other users could see it in the process list), and is never printed.

use std::{io::Read, path::PathBuf};

use reqwest::Method;

use super::{AdminClient, AdminClientError, Target, encode};
use crate::{auth::MasterKey, server::admin_tokens::TokenInfo};

/// `wasmhook tokens ...`
#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// The `tokens` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Register a static token (e.g. a HighLevel Private Integration token), replacing any.
    Set(SetArgs),
    /// Register a new static token; the current one is still tried on 401 during the overlap.
    Rotate(RotateArgs),
    /// List stored credentials: kind, key id, age, expiry. Never the values.
    List(ListArgs),
}

/// Which token, from where.
#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The API (`[apis.<name>]`).
    #[arg(long)]
    pub api: String,
    /// The tenant it serves; without it, every tenant of the API.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Read the token from this file instead of standard input.
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

/// `tokens rotate`: `set` plus the overlap.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// How long the previous token is still tried after a 401, e.g. `24h` (default:
    /// `[credentials] overlap`).
    #[arg(long)]
    pub overlap: Option<String>,
}

/// `tokens list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
}

/// `wasmhook keys ...`
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `keys` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-seal every stored credential under the current master key, while the server runs.
    /// First make the new key `[credentials] master_key` and list the old one in
    /// `old_master_keys`, and restart; after this, the old key can go.
    Rotate(ListArgs),
    /// Print a new random master key (32 bytes, base64).
    Generate,
}

/// Runs `wasmhook tokens ...`.
pub async fn run_tokens(args: TokensArgs) -> Result<String, AdminClientError> {
    match args.command {
        TokensCommand::Set(set) => put(set, None).await,
        TokensCommand::Rotate(rotate) => {
            let overlap = match rotate.overlap.as_deref() {
                Some(text) => Some(
                    crate::config::parse_duration(text)
                        .map_err(|e| AdminClientError::Usage(format!("--overlap: {e}")))?,
                ),
                None => None,
            };
            put(rotate.set, Some(overlap)).await
        }
        TokensCommand::List(list) => {
            let client = AdminClient::from_target(&list.target)?;
            let rows: Vec<TokenInfo> = client
                .call(Method::GET, "/admin/tokens", None::<&()>)
                .await?;
            Ok(if list.target.json {
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            } else {
                list_text(&rows)
            })
        }
    }
}

/// `set` (overlap None) or `rotate` (overlap Some(given or default)).
async fn put(
    args: SetArgs,
    overlap: Option<Option<std::time::Duration>>,
) -> Result<String, AdminClientError> {
    let token = match &args.from_file {
        Some(path) => crate::secret::SecretRef::File(path.clone()).load()?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .take(16 * 1024)
                .read_to_string(&mut text)
                .map_err(|e| {
                    AdminClientError::Usage(format!("reading the token from stdin: {e}"))
                })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(AdminClientError::Usage(
                    "no token: pipe it on standard input or pass --from-file".into(),
                ));
            }
            crate::secret::Secret::new(text)
        }
    };
    let client = AdminClient::from_target(&args.target)?;
    let body = serde_json::json!({
        "tenant": args.tenant,
        "token": token.expose(),
        "rotate": overlap.is_some(),
        "overlap_ms": overlap.flatten().map(|d| d.as_millis() as u64),
    });
    let answer: serde_json::Value = client
        .call(
            Method::PUT,
            &format!("/admin/tokens/{}", encode(&args.api)),
            Some(&body),
        )
        .await?;
    let tenant = args.tenant.as_deref().unwrap_or("every tenant");
    Ok(match answer["previous_until_ms"].as_i64() {
        Some(until) => format!(
            "rotated the static token of api {} for {tenant}; the previous one is tried on 401 until {}",
            args.api,
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(until.max(0) as u64)
            )
        ),
        None => format!("set the static token of api {} for {tenant}", args.api),
    })
}

/// Runs `wasmhook keys ...`.
pub async fn run_keys(args: KeysArgs) -> Result<String, AdminClientError> {
    match args.command {
        KeysCommand::Generate => Ok(MasterKey::generate_text()),
        KeysCommand::Rotate(target) => {
            let client = AdminClient::from_target(&target.target)?;
            let answer: serde_json::Value = client
                .call(Method::POST, "/admin/keys/rotate", None::<&()>)
                .await?;
            Ok(if target.target.json {
                answer.to_string()
            } else {
                format!(
                    "re-sealed {} credential(s) under the current master key",
                    answer["resealed"].as_u64().unwrap_or(0)
                )
            })
        }
    }
}

fn list_text(rows: &[TokenInfo]) -> String {
    if rows.is_empty() {
        return "no stored credentials".into();
    }
    let mut out = String::from("API\tTENANT\tKIND\tKEY\tAGE\tEXPIRES IN\tOVERLAP UNTIL\n");
    for r in rows {
        let expires = r
            .expires_in_s
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "-".into());
        let overlap = r
            .previous_until_ms
            .map(|ms| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
                )
                .to_string()
            })
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}d\t{expires}\t{overlap}\n",
            r.api,
            r.tenant,
            r.kind.as_str(),
            r.key_id,
            r.age_s / 86_400
        ));
    }
    out.pop();
    out
}
