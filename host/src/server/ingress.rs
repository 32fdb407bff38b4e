//! Integration stub, replaced by the sources branch.
use std::sync::Arc;
/// State.
pub struct IngressState {
    pub sources: Arc<crate::sources::Sources>,
    pub plugins: crate::plugins::SharedPlugins,
    pub store: crate::store::AnyStore,
    pub wake: Arc<tokio::sync::Notify>,
    pub max_body: usize,
    pub body_timeout: std::time::Duration,
    pub max_concurrent: usize,
}
/// Router.
pub fn router(_s: IngressState) -> axum::Router {
    axum::Router::new()
}
