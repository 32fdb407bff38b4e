//! Why the runtime could not start or a plugin could not be loaded. Each variant says what to
//! do about it; none carries secrets (messages come from wasmtime and the component itself).
//!
//! wasmtime's error type is not a `std::error::Error`, so its cause chain is rendered into the
//! message (`{:#}`) rather than kept as a `#[source]`.

/// Why the runtime could not start or a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine, linker or epoch thread could not be set up.
    #[error("plugin runtime setup failed: {0}")]
    Engine(String),
    /// The compile cache folder cannot be used.
    #[error(transparent)]
    Cache(#[from] super::CacheError),
    /// The bytes are not a valid component (or not a component at all).
    #[error("compile failed: {0}")]
    Compile(String),
    /// The component imports something the host does not provide to plugins.
    #[error("import `{import}` is not allowed: {reason}")]
    RefusedImport {
        /// The import's full name, e.g. `wasi:http/outgoing-handler@0.2.0`.
        import: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The component has no `handle` export.
    #[error(
        "the component does not export `handle`; build it against the `wasmhook:plugin` world \
         (with the wasmhook SDK, `export!` your handler)"
    )]
    MissingHandle,
    /// The component's imports or `handle` do not match the host's `wasmhook:plugin` world.
    #[error("the component does not match the wasmhook:plugin world: {0}")]
    WrongWorld(String),
}
