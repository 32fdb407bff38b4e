//! The admin subcommands: their arguments, the calls they make, and how they print.

use std::time::SystemTime;

use reqwest::Method;

use super::{AdminClient, AdminClientError, Target, encode, parse_rate, parse_since};
use crate::{
    server::admin::{PurgeBody, ReplayAnswer, ReplayBody},
    store::{DeliveryRecord, DeliveryState, EraseRequest, Removed},
};

/// `wasmhook deliveries ...`
#[derive(clap::Args, Debug)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    pub command: DeliveriesCommand,
    #[command(flatten)]
    pub target: Target,
}

/// What to do with deliveries.
#[derive(clap::Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// pending, running, succeeded or dead.
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        #[arg(long)]
        plugin: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// The event (webhook) id.
        #[arg(long)]
        event: Option<String>,
        /// Only those created since: a duration ago ("2h") or a time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (the server caps it at 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one delivery with its attempts, errors and plugin logs.
    Show { id: String },
    /// Run a dead or succeeded delivery again (same idempotency key).
    Replay { id: String },
    /// Cancel (delete) a pending delivery.
    Cancel { id: String },
}

/// `wasmhook replay --dead ...`
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Replay dead deliveries (the only kind a bulk replay takes; required to say so).
    #[arg(long, required = true)]
    pub dead: bool,
    #[arg(long)]
    pub plugin: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only those that died since: a duration ago ("2h") or a time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Pace: "10/s", "100/m" (default: all at once).
    #[arg(long)]
    pub rate: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// `wasmhook purge ...`: deletes dead deliveries.
#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    #[arg(long)]
    pub plugin: Option<String>,
    /// Only those that died longer ago than this ("7d").
    #[arg(long)]
    pub older_than: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// `wasmhook erase --tenant ID [--contact ID]`
#[derive(clap::Args, Debug)]
pub struct EraseArgs {
    /// The tenant (HighLevel location or company id) whose data goes.
    #[arg(long)]
    pub tenant: String,
    /// Only the stored events (and their deliveries) whose payload names this contact.
    #[arg(long)]
    pub contact: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

fn parse_state(text: &str) -> Result<DeliveryState, String> {
    match text {
        "pending" => Ok(DeliveryState::Pending),
        "running" => Ok(DeliveryState::Running),
        "succeeded" => Ok(DeliveryState::Succeeded),
        "dead" => Ok(DeliveryState::Dead),
        other => Err(format!(
            "`{other}` is not a state; write pending, running, succeeded or dead"
        )),
    }
}

fn usage(message: String) -> AdminClientError {
    AdminClientError::Usage(message)
}

/// Runs `wasmhook deliveries ...`; returns what to print.
pub async fn run_deliveries(args: DeliveriesArgs) -> Result<String, AdminClientError> {
    let client = AdminClient::from_target(&args.target)?;
    let json = args.target.json;
    match args.command {
        DeliveriesCommand::List {
            state,
            plugin,
            tenant,
            event,
            since,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(state) = state {
                query.push(format!("state={}", state.as_str()));
            }
            for (name, value) in [("plugin", plugin), ("tenant", tenant), ("event_id", event)] {
                if let Some(value) = value {
                    query.push(format!("{name}={}", encode(&value)));
                }
            }
            if let Some(since) = since {
                let ms = parse_since(&since, SystemTime::now()).map_err(usage)?;
                query.push(format!("since_ms={ms}"));
            }
            let list: Vec<DeliveryRecord> = client
                .call(
                    Method::GET,
                    &format!("/admin/deliveries?{}", query.join("&")),
                    None::<&()>,
                )
                .await?;
            Ok(if json {
                to_json(&list)
            } else {
                list_text(&list)
            })
        }
        DeliveriesCommand::Show { id } => {
            let record: DeliveryRecord = client
                .call(
                    Method::GET,
                    &format!("/admin/deliveries/{}", encode(&id)),
                    None::<&()>,
                )
                .await?;
            Ok(if json {
                to_json(&record)
            } else {
                show_text(&record)
            })
        }
        DeliveriesCommand::Replay { id } => {
            let answer: serde_json::Value = client
                .call(
                    Method::POST,
                    &format!("/admin/deliveries/{}/replay", encode(&id)),
                    None::<&()>,
                )
                .await?;
            Ok(if json {
                to_json(&answer)
            } else {
                format!("replayed {id}: it runs again shortly")
            })
        }
        DeliveriesCommand::Cancel { id } => {
            let answer: serde_json::Value = client
                .call(
                    Method::DELETE,
                    &format!("/admin/deliveries/{}", encode(&id)),
                    None::<&()>,
                )
                .await?;
            Ok(if json {
                to_json(&answer)
            } else {
                format!("cancelled {id}")
            })
        }
    }
}

/// Runs `wasmhook replay --dead ...`.
pub async fn run_replay(args: ReplayArgs) -> Result<String, AdminClientError> {
    let body = ReplayBody {
        plugin: args.plugin,
        tenant: args.tenant,
        since_ms: args
            .since
            .map(|s| parse_since(&s, SystemTime::now()))
            .transpose()
            .map_err(usage)?,
        rate_per_sec: args
            .rate
            .map(|r| parse_rate(&r))
            .transpose()
            .map_err(usage)?,
    };
    let client = AdminClient::from_target(&args.target)?;
    let answer: ReplayAnswer = client
        .call(Method::POST, "/admin/replay", Some(&body))
        .await?;
    Ok(if args.target.json {
        to_json(&answer)
    } else {
        match answer.last_due_ms {
            Some(last) if body.rate_per_sec.is_some() => format!(
                "replaying {} dead deliveries; the last is due in {}s",
                answer.replayed,
                ((last - crate::ids::now_ms()).max(0) + 999) / 1000
            ),
            _ => format!("replaying {} dead deliveries", answer.replayed),
        }
    })
}

/// Runs `wasmhook purge ...`.
pub async fn run_purge(args: PurgeArgs) -> Result<String, AdminClientError> {
    let died_before_ms = args
        .older_than
        .map(|text| {
            humantime::parse_duration(&text)
                .map(|ago| {
                    crate::ids::now_ms()
                        .saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))
                })
                .map_err(|_| format!("--older-than `{text}` is not a duration; write e.g. \"7d\""))
        })
        .transpose()
        .map_err(usage)?;
    let client = AdminClient::from_target(&args.target)?;
    let body = PurgeBody {
        plugin: args.plugin,
        died_before_ms,
    };
    let removed: Removed = client
        .call(Method::POST, "/admin/purge", Some(&body))
        .await?;
    Ok(if args.target.json {
        to_json(&removed)
    } else {
        format!(
            "purged {} dead deliveries ({} attempts)",
            removed.deliveries, removed.attempts
        )
    })
}

/// Runs `wasmhook erase ...`.
pub async fn run_erase(args: EraseArgs) -> Result<String, AdminClientError> {
    if args.tenant.trim().is_empty() {
        return Err(usage("--tenant must not be empty".into()));
    }
    let client = AdminClient::from_target(&args.target)?;
    let body = EraseRequest {
        tenant: crate::ids::TenantId::new(args.tenant.clone()),
        contact: args.contact.clone(),
    };
    let removed: Removed = client
        .call(Method::POST, "/admin/erase", Some(&body))
        .await?;
    Ok(if args.target.json {
        to_json(&removed)
    } else {
        let what = match &args.contact {
            Some(contact) => format!("contact {contact} of tenant {}", args.tenant),
            None => format!("tenant {}", args.tenant),
        };
        format!(
            "erased {what}: {} events, {} deliveries, {} attempts, {} kv entries",
            removed.events, removed.deliveries, removed.attempts, removed.kv_entries
        )
    })
}

pub(super) fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A time as RFC 3339 (UTC, seconds).
fn time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn list_text(list: &[DeliveryRecord]) -> String {
    if list.is_empty() {
        return "no deliveries".into();
    }
    let mut out = format!(
        "{:<36}  {:<9}  {:<8}  {:<20}  {:<24}  {}\n",
        "ID", "STATE", "ATTEMPTS", "PLUGIN", "EVENT", "DUE/ENDED"
    );
    for d in list {
        out.push_str(&format!(
            "{:<36}  {:<9}  {:<8}  {:<20}  {:<24}  {}\n",
            d.id,
            d.state.as_str(),
            format!("{}/{}", d.attempts_made, d.max_attempts),
            d.plugin,
            d.event_id,
            time(d.due_at_ms)
        ));
    }
    out.trim_end().to_owned()
}

fn show_text(d: &DeliveryRecord) -> String {
    let mut out = format!(
        "delivery {}\n  plugin:   {}\n  event:    {} ({})\n  tenant:   {}\n  state:    {}\n  \
         attempts: {}/{}\n  due/ended: {}\n",
        d.id,
        d.plugin,
        d.event_id,
        d.source,
        d.tenant,
        d.state.as_str(),
        d.attempts_made,
        d.max_attempts,
        time(d.due_at_ms)
    );
    if let Some(key) = &d.ordering_key {
        out.push_str(&format!("  ordering key: {key}\n"));
    }
    if let Some(note) = &d.note {
        out.push_str(&format!("  note:     {note}\n"));
    }
    for a in &d.attempts {
        out.push_str(&format!(
            "attempt {} {} at {} ({} ms){}\n",
            a.attempt,
            a.outcome,
            time(a.started_at_ms),
            a.finished_at_ms - a.started_at_ms,
            a.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        for line in &a.logs {
            let fields: Vec<String> = line
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "    {} {:<5} {} {}\n",
                time(line.at_ms),
                line.level,
                line.message,
                fields.join(" ")
            ));
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::{DeliveryId, EventId, PluginName, SourceName, TenantId},
        store::{AttemptRecord, LogLine},
    };

    fn record() -> DeliveryRecord {
        DeliveryRecord {
            id: DeliveryId::new("d-1"),
            plugin: PluginName::new("tagger"),
            source: SourceName::new("highlevel"),
            event_id: EventId::new("wh-1"),
            tenant: TenantId::new("loc-1"),
            state: DeliveryState::Dead,
            attempts_made: 1,
            max_attempts: 1,
            due_at_ms: 0,
            ordering_key: Some("c-1".into()),
            note: None,
            attempts: vec![AttemptRecord {
                attempt: 1,
                started_at_ms: 0,
                finished_at_ms: 12,
                outcome: "trap".into(),
                error: Some("unreachable".into()),
                logs: vec![LogLine {
                    at_ms: 5,
                    level: "info".into(),
                    message: "tagging".into(),
                    fields: vec![("contact".into(), "c-1".into())],
                }],
            }],
        }
    }

    #[test]
    fn show_prints_attempts_with_errors_and_logs() {
        let text = show_text(&record());
        assert!(
            text.contains("attempt 1 trap at 1970-01-01T00:00:00Z (12 ms): unreachable"),
            "{text}"
        );
        assert!(text.contains("info  tagging contact=c-1"), "{text}");
        assert!(text.contains("ordering key: c-1"), "{text}");
    }

    #[test]
    fn list_prints_one_row_per_delivery() {
        let text = list_text(&[record(), record()]);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("d-1"));
        assert_eq!(list_text(&[]), "no deliveries");
    }

    #[test]
    fn states_parse() {
        assert_eq!(parse_state("dead"), Ok(DeliveryState::Dead));
        assert!(parse_state("zombie").is_err());
    }
}
