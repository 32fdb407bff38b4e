//! The client's shared state — one HTTP client, and per configured API its config, circuit
//! breaker, pacer and cache — and the entry points that resolve and check a request before the
//! sending loop (`call.rs`) takes over: plain sends, cached GETs, cache invalidation.
//!
//! Invariants: a request is resolved to a configured API and passes `prepare` (capabilities,
//! path rules, tenant fields) before anything else happens — before a cache lookup too, so a
//! plugin without the grant gets `Denied`, never cached data. An unknown API name is denied
//! without listing the configured ones.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use http::HeaderValue;
use tokio::time::Instant;

use super::{
    ApiError, ApiInitError, ApiRequest, ApiResponse, CallContext,
    auth::TokenSource,
    breaker::Breaker,
    cache::{self, Cache, Lookup},
    call,
    observe::{self, Call},
    pacing::{Pacer, shared::SharedBudget},
    prepare::{self, Prepared},
};
use crate::{
    config::ApiConfig,
    ids::{ApiName, TenantId},
};

/// Shared by all clones of `ApiClient`.
pub(super) struct Inner {
    /// One client for every API: connection pools are per origin inside it. Redirects off.
    pub(super) http: reqwest::Client,
    apis: BTreeMap<ApiName, Api>,
    pub(super) tokens: Arc<dyn TokenSource>,
    /// The rate budgets shared with other replicas (PostgreSQL only).
    pub(super) shared: SharedBudget,
}

/// One configured API and its traffic state.
pub(super) struct Api {
    pub(super) config: ApiConfig,
    pub(super) breaker: Breaker,
    pub(super) pacer: Pacer,
    pub(super) cache: Cache,
}

impl Inner {
    pub(super) fn new(
        apis: &BTreeMap<ApiName, ApiConfig>,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Inner, ApiInitError> {
        let http = reqwest::Client::builder()
            // A 3xx could point anywhere; following it would escape the configured origin.
            .redirect(reqwest::redirect::Policy::none())
            .use_rustls_tls()
            .user_agent(concat!("wasmhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut loaded = BTreeMap::new();
        for (name, config) in apis {
            if let Some((prefix, _)) = config
                .versions
                .iter()
                .find(|(_, value)| HeaderValue::from_str(value).is_err())
            {
                return Err(ApiInitError::InvalidVersion {
                    api: name.clone(),
                    prefix: prefix.clone(),
                });
            }
            loaded.insert(
                name.clone(),
                Api {
                    breaker: Breaker::new(name.clone(), config.breaker.clone()),
                    pacer: Pacer::new(name.clone(), config.rate_limit.clone()),
                    cache: Cache::new(config.cache_max),
                    config: config.clone(),
                },
            );
        }
        Ok(Inner {
            http,
            apis: loaded,
            tokens,
            shared: SharedBudget::default(),
        })
    }

    pub(super) fn api_names(&self) -> Vec<&str> {
        self.apis.keys().map(ApiName::as_str).collect()
    }

    /// The configured API `name`, if any.
    pub(super) fn api(&self, name: &ApiName) -> Option<&Api> {
        self.apis.get(name)
    }

    pub(super) async fn send(
        &self,
        ctx: &CallContext,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let (api, prepared) = self.resolve(ctx, req)?;
        call::run(self, api, ctx, req, &prepared).await
    }

    /// A GET through the reference-data cache: capability check, then lookup, then (on a miss)
    /// an ordinary send whose 2xx answer is kept for the matching rule's TTL. A GET no cache
    /// rule covers is sent uncached.
    pub(super) async fn get_cached(
        &self,
        ctx: &CallContext,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let (api, prepared) = self.resolve(ctx, req)?;
        let call = call_of(ctx, api.config.name.as_str(), req, &prepared.template);
        if req.method != http::Method::GET {
            let error = ApiError::Denied(format!(
                "only GET answers can be cached; send {} requests with `send`",
                req.method
            ));
            observe::ended_unsent(call, 0, &error);
            return Err(error);
        }
        let Some((rule_index, rule)) = api.config.cache_rule(&prepared.relative) else {
            observe::cache_lookup(call, "bypass");
            return call::run(self, api, ctx, req, &prepared).await;
        };
        let key = cache::Key {
            rule: rule_index,
            request: cache_key(&api.config, &prepared),
        };
        if let Lookup::Hit(response) = api.cache.get(&ctx.tenant, &key, Instant::now()) {
            observe::cache_lookup(call, "hit");
            return Ok(response);
        }
        observe::cache_lookup(call, "miss");
        let response = call::run(self, api, ctx, req, &prepared).await?;
        let evicted = api
            .cache
            .put(&ctx.tenant, key, response.clone(), rule.ttl, Instant::now());
        observe::cache_stored(call.api, api.cache.bytes(), evicted);
        Ok(response)
    }

    /// Drops `tenant`'s cached answers of every rule of `api` that lists `event_kind`.
    pub(super) fn invalidate(&self, api: &ApiName, tenant: &TenantId, event_kind: &str) -> usize {
        let Some(api) = self.apis.get(api) else {
            return 0;
        };
        let rules: Vec<usize> = api
            .config
            .cache
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.invalidate_on.iter().any(|k| k == event_kind))
            .map(|(i, _)| i)
            .collect();
        if rules.is_empty() {
            return 0;
        }
        let dropped = api.cache.invalidate(tenant, &rules);
        observe::cache_invalidated(api.config.name.as_str(), event_kind, dropped);
        dropped
    }

    /// Forgets everything kept for `tenant` on `api`: cached answers and pacing state.
    pub(super) fn forget_tenant(&self, api: &ApiName, tenant: &TenantId) {
        if let Some(api) = self.apis.get(api) {
            let dropped = api.cache.forget(tenant);
            api.pacer.forget(tenant);
            observe::cache_invalidated(api.config.name.as_str(), "forget", dropped);
        }
    }

    /// How long `tenant` cannot call `api` because the API said so (see `ApiClient`).
    pub(super) fn upstream_wait(&self, api: &ApiName, tenant: &TenantId) -> Option<Duration> {
        self.apis.get(api)?.pacer.upstream_wait(tenant)
    }

    /// Finds the API and runs every check; a refusal is logged and returned as `Denied`.
    fn resolve(&self, ctx: &CallContext, req: &ApiRequest) -> Result<(&Api, Prepared), ApiError> {
        let Some(api) = self.apis.get(&req.api) else {
            // The configured names are not listed: a plugin learns only the APIs it was granted.
            let error = ApiError::Denied(format!(
                "unknown api `{}`: the host configures no API of that name",
                req.api.as_str().chars().take(64).collect::<String>()
            ));
            observe::ended_unsent(
                call_of(ctx, "unknown", req, observe::NO_TEMPLATE),
                0,
                &error,
            );
            return Err(error);
        };
        match prepare::prepare(&api.config, &ctx.capabilities, &ctx.tenant, req) {
            Ok(mut prepared) => {
                default_list_limit(&api.config, req, &mut prepared);
                Ok((api, prepared))
            }
            Err(reason) => {
                let error = ApiError::Denied(reason);
                observe::ended_unsent(
                    call_of(ctx, api.config.name.as_str(), req, observe::NO_TEMPLATE),
                    0,
                    &error,
                );
                Err(error)
            }
        }
    }
}

/// A GET on a declared list endpoint without a `limit` gets the declared one: the platform
/// guide asks to always bound response sizes.
fn default_list_limit(config: &ApiConfig, req: &ApiRequest, prepared: &mut Prepared) {
    if req.method != http::Method::GET || req.query.iter().any(|(k, _)| k == "limit") {
        return;
    }
    if let Some(limit) = config.list_limit(&prepared.relative) {
        prepared
            .url
            .query_pairs_mut()
            .append_pair("limit", &limit.to_string());
    }
}

/// Method, path and query as sent, the `Version` header and the request headers: everything
/// that can change the answer for one tenant.
fn cache_key(config: &ApiConfig, prepared: &Prepared) -> String {
    let mut key = format!(
        "{} {}?{}\n{}",
        prepared.method,
        prepared.relative,
        prepared.url.query().unwrap_or(""),
        config.version_for(&prepared.relative).unwrap_or("")
    );
    let mut headers: Vec<String> = prepared
        .headers
        .iter()
        .map(|(name, value)| format!("{}: {}", name, String::from_utf8_lossy(value.as_bytes())))
        .collect();
    headers.sort();
    for header in headers {
        key.push('\n');
        key.push_str(&header);
    }
    key
}

/// The fields every log line of a call carries.
pub(super) fn call_of<'a>(
    ctx: &'a CallContext,
    api: &'a str,
    req: &'a ApiRequest,
    template: &'a str,
) -> Call<'a> {
    Call {
        plugin: &ctx.plugin,
        tenant: &ctx.tenant,
        api,
        method: &req.method,
        template,
    }
}
