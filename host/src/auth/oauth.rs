//! The platform's OAuth endpoints, as HighLevel speaks them: the code exchange and the refresh
//! (form-encoded POST to `token_url`), minting a location token from a company token (form POST
//! to `location_token_path` with the company's bearer token), and the company's installed
//! locations (GET `installed_locations_path`).
//!
//! Invariants: token values travel only in form bodies and `Authorization` headers marked
//! sensitive, and come back only as [`Secret`]s; no error or log line carries a token or a
//! response body — an error names the status and, at most, the OAuth `error` code.
//! A 400 or 401 from the token endpoint is [`GrantError::Definitive`] (e.g. `invalid_grant`,
//! "Location is not active": a user must re-authorise); anything else is transient.

use std::time::Duration;

use serde::Deserialize;

use crate::{
    config::{ApiConfig, OAuthConfig},
    ids::TenantId,
    secret::Secret,
};

/// Largest token endpoint answer read (they are a few hundred bytes).
const MAX_ANSWER: usize = 256 * 1024;
/// Most pages of installed locations read for one company.
const MAX_LOCATION_PAGES: usize = 100;
/// Installed locations asked for per page.
const LOCATION_PAGE: usize = 100;

/// What a token endpoint granted.
#[derive(Debug)]
pub struct Grant {
    pub access: Secret,
    pub refresh: Option<Secret>,
    /// Lifetime of `access`, if the answer said.
    pub expires_in: Option<Duration>,
    pub scopes: String,
    /// `Location` or `Company` (HighLevel `userType`).
    pub user_type: Option<String>,
    pub location: Option<TenantId>,
    pub company: Option<TenantId>,
}

impl Grant {
    /// The tenant the grant is for: the location for a location token, else the company.
    pub fn tenant(&self) -> Option<&TenantId> {
        let company_token = self
            .user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("company"));
        if company_token {
            self.company.as_ref().or(self.location.as_ref())
        } else {
            self.location.as_ref().or(self.company.as_ref())
        }
    }
}

/// Why a grant failed. Messages carry no token and no body.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// 400/401: the grant is refused for good (re-authorisation needed).
    #[error("the token endpoint refused the grant ({status}{})", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Definitive {
        status: u16,
        /// The OAuth `error` code, when the answer had one (e.g. `invalid_grant`).
        code: Option<String>,
    },
    /// Anything else: a 5xx, a 429, a timeout, a reset, an unreadable answer. Retry later.
    #[error("token endpoint unavailable: {0}")]
    Transient(String),
    /// The client secret or id could not be read.
    #[error("oauth client credentials: {0}")]
    Client(#[from] crate::secret::SecretError),
}

#[derive(Deserialize)]
struct RawGrant {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
    #[serde(rename = "userType")]
    user_type: Option<String>,
    #[serde(rename = "locationId")]
    location_id: Option<String>,
    #[serde(rename = "companyId")]
    company_id: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: Option<String>,
}

/// One API's OAuth client.
#[derive(Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    oauth: OAuthConfig,
    base_url: reqwest::Url,
    /// The `Version` header HighLevel wants on its OAuth endpoints.
    version: Option<String>,
}

impl Endpoint {
    /// The client of `api` (which must have `oauth`), sharing `http`.
    pub fn new(http: reqwest::Client, api: &ApiConfig, oauth: OAuthConfig) -> Endpoint {
        Endpoint {
            version: api.version_for("/oauth").map(str::to_owned),
            http,
            oauth,
            base_url: api.base_url.clone(),
        }
    }

    /// How long one token request may take; a refresh lease outlives it.
    pub fn request_timeout(&self) -> Duration {
        self.oauth.request_timeout
    }

    /// Exchanges an authorization code.
    pub async fn exchange(&self, code: &str) -> Result<Grant, GrantError> {
        let mut form = vec![("grant_type", "authorization_code".to_string())];
        form.push(("code", code.to_string()));
        if let Some(redirect) = &self.oauth.redirect_url {
            form.push(("redirect_uri", redirect.clone()));
        }
        self.token_request(form).await
    }

    /// Redeems a refresh token. HighLevel's are single-use, and a repeat within 30 s returns
    /// the same new pair, so a caller that lost the answer retries with the same token.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<Grant, GrantError> {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ];
        self.token_request(form).await
    }

    /// Mints a token for `location` from `company`'s token.
    pub async fn mint(
        &self,
        company_token: &Secret,
        company: &TenantId,
        location: &TenantId,
    ) -> Result<Grant, GrantError> {
        let Some(path) = &self.oauth.location_token_path else {
            return Err(GrantError::Definitive {
                status: 404,
                code: Some("no location_token_path configured".into()),
            });
        };
        let form = [
            ("companyId", company.as_str()),
            ("locationId", location.as_str()),
        ];
        let request = self
            .with_auth(self.http.post(self.url(path)), company_token)
            .form(&form);
        let grant = self.grant_answer(request).await?;
        Ok(Grant {
            location: grant.location.or_else(|| Some(location.clone())),
            company: grant.company.or_else(|| Some(company.clone())),
            user_type: grant.user_type.or_else(|| Some("Location".into())),
            ..grant
        })
    }

    /// The locations where the app is installed under `company` (empty when the endpoint is
    /// not configured).
    pub async fn installed_locations(
        &self,
        company_token: &Secret,
        company: &TenantId,
    ) -> Result<Vec<TenantId>, GrantError> {
        let (Some(path), Some(app_id)) = (&self.oauth.installed_locations_path, &self.oauth.app_id)
        else {
            return Ok(vec![]);
        };
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            locations: Vec<Location>,
        }
        #[derive(Deserialize)]
        struct Location {
            #[serde(rename = "_id", alias = "id")]
            id: String,
        }
        let mut found = Vec::new();
        for page in 0..MAX_LOCATION_PAGES {
            let skip = (page * LOCATION_PAGE).to_string();
            let limit = LOCATION_PAGE.to_string();
            let query = [
                ("companyId", company.as_str()),
                ("appId", app_id.as_str()),
                ("isInstalled", "true"),
                ("skip", &skip),
                ("limit", &limit),
            ];
            let request = self
                .with_auth(self.http.get(self.url(path)), company_token)
                .query(&query);
            let (status, body) = self.send(request).await?;
            if !(200..300).contains(&status) {
                return Err(GrantError::Transient(format!(
                    "installed locations answered {status}"
                )));
            }
            let page: Page = serde_json::from_slice(&body).map_err(|_| {
                GrantError::Transient(
                    "installed locations: the answer is not the expected JSON".into(),
                )
            })?;
            let count = page.locations.len();
            found.extend(page.locations.into_iter().map(|l| TenantId::new(l.id)));
            if count < LOCATION_PAGE {
                break;
            }
        }
        Ok(found)
    }

    async fn token_request(&self, mut form: Vec<(&str, String)>) -> Result<Grant, GrantError> {
        form.push((
            "client_id",
            self.oauth.client_id.load()?.expose().to_string(),
        ));
        form.push((
            "client_secret",
            self.oauth.client_secret.load()?.expose().to_string(),
        ));
        if let Some(user_type) = &self.oauth.user_type {
            form.push(("user_type", user_type.clone()));
        }
        let request = self
            .http
            .post(self.oauth.token_url.clone())
            .header(http::header::ACCEPT, "application/json")
            .form(&form);
        self.grant_answer(request).await
    }

    async fn grant_answer(&self, request: reqwest::RequestBuilder) -> Result<Grant, GrantError> {
        let (status, body) = self.send(request).await?;
        if matches!(status, 400 | 401) {
            let code = serde_json::from_slice::<RawError>(&body)
                .ok()
                .and_then(|e| e.error)
                .map(|c| c.chars().take(64).collect());
            return Err(GrantError::Definitive { status, code });
        }
        if !(200..300).contains(&status) {
            return Err(GrantError::Transient(format!("answered {status}")));
        }
        let raw: RawGrant = serde_json::from_slice(&body).map_err(|_| {
            GrantError::Transient("the answer has no access_token or is not JSON".into())
        })?;
        Ok(Grant {
            access: Secret::new(raw.access_token),
            refresh: raw.refresh_token.map(Secret::new),
            expires_in: raw.expires_in.map(Duration::from_secs),
            scopes: raw.scope.unwrap_or_default(),
            user_type: raw.user_type,
            location: raw.location_id.filter(|s| !s.is_empty()).map(TenantId::new),
            company: raw.company_id.filter(|s| !s.is_empty()).map(TenantId::new),
        })
    }

    /// Sends with the timeout and reads at most [`MAX_ANSWER`] bytes.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), GrantError> {
        let transient = |e: reqwest::Error| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            GrantError::Transient(what.into())
        };
        let mut response = request
            .timeout(self.oauth.request_timeout)
            .send()
            .await
            .map_err(transient)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transient)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(GrantError::Transient("the answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url
    }

    fn with_auth(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        let request = request
            .header(http::header::AUTHORIZATION, value)
            .header(http::header::ACCEPT, "application/json");
        match &self.version {
            Some(version) => request.header("Version", version.as_str()),
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user_type: Option<&str>) -> Grant {
        Grant {
            access: Secret::new("a"),
            refresh: None,
            expires_in: None,
            scopes: String::new(),
            user_type: user_type.map(str::to_owned),
            location: Some(TenantId::new("loc")),
            company: Some(TenantId::new("co")),
        }
    }

    #[test]
    fn a_grant_belongs_to_its_location_unless_it_is_a_company_token() {
        assert_eq!(grant(Some("Location")).tenant().unwrap().as_str(), "loc");
        assert_eq!(grant(None).tenant().unwrap().as_str(), "loc");
        assert_eq!(grant(Some("Company")).tenant().unwrap().as_str(), "co");
    }

    #[test]
    fn definitive_errors_name_the_code_and_nothing_else() {
        let e = GrantError::Definitive {
            status: 400,
            code: Some("invalid_grant".into()),
        };
        assert_eq!(
            e.to_string(),
            "the token endpoint refused the grant (400, invalid_grant)"
        );
    }
}
