//! `wasmhook status`: the live summary of a running server (`GET /admin/status`), as a short
//! text for a person or, with `--json`, the server's JSON as is.

use std::fmt::Write;

use reqwest::Method;

use super::{AdminClient, AdminClientError, Target};
use crate::server::status::Status;

/// `wasmhook status`
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
}

/// Runs `wasmhook status`; returns what to print.
pub async fn run_status(args: StatusArgs) -> Result<String, AdminClientError> {
    let client = AdminClient::from_target(&args.target)?;
    let status: Status = client
        .call(Method::GET, "/admin/status", None::<&()>)
        .await?;
    Ok(if args.target.json {
        super::commands::to_json(&status)
    } else {
        text(&status)
    })
}

/// The summary as aligned text.
pub fn text(s: &Status) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(out, "plugins (last hour):");
    if s.plugins.is_empty() {
        let _ = writeln!(out, "  no deliveries");
    }
    for p in &s.plugins {
        let p95 = p.p95_ms.map_or("-".to_string(), |ms| format!("{ms}ms"));
        let _ = writeln!(
            out,
            "  {:<24} delivered {:>6}  failed {:>6}  dead {:>6}  p95 {p95}",
            p.plugin.as_str(),
            p.delivered,
            p.failed,
            p.dead
        );
    }
    let _ = writeln!(out, "apis:");
    if s.apis.is_empty() {
        let _ = writeln!(out, "  none configured");
    }
    for a in &s.apis {
        let rate = if a.attempts == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", a.errors as f64 * 100.0 / a.attempts as f64)
        };
        let headroom = a
            .ratelimit_remaining
            .map_or("-".to_string(), |r| format!("{r}"));
        let breaker = if a.breaker_open { "open" } else { "closed" };
        let _ = writeln!(
            out,
            "  {:<24} errors {rate} of {} attempts (last {}s)  headroom {headroom}  breaker {breaker}",
            a.api.as_str(),
            a.attempts,
            a.window_secs
        );
        if let Some(line) = tokens_line(a) {
            let _ = writeln!(out, "  {:<24} {line}", "");
        }
    }
    let _ = writeln!(
        out,
        "installations needing action: {}",
        s.installations_needing_action
    );
    for i in &s.installations {
        let _ = writeln!(out, "  {} {} {}", i.api.as_str(), i.tenant, i.state);
    }
    let _ = write!(out, "open alerts: {}", s.alerts.len());
    for a in &s.alerts {
        let _ = write!(out, "\n  {} {}", a.kind, a.subject);
    }
    out
}

/// `tokens: soonest expiry in 42m; oldest static token 12d`, or None when the API has
/// neither kind of token.
fn tokens_line(a: &crate::server::status::ApiStatus) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(secs) = a.token_expiry_secs {
        parts.push(if secs >= 0.0 {
            format!("soonest expiry in {}", span(secs))
        } else {
            format!("a token expired {} ago", span(-secs))
        });
    }
    if let Some(secs) = a.static_token_age_secs {
        parts.push(format!("oldest static token {}", span(secs)));
    }
    (!parts.is_empty()).then(|| format!("tokens: {}", parts.join("; ")))
}

/// A rough human span: `42s`, `17m`, `5h`, `12d`.
fn span(secs: f64) -> String {
    let secs = secs as u64;
    match secs {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 2 * 3600 => format!("{}h", s / 3600),
        s if s >= 120 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        alerts::OpenAlert,
        ids::{ApiName, PluginName},
        server::status::ApiStatus,
        store::PluginStats,
    };

    #[test]
    fn the_text_has_one_line_per_plugin_and_api() {
        let status = Status {
            since_ms: 0,
            plugins: vec![PluginStats {
                plugin: PluginName::new("tagger"),
                delivered: 12,
                failed: 2,
                dead: 1,
                p95_ms: Some(41),
            }],
            apis: vec![ApiStatus {
                api: ApiName::new("highlevel"),
                attempts: 4,
                errors: 1,
                window_secs: 300,
                ratelimit_remaining: Some(87.0),
                breaker_open: false,
                token_expiry_secs: Some(3000.0),
                static_token_age_secs: Some(12.5 * 86_400.0),
            }],
            installations_needing_action: 0,
            installations: Vec::new(),
            alerts: vec![OpenAlert {
                kind: "delivery_dead".into(),
                subject: "tagger".into(),
                since_ms: 1,
            }],
        };
        let text = text(&status);
        assert!(text.contains("tagger"), "{text}");
        assert!(
            text.contains("delivered     12  failed      2  dead      1  p95 41ms"),
            "{text}"
        );
        assert!(
            text.contains("errors 25% of 4 attempts (last 300s)  headroom 87  breaker closed"),
            "{text}"
        );
        assert!(
            text.contains("tokens: soonest expiry in 50m; oldest static token 12d"),
            "{text}"
        );
        assert!(
            text.contains("open alerts: 1\n  delivery_dead tagger"),
            "{text}"
        );
    }
}
