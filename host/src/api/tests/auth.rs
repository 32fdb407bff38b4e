//! The token hook against a scripted fake and a counting token source: a 401 gets exactly one
//! refresh and one replay, a second 401 is final, a 403 is never refreshed nor retried.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    fake::{Fake, Reply, apis, config, ctx, get},
    metrics::Recorded,
};
use crate::{
    api::{
        ApiClient, ApiError, RetryMode,
        auth::{AuthError, RefreshFuture, TokenFuture, TokenSource},
    },
    ids::{ApiName, TenantId},
    secret::Secret,
};

/// Hands out `current`; a refresh returns the next of `refresh_errors`, else the next of
/// `next_tokens`, else `Rejected`. Records every call.
struct Counting {
    current: Mutex<String>,
    refresh_errors: Mutex<Vec<AuthError>>,
    next_tokens: Mutex<Vec<&'static str>>,
    token_calls: Mutex<u32>,
    refreshed: Mutex<Vec<(String, String)>>,
}

impl Counting {
    fn new(first: &str, next_tokens: Vec<&'static str>) -> Arc<Counting> {
        Arc::new(Counting {
            current: Mutex::new(first.into()),
            refresh_errors: Mutex::new(vec![]),
            next_tokens: Mutex::new(next_tokens),
            token_calls: Mutex::new(0),
            refreshed: Mutex::new(vec![]),
        })
    }

    fn failing_with(error: AuthError) -> Arc<Counting> {
        let source = Counting::new("t1", vec![]);
        source.refresh_errors.lock().unwrap().push(error);
        source
    }

    fn refreshes(&self) -> Vec<(String, String)> {
        self.refreshed.lock().unwrap().clone()
    }
}

impl TokenSource for Counting {
    fn token<'a>(&'a self, _api: &'a ApiName, _tenant: &'a TenantId) -> TokenFuture<'a> {
        *self.token_calls.lock().unwrap() += 1;
        let token = Secret::new(self.current.lock().unwrap().clone());
        Box::pin(async move { Ok(Some(token)) })
    }

    fn refresh<'a>(
        &'a self,
        _api: &'a ApiName,
        tenant: &'a TenantId,
        rejected: &'a Secret,
    ) -> RefreshFuture<'a> {
        self.refreshed
            .lock()
            .unwrap()
            .push((tenant.to_string(), rejected.expose().to_string()));
        let result = match self.refresh_errors.lock().unwrap().pop() {
            Some(error) => Err(error),
            None => match self.next_tokens.lock().unwrap().pop() {
                Some(token) => {
                    *self.current.lock().unwrap() = token.into();
                    Ok(Secret::new(token))
                }
                None => Err(AuthError::Rejected {
                    api: ApiName::new("hl"),
                    tenant: tenant.clone(),
                }),
            },
        };
        Box::pin(async move { result })
    }
}

fn client_with(fake: &Fake, tokens: Arc<Counting>) -> ApiClient {
    ApiClient::with_token_source(&apis(config(fake.base(""), None)), tokens).unwrap()
}

fn bearer(fake: &Fake) -> Vec<String> {
    fake.seen()
        .iter()
        .map(|s| s.headers["authorization"].to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_401_gets_one_refresh_and_one_replay() {
    let fake = Fake::start(vec![Reply::status(401)]).await;
    let tokens = Counting::new("t1", vec!["t2"]);
    let client = client_with(&fake, Arc::clone(&tokens));
    let ok = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(bearer(&fake), ["Bearer t1", "Bearer t2"]);
    assert_eq!(tokens.refreshes(), [("loc1".to_string(), "t1".to_string())]);
    assert_eq!(
        *tokens.token_calls.lock().unwrap(),
        1,
        "one lookup per call"
    );
    // The replay is the same call: same idempotency value.
    let seen = fake.seen();
    assert_eq!(
        seen[0].headers["idempotency-key"],
        seen[1].headers["idempotency-key"]
    );
}

#[tokio::test]
async fn a_second_401_is_final_and_counted() {
    let recorded = Recorded::default();
    let _metrics = recorded.install();
    let fake = Fake::start(vec![Reply::status(401), Reply::status(401)]).await;
    let tokens = Counting::new("t1", vec!["t2", "t3"]);
    let client = client_with(&fake, Arc::clone(&tokens));
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Auth {
            status: 401,
            body: b"{\"status\":401}".to_vec()
        }
    );
    assert_eq!(fake.count(), 2);
    assert_eq!(tokens.refreshes().len(), 1, "never a refresh loop");
    assert_eq!(
        recorded.get("wasmhook_api_auth_failures_total", &[("api", "hl")]),
        1.0
    );
}

#[tokio::test]
async fn a_403_is_neither_refreshed_nor_retried() {
    let recorded = Recorded::default();
    let _metrics = recorded.install();
    let fake = Fake::start(vec![Reply::status(403)]).await;
    let tokens = Counting::new("t1", vec!["t2"]);
    let client = client_with(&fake, Arc::clone(&tokens));
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Auth { status: 403, .. }), "{err:?}");
    assert_eq!(fake.count(), 1);
    assert!(tokens.refreshes().is_empty());
    assert_eq!(
        recorded.get("wasmhook_api_auth_failures_total", &[("api", "hl")]),
        1.0
    );
}

#[tokio::test]
async fn a_failed_refresh_returns_the_401_without_a_replay() {
    let fake = Fake::start(vec![Reply::status(401)]).await;
    let tokens = Counting::new("t1", vec![]);
    let client = client_with(&fake, Arc::clone(&tokens));
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Auth {
            status: 401,
            body: b"{\"status\":401}".to_vec()
        }
    );
    assert_eq!(fake.count(), 1);
    assert_eq!(tokens.refreshes().len(), 1);
}

#[tokio::test]
async fn a_401_is_replayed_even_for_retry_never() {
    // A 401 means the request was not processed, so the replay cannot double an effect.
    let fake = Fake::start(vec![Reply::status(401)]).await;
    let tokens = Counting::new("t1", vec!["t2"]);
    let client = client_with(&fake, tokens);
    let mut req = get("/contacts/c1");
    req.retry = RetryMode::Never;
    client
        .send(&ctx(Duration::from_secs(10)), req)
        .await
        .unwrap();
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn token_source_errors_reach_the_plugin_as_api_errors() {
    let fake = Fake::start(vec![Reply::status(401), Reply::status(401)]).await;
    let pending = Counting::failing_with(AuthError::Pending {
        retry_after: Duration::from_secs(5),
    });
    let client = client_with(&fake, pending);
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::BudgetExhausted {
            retry_after_ms: 5000
        }
    );

    let down = Counting::failing_with(AuthError::Unavailable("token endpoint down".into()));
    let client = client_with(&fake, down);
    let err = client
        .send(&ctx(Duration::from_secs(10)), get("/contacts/c1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(m) if m.contains("token endpoint down")));
    assert_eq!(fake.count(), 2);
}
