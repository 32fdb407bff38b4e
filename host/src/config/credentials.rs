//! `[credentials]` (the master key and the token lifecycle) and `[apis.<name>.oauth]` (one API's
//! OAuth client), validated from the raw TOML. Owns their defaults.
//!
//! Invariants of a validated config: `refresh_when_left` is in (0, 1); every duration is above
//! zero; an OAuth `token_url` is http(s); paths start with `/`.

use std::time::Duration;

use super::{
    raw::{RawCredentials, RawOAuth},
    validate::Checker,
};
use crate::secret::SecretRef;

/// The environment variable the master key is read from when `master_key` is not set.
pub const MASTER_KEY_ENV: &str = "WASMHOOK_MASTER_KEY";

/// `[credentials]`.
#[derive(Clone, Debug)]
pub struct CredentialsConfig {
    /// Seals new credentials. Default `{ env = "WASMHOOK_MASTER_KEY" }`; when it is not set the
    /// server starts only if the store holds no sealed credential.
    pub master_key: SecretRef,
    /// Keys still accepted for opening while `wasmhook keys rotate` re-seals under the new one.
    pub old_master_keys: Vec<SecretRef>,
    /// Refresh an OAuth token in the background once less than this share of its lifetime is
    /// left. Default 0.1.
    pub refresh_when_left: f64,
    /// Refresh an idle installation's token at least this often, so its refresh token (valid a
    /// year at HighLevel) never lapses. Default 30 days.
    pub idle_refresh: Duration,
    /// How often the background refresher looks at the stored credentials. Default 1 minute.
    pub check_interval: Duration,
    /// Alert when a static token is older than this. Default 90 days (HighLevel's advice).
    pub rotate_after: Duration,
    /// How long a rotated-out static token is still tried after a 401. Default 7 days.
    pub overlap: Duration,
    /// How long a delivery waits before looking again when its tenant's credentials are not
    /// ready (install in progress, re-authorisation needed). Default 30 s.
    pub wait_recheck: Duration,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            master_key: SecretRef::Env(MASTER_KEY_ENV.into()),
            old_master_keys: vec![],
            refresh_when_left: 0.1,
            idle_refresh: Duration::from_secs(30 * 24 * 3600),
            check_interval: Duration::from_secs(60),
            rotate_after: Duration::from_secs(90 * 24 * 3600),
            overlap: Duration::from_secs(7 * 24 * 3600),
            wait_recheck: Duration::from_secs(30),
        }
    }
}

/// `[apis.<name>.oauth]`: the app's OAuth 2.0 client for this API.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthConfig {
    /// Where codes are exchanged and tokens refreshed (form-encoded POST).
    pub token_url: reqwest::Url,
    pub client_id: SecretRef,
    pub client_secret: SecretRef,
    /// The redirect URL registered with the platform (sent with the code exchange).
    pub redirect_url: Option<String>,
    /// `user_type` sent with exchanges and refreshes (HighLevel: `Location` or `Company`).
    pub user_type: Option<String>,
    /// Below the API's base URL: where a company token mints a location token. HighLevel:
    /// `/oauth/locationToken`. None: no minting.
    pub location_token_path: Option<String>,
    /// Below the API's base URL: the company's installed locations. HighLevel:
    /// `/oauth/installedLocations` (needs `app_id`). None: links come from events only.
    pub installed_locations_path: Option<String>,
    /// The app id sent to the installed-locations endpoint.
    pub app_id: Option<String>,
    /// Timeout of one token request. Default 10 s.
    pub request_timeout: Duration,
}

pub(super) fn validate_credentials(c: &mut Checker, raw: RawCredentials) -> CredentialsConfig {
    let mut config = CredentialsConfig::default();
    if let Some(key) = raw.master_key
        && let Some(reference) = c.secret_ref("credentials.master_key", &key)
    {
        config.master_key = reference;
    }
    for (i, key) in raw.old_master_keys.unwrap_or_default().iter().enumerate() {
        if let Some(reference) = c.secret_ref(&format!("credentials.old_master_keys[{i}]"), key) {
            config.old_master_keys.push(reference);
        }
    }
    if let Some(share) = raw.refresh_when_left {
        if share > 0.0 && share < 1.0 {
            config.refresh_when_left = share;
        } else {
            c.problem(
                "credentials.refresh_when_left",
                "must be a share of the token's lifetime between 0 and 1, e.g. 0.1",
            );
        }
    }
    let positive = |c: &mut Checker, field: &str, raw: Option<String>, default: Duration| {
        let value = c.duration(field, raw.as_deref(), default);
        if value.is_zero() {
            c.problem(field, "must be longer than zero");
        }
        value
    };
    config.idle_refresh = positive(
        c,
        "credentials.idle_refresh",
        raw.idle_refresh,
        config.idle_refresh,
    );
    config.check_interval = positive(
        c,
        "credentials.check_interval",
        raw.check_interval,
        config.check_interval,
    );
    config.rotate_after = positive(
        c,
        "credentials.rotate_after",
        raw.rotate_after,
        config.rotate_after,
    );
    config.overlap = c.duration(
        "credentials.overlap",
        raw.overlap.as_deref(),
        config.overlap,
    );
    config.wait_recheck = positive(
        c,
        "credentials.wait_recheck",
        raw.wait_recheck,
        config.wait_recheck,
    );
    config
}

pub(super) fn validate_oauth(c: &mut Checker, field: &str, raw: RawOAuth) -> Option<OAuthConfig> {
    let token_url = match raw.token_url.as_deref().map(reqwest::Url::parse) {
        Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Some(url)
        }
        Some(_) => {
            c.problem(
                format!("{field}.token_url"),
                "not an http(s) URL; write e.g. \"https://services.leadconnectorhq.com/oauth/token\"",
            );
            None
        }
        None => {
            c.problem(
                format!("{field}.token_url"),
                "required: where codes are exchanged, e.g. \"https://services.leadconnectorhq.com/oauth/token\"",
            );
            None
        }
    };
    let required_secret = |c: &mut Checker, name: &str, raw: Option<_>| {
        let at = format!("{field}.{name}");
        if raw.is_none() {
            c.problem(&at, "required: e.g. { env = \"HIGHLEVEL_CLIENT_ID\" }");
        }
        c.secret(&at, raw)
    };
    let client_id = required_secret(c, "client_id", raw.client_id);
    let client_secret = required_secret(c, "client_secret", raw.client_secret);
    let path = |c: &mut Checker, name: &str, raw: Option<String>| {
        raw.filter(|p| {
            let ok = p.starts_with('/');
            if !ok {
                c.problem(
                    format!("{field}.{name}"),
                    format!("`{p}` must start with `/` (it is below the API's base_url)"),
                );
            }
            ok
        })
    };
    let location_token_path = path(c, "location_token_path", raw.location_token_path);
    let installed_locations_path =
        path(c, "installed_locations_path", raw.installed_locations_path);
    if installed_locations_path.is_some() && raw.app_id.is_none() {
        c.problem(
            format!("{field}.app_id"),
            "required with installed_locations_path: the marketplace app id",
        );
    }
    let request_timeout = c.duration(
        &format!("{field}.request_timeout"),
        raw.request_timeout.as_deref(),
        Duration::from_secs(10),
    );
    Some(OAuthConfig {
        token_url: token_url?,
        client_id: client_id?,
        client_secret: client_secret?,
        redirect_url: raw.redirect_url,
        user_type: raw.user_type,
        location_token_path,
        installed_locations_path,
        app_id: raw.app_id,
        request_timeout,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems(text: &str) -> String {
        match Config::parse(Path::new("cfg/wasmhook.toml"), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_credentials_and_oauth_fields_are_named_with_the_fix() {
        let msg = problems(
            r#"
[credentials]
master_key = "inline-key-material"
refresh_when_left = 1.5
check_interval = "0s"
[apis.hl]
base_url = "https://api.example"
[apis.hl.oauth]
token_url = "ftp://x"
client_secret = { env = "S" }
installed_locations_path = "oauth/installedLocations"
"#,
        );
        for needle in [
            "credentials.master_key",
            "never written into the config",
            "credentials.refresh_when_left",
            "credentials.check_interval",
            "apis.hl.oauth.token_url",
            "apis.hl.oauth.client_id",
            "apis.hl.oauth.installed_locations_path",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        assert!(!msg.contains("inline-key-material"), "{msg}");
    }
}
