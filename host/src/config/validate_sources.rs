//! Validation of `[[sources]]` and `[server.tls]`: raw entries -> typed `SourceConfig`, with
//! every problem named by field and fix (problems are collected, not returned at the first).
//!
//! Secrets are only checked for shape here (a reference, not inline text); their values are read
//! when the sources are built, so a secret rotated on disk is picked up by SIGHUP.

use std::time::Duration;

use super::{
    FieldOverrides, FieldRule, GitHubConfig, HighLevelConfig, HmacConfig, MacAlgorithm,
    MacEncoding, SchemeConfig, ShopifyConfig, SlackConfig, SourceConfig, StandardWebhooksConfig,
    StripeConfig, TlsConfig,
    raw::{RawPublicKey, RawSecret, RawSource, RawTls},
    raw_sources::{RawFieldRule, RawHighLevel, RawHmac, RawSigned},
    sources::DEFAULT_TOLERANCE,
    validate::{Checker, valid_name},
};
use crate::{
    ids::{ApiName, SourceName},
    secret::SecretRef,
};

/// HighLevel's published webhook keys, used when a `highlevel` source configures none.
const HIGHLEVEL_ED25519_PEM: &str = include_str!("../sources/keys/ed25519-public-key.pem");
const HIGHLEVEL_RSA_PEM: &str = include_str!("../sources/keys/rsa-public-key.pem");

/// HighLevel retries keep the original `timestamp` for hours; 72 h covers its retry schedule.
const DEFAULT_HIGHLEVEL_MAX_AGE: Duration = Duration::from_secs(72 * 3600);

/// Validates one `[[sources]]` entry at `field` (e.g. `sources[2]`).
pub(super) fn validate_source(c: &mut Checker, field: &str, raw: RawSource) -> SourceConfig {
    let name = raw.name().to_string();
    if !valid_name(&name) {
        c.problem(
            format!("{field}.name"),
            format!("`{name}` must be 1-64 of a-z, 0-9, `-`, `_` (it is used in URLs)"),
        );
    }
    let (api, scheme, fields) = match raw {
        RawSource::Highlevel(hl) => {
            let kind = rule(c, &format!("{field}.kind"), hl.kind.as_ref());
            let fields = FieldOverrides {
                kind,
                ..FieldOverrides::default()
            };
            (hl.api.clone(), highlevel(c, field, hl), fields)
        }
        RawSource::StandardWebhooks(r) => timed(c, field, &r, |secrets, tolerance| {
            SchemeConfig::StandardWebhooks(StandardWebhooksConfig { secrets, tolerance })
        }),
        RawSource::Github(r) => untimed(c, field, "github", &r, |secrets| {
            SchemeConfig::GitHub(GitHubConfig { secrets })
        }),
        RawSource::Stripe(r) => timed(c, field, &r, |secrets, tolerance| {
            SchemeConfig::Stripe(StripeConfig { secrets, tolerance })
        }),
        RawSource::Shopify(r) => untimed(c, field, "shopify", &r, |secrets| {
            SchemeConfig::Shopify(ShopifyConfig { secrets })
        }),
        RawSource::Slack(r) => timed(c, field, &r, |secrets, tolerance| {
            SchemeConfig::Slack(SlackConfig { secrets, tolerance })
        }),
        RawSource::Hmac(r) => hmac(c, field, r),
    };
    SourceConfig {
        name: SourceName::new(name),
        api: api.map(ApiName::new),
        scheme,
        fields,
    }
}

/// What a source entry becomes besides its name: its API, scheme and field overrides.
type Parts = (Option<String>, SchemeConfig, FieldOverrides);

/// A shared-secret scheme that signs a timestamp (its `tolerance` bounds it both ways).
fn timed(
    c: &mut Checker,
    field: &str,
    raw: &RawSigned,
    scheme: impl FnOnce(Vec<SecretRef>, Duration) -> SchemeConfig,
) -> Parts {
    let scheme = scheme(
        secrets(c, field, raw.secrets.as_deref()),
        tolerance(c, field, raw.tolerance.as_deref()),
    );
    (raw.api.clone(), scheme, overrides(c, field, raw))
}

/// A shared-secret scheme that signs no timestamp, so a `tolerance` is refused.
fn untimed(
    c: &mut Checker,
    field: &str,
    name: &str,
    raw: &RawSigned,
    scheme: impl FnOnce(Vec<SecretRef>) -> SchemeConfig,
) -> Parts {
    no_tolerance(c, field, name, raw);
    let scheme = scheme(secrets(c, field, raw.secrets.as_deref()));
    (raw.api.clone(), scheme, overrides(c, field, raw))
}

/// Refuses a replay window at least as long as the dedup retention: an event replayed after
/// its id was forgotten must be refused as too old, so the window has to end first.
pub(super) fn check_replay_windows(c: &mut Checker, sources: &[SourceConfig], retention: Duration) {
    for (i, source) in sources.iter().enumerate() {
        let Some(window) = source.scheme.replay_window() else {
            continue;
        };
        if window >= retention {
            let key = match source.scheme {
                SchemeConfig::HighLevel(_) => "max_age",
                _ => "tolerance",
            };
            c.problem(
                format!("sources[{i}].{key}"),
                format!(
                    "{} is not shorter than storage.retention ({}): a replay after the event id \
                     is forgotten would be accepted again; shorten it or lengthen the retention",
                    humantime::format_duration(window),
                    humantime::format_duration(retention)
                ),
            );
        }
    }
}

/// Validates `[server.tls]`: both files named, and both readable now (a typo should stop the
/// start, not the first handshake).
pub(super) fn validate_tls(c: &mut Checker, raw: Option<RawTls>) -> Option<TlsConfig> {
    let raw = raw?;
    let mut path = |key: &str, value: Option<std::path::PathBuf>| match value {
        None => {
            c.problem(
                format!("server.tls.{key}"),
                format!("required: the PEM file with the {key}"),
            );
            None
        }
        Some(p) => {
            let p = c.path(&p);
            if let Err(e) = std::fs::metadata(&p) {
                c.problem(
                    format!("server.tls.{key}"),
                    format!("cannot read {}: {e}", p.display()),
                );
            }
            Some(p)
        }
    };
    let cert = path("cert", raw.cert);
    let key = path("key", raw.key);
    Some(TlsConfig {
        cert: cert?,
        key: key?,
    })
}

fn secrets(c: &mut Checker, field: &str, raw: Option<&[RawSecret]>) -> Vec<SecretRef> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        c.problem(
            format!("{field}.secrets"),
            "required: at least one secret, e.g. secrets = [{ env = \"WEBHOOK_SECRET\" }]; list two while rotating",
        );
        return Vec::new();
    };
    raw.iter()
        .enumerate()
        .filter_map(|(j, s)| c.secret_ref(&format!("{field}.secrets[{j}]"), s))
        .collect()
}

fn tolerance(c: &mut Checker, field: &str, raw: Option<&str>) -> Duration {
    let tolerance = c.duration(&format!("{field}.tolerance"), raw, DEFAULT_TOLERANCE);
    if tolerance.is_zero() {
        c.problem(
            format!("{field}.tolerance"),
            "must be more than zero; clocks are never exactly in step (the default is 5m)",
        );
    }
    tolerance
}

fn no_tolerance(c: &mut Checker, field: &str, scheme: &str, raw: &RawSigned) {
    if raw.tolerance.is_some() {
        c.problem(
            format!("{field}.tolerance"),
            format!("`{scheme}` signs no timestamp, so there is nothing to judge; remove it"),
        );
    }
}

fn overrides(c: &mut Checker, field: &str, raw: &RawSigned) -> FieldOverrides {
    FieldOverrides {
        event_id: rule(c, &format!("{field}.event_id"), raw.event_id.as_ref()),
        kind: rule(c, &format!("{field}.kind"), raw.kind.as_ref()),
        tenant: rule(c, &format!("{field}.tenant"), raw.tenant.as_ref()),
    }
}

fn rule(c: &mut Checker, field: &str, raw: Option<&RawFieldRule>) -> Option<FieldRule> {
    let raw = raw?;
    match (&raw.header, &raw.pointer) {
        (Some(header), None) => match http::HeaderName::try_from(header.as_str()) {
            Ok(name) => Some(FieldRule::Header(name)),
            Err(_) => {
                c.problem(field, format!("`{header}` is not a valid header name"));
                None
            }
        },
        // RFC 6901: empty (the whole document) or `/`-separated tokens.
        (None, Some(pointer)) if pointer.starts_with('/') => {
            Some(FieldRule::Pointer(pointer.clone()))
        }
        (None, Some(pointer)) => {
            c.problem(
                field,
                format!("`{pointer}` is not a JSON pointer; write it like \"/data/id\""),
            );
            None
        }
        _ => {
            c.problem(
                field,
                "give exactly one of `header` (a header name) or `pointer` (a JSON pointer like \"/data/id\")",
            );
            None
        }
    }
}

fn hmac(c: &mut Checker, field: &str, r: RawHmac) -> Parts {
    let header = match r.header.as_deref() {
        Some(h) => http::HeaderName::try_from(h).unwrap_or_else(|_| {
            c.problem(
                format!("{field}.header"),
                format!("`{h}` is not a valid header name"),
            );
            http::HeaderName::from_static("x-signature")
        }),
        None => {
            c.problem(
                format!("{field}.header"),
                "required: the header that carries the MAC, e.g. \"X-Signature\"",
            );
            http::HeaderName::from_static("x-signature")
        }
    };
    let encoding = match r.encoding.as_deref() {
        None | Some("hex") => MacEncoding::Hex,
        Some("base64") => MacEncoding::Base64,
        Some(other) => {
            c.problem(
                format!("{field}.encoding"),
                format!("`{other}` is not an encoding; write \"hex\" or \"base64\""),
            );
            MacEncoding::Hex
        }
    };
    let algorithm = match r.algorithm.as_deref() {
        None | Some("sha256") => MacAlgorithm::Sha256,
        Some("sha512") => MacAlgorithm::Sha512,
        Some(other) => {
            c.problem(
                format!("{field}.algorithm"),
                format!("`{other}` is not supported; write \"sha256\" or \"sha512\""),
            );
            MacAlgorithm::Sha256
        }
    };
    let fields = FieldOverrides {
        event_id: rule(c, &format!("{field}.event_id"), r.event_id.as_ref()),
        kind: rule(c, &format!("{field}.kind"), r.kind.as_ref()),
        tenant: rule(c, &format!("{field}.tenant"), r.tenant.as_ref()),
    };
    let scheme = SchemeConfig::Hmac(HmacConfig {
        secrets: secrets(c, field, r.secrets.as_deref()),
        header,
        prefix: r.prefix.unwrap_or_default(),
        encoding,
        algorithm,
    });
    (r.api, scheme, fields)
}

fn highlevel(c: &mut Checker, field: &str, hl: RawHighLevel) -> SchemeConfig {
    let app_id = hl.app_id.unwrap_or_default();
    if app_id.is_empty() {
        c.problem(
            format!("{field}.app_id"),
            "required: your HighLevel app's id (HighLevel signs every app's events with one key, so events for other apps must be refused)",
        );
    }
    let ed_pems = pems(
        c,
        &format!("{field}.ed25519_keys"),
        hl.ed25519_keys,
        HIGHLEVEL_ED25519_PEM,
    );
    let rsa_pems = pems(
        c,
        &format!("{field}.rsa_keys"),
        hl.rsa_keys,
        HIGHLEVEL_RSA_PEM,
    );
    let mut ed25519_keys = Vec::new();
    for (j, pem) in ed_pems.iter().enumerate() {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        match ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim()) {
            Ok(k) => ed25519_keys.push(k),
            Err(e) => c.problem(
                format!("{field}.ed25519_keys[{j}]"),
                format!("not an Ed25519 public key in PEM (`BEGIN PUBLIC KEY`): {e}"),
            ),
        }
    }
    let mut rsa_keys = Vec::new();
    for (j, pem) in rsa_pems.iter().enumerate() {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        match rsa::RsaPublicKey::from_public_key_pem(pem.trim())
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
        {
            Ok(k) => rsa_keys.push(k),
            Err(e) => c.problem(
                format!("{field}.rsa_keys[{j}]"),
                format!(
                    "not an RSA public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`): {e}"
                ),
            ),
        }
    }
    if ed25519_keys.is_empty() && rsa_keys.is_empty() {
        c.problem(
            format!("{field}.ed25519_keys"),
            "no keys: every event would be refused; remove the field to use HighLevel's published key",
        );
    }
    let max_age = c.duration(
        &format!("{field}.max_age"),
        hl.max_age.as_deref(),
        DEFAULT_HIGHLEVEL_MAX_AGE,
    );
    SchemeConfig::HighLevel(HighLevelConfig {
        app_id,
        ed25519_keys,
        rsa_keys,
        max_age,
        require_timestamp: hl.require_timestamp.unwrap_or(false),
        require_installation: hl.require_installation.unwrap_or(true),
        signing_key: c.secret(&format!("{field}.signing_key"), hl.signing_key),
    })
}

/// The PEM texts of `keys`, or `default` when the field is absent.
fn pems(
    c: &mut Checker,
    field: &str,
    keys: Option<Vec<RawPublicKey>>,
    default: &str,
) -> Vec<String> {
    match keys {
        None => vec![default.to_string()],
        Some(keys) => keys
            .into_iter()
            .enumerate()
            .filter_map(|(j, k)| c.pem(&format!("{field}[{j}]"), k))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, FieldRule, MacAlgorithm, MacEncoding, SchemeConfig};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("cfg/wasmhook.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_scheme_parses_with_its_defaults() {
        let config = parse(
            r#"
[[sources]]
name = "sw"
scheme = "standard-webhooks"
secrets = [{ env = "SW" }, { file = "sw.key" }]
[[sources]]
name = "svix"
scheme = "svix"
secrets = [{ env = "SVIX" }]
tolerance = "2m"
[[sources]]
name = "gh"
scheme = "github"
secrets = [{ env = "GH" }]
event_id = { pointer = "/hook_id" }
[[sources]]
name = "st"
scheme = "stripe"
secrets = [{ env = "ST" }]
tenant = { header = "X-Account" }
[[sources]]
name = "sh"
scheme = "shopify"
secrets = [{ env = "SH" }]
[[sources]]
name = "sl"
scheme = "slack"
secrets = [{ env = "SL" }]
[[sources]]
name = "mac"
scheme = "hmac"
secrets = [{ env = "MAC" }]
header = "X-Signature"
prefix = "sha512="
encoding = "base64"
algorithm = "sha512"
kind = { pointer = "/event" }
"#,
        )
        .unwrap();
        let names: Vec<_> = config.sources.iter().map(|s| s.scheme.name()).collect();
        assert_eq!(
            names,
            [
                "standard-webhooks",
                "standard-webhooks",
                "github",
                "stripe",
                "shopify",
                "slack",
                "hmac"
            ]
        );
        let SchemeConfig::StandardWebhooks(sw) = &config.sources[0].scheme else {
            panic!()
        };
        assert_eq!(sw.secrets.len(), 2);
        assert_eq!(sw.tolerance.as_secs(), 300);
        let SchemeConfig::StandardWebhooks(svix) = &config.sources[1].scheme else {
            panic!()
        };
        assert_eq!(svix.tolerance.as_secs(), 120);
        assert_eq!(
            config.sources[2].fields.event_id,
            Some(FieldRule::Pointer("/hook_id".into()))
        );
        assert_eq!(
            config.sources[3].fields.tenant,
            Some(FieldRule::Header(http::HeaderName::from_static(
                "x-account"
            )))
        );
        let SchemeConfig::Hmac(mac) = &config.sources[6].scheme else {
            panic!()
        };
        assert_eq!(mac.header.as_str(), "x-signature");
        assert_eq!(mac.prefix, "sha512=");
        assert_eq!(mac.encoding, MacEncoding::Base64);
        assert_eq!(mac.algorithm, MacAlgorithm::Sha512);
    }

    #[test]
    fn highlevel_requires_installations_by_default() {
        let config =
            parse("[[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"a\"\n").unwrap();
        let SchemeConfig::HighLevel(hl) = &config.sources[0].scheme else {
            panic!()
        };
        assert!(hl.require_installation);
        assert!(!hl.require_timestamp);
    }

    #[test]
    fn mistakes_are_named_with_their_fix() {
        let msg = parse(
            r#"
[[sources]]
name = "gh"
scheme = "github"
secrets = ["inline-secret-value"]
tolerance = "5m"
[[sources]]
name = "st"
scheme = "stripe"
tolerance = "0s"
event_id = { header = "X-Id", pointer = "/id" }
kind = { pointer = "type" }
[[sources]]
name = "mac"
scheme = "hmac"
secrets = [{ env = "M" }]
encoding = "base32"
algorithm = "md5"
"#,
        )
        .unwrap_err();
        for needle in [
            "sources[0].secrets[0]",
            "never written into the config",
            "sources[0].tolerance",
            "signs no timestamp",
            "sources[1].secrets",
            "at least one secret",
            "sources[1].tolerance",
            "sources[1].event_id",
            "exactly one of `header`",
            "sources[1].kind",
            "not a JSON pointer",
            "sources[2].header",
            "sources[2].encoding",
            "sources[2].algorithm",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        assert!(!msg.contains("inline-secret-value"), "{msg}");
    }

    #[test]
    fn a_replay_window_must_be_shorter_than_the_retention() {
        let msg = parse(
            "[storage]\nretention = \"48h\"\n\
             [[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"a\"\n\
             [[sources]]\nname = \"st\"\nscheme = \"stripe\"\nsecrets = [{ env = \"S\" }]\ntolerance = \"3d\"\n",
        )
        .unwrap_err();
        assert!(msg.contains("sources[0].max_age"), "{msg}");
        assert!(msg.contains("sources[1].tolerance"), "{msg}");
        assert!(msg.contains("storage.retention"), "{msg}");
        // The same windows fit a longer retention.
        parse(
            "[storage]\nretention = \"7d\"\n\
             [[sources]]\nname = \"hl\"\nscheme = \"highlevel\"\napp_id = \"a\"\n",
        )
        .unwrap();
    }

    #[test]
    fn the_commented_source_examples_in_the_example_config_parse() {
        // Each `# [[sources]]` block of the example, uncommented up to the next blank line.
        let example = include_str!("../../../wasmhook.example.toml");
        let mut text = String::new();
        let mut inside = false;
        for line in example.lines() {
            if line == "# [[sources]]" {
                inside = true;
            }
            if inside {
                match line.strip_prefix("# ") {
                    Some(uncommented) => {
                        text.push_str(uncommented);
                        text.push('\n');
                    }
                    None => inside = false,
                }
            }
        }
        let config = parse(&text).unwrap();
        let schemes: Vec<_> = config.sources.iter().map(|s| s.scheme.name()).collect();
        assert_eq!(
            schemes,
            [
                "standard-webhooks",
                "github",
                "stripe",
                "shopify",
                "slack",
                "hmac"
            ]
        );
    }

    #[test]
    fn tls_files_must_be_named_and_readable() {
        let msg = parse("[server.tls]\ncert = \"missing-cert.pem\"\n").unwrap_err();
        assert!(msg.contains("server.tls.cert"), "{msg}");
        assert!(msg.contains("missing-cert.pem"), "{msg}");
        assert!(msg.contains("server.tls.key"), "{msg}");
    }
}
