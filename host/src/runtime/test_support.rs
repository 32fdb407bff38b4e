//! Test helpers: hand-written components in the component-model text format, a runtime with a
//! small pool, and services backed by a temporary store.
//!
//! The components have the shape real guest toolchains produce: they import the
//! `wasmhook:plugin` types and `log`, the WASI clock, poll, streams and stdout interfaces, keep
//! their memory in one core module and a second memory in another, and export `handle`. A test
//! chooses only the body of the core `handle` function, which sees the flattened parameters
//! (`$kind`, `$kind_len`, `$key`, `$attempt`, ...) and returns a pointer to its
//! `result<_, handler-error>` at address 64: discriminant at +0, the handler-error case at +8,
//! its string (ptr, len) at +16/+20, the `after-ms` option at +24/+32. Static strings live at
//! fixed addresses (see [`DATA`]).

use std::{collections::BTreeMap, path::Path, time::Duration};

use super::{DeliveryInfo, EngineOptions, Runtime, Services};
use crate::{
    api::ApiClient,
    config::StoreUrl,
    ids::{DeliveryId, EventId, SourceName, TenantId},
    plugins::Manifest,
    store::{AnyStore, StoredEvent},
};

/// Static strings of the test components: (address, text).
pub const DATA: &[(u32, &str)] = &[
    (128, "try later"),
    (160, "hello from wasm"),
    (192, "printed line\n"),
    (224, "contact"),
    (240, "c-1"),
];

/// `handle` body: return `ok`.
pub const OK: &str = "(i32.store8 (i32.const 64) (i32.const 0)) (i32.const 64)";

/// `handle` body: `fail(kind)`, echoing the event's kind back.
pub const FAIL_WITH_KIND: &str = "
    (i32.store8 (i32.const 64) (i32.const 1))
    (i32.store8 (i32.const 72) (i32.const 1))
    (i32.store (i32.const 80) (local.get $kind))
    (i32.store (i32.const 84) (local.get $kind_len))
    (i32.const 64)";

/// `handle` body: `retry({reason: idempotency-key, after-ms: attempt * 1000})`.
pub const RETRY_WITH_KEY: &str = "
    (i32.store8 (i32.const 64) (i32.const 1))
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (local.get $key))
    (i32.store (i32.const 84) (local.get $key_len))
    (i32.store8 (i32.const 88) (i32.const 1))
    (i64.store (i32.const 96) (i64.mul (i64.extend_i32_u (local.get $attempt)) (i64.const 1000)))
    (i32.const 64)";

/// A component whose core `handle` runs `body`.
pub fn component(body: &str) -> Vec<u8> {
    compile(&wat(body, "", HANDLE_EXPORT))
}

/// Like [`component`], with extra component-level imports (e.g. a forbidden interface).
pub fn component_importing(extra_imports: &str, body: &str) -> Vec<u8> {
    compile(&wat(body, extra_imports, HANDLE_EXPORT))
}

/// Like [`component`], but importing the `wasmhook:plugin` interfaces at `version`.
pub fn component_at_version(version: &str, body: &str) -> Vec<u8> {
    let text = wat(body, "", HANDLE_EXPORT)
        .replace(
            "wasmhook:plugin/types@0.1.0",
            &format!("wasmhook:plugin/types@{version}"),
        )
        .replace(
            "wasmhook:plugin/log@0.1.0",
            &format!("wasmhook:plugin/log@{version}"),
        );
    compile(&text)
}

/// A component whose component-level exports are `exports` instead of the usual `handle`.
pub fn component_exporting(exports: &str) -> Vec<u8> {
    compile(&wat(OK, "", exports))
}

fn compile(text: &str) -> Vec<u8> {
    match wat::parse_str(text) {
        Ok(bytes) => bytes,
        Err(e) => panic!("test component does not parse: {e}\n{text}"),
    }
}

const HANDLE_EXPORT: &str = r#"
  (type $handle-type (func (param "event" $event) (param "delivery" $delivery)
    (result (result (error $handler-error)))))
  (func $handle (type $handle-type)
    (canon lift (core func $main "handle")
      (memory (core memory $mem "memory")) (realloc (core func $main "realloc"))))
  (export "handle" (func $handle))
"#;

fn wat(body: &str, extra_imports: &str, exports: &str) -> String {
    let data: String = DATA
        .iter()
        .map(|(at, text)| format!("(data (i32.const {at}) {text:?})\n"))
        .collect();
    format!(
        r#"
(component $C
  (import "wasmhook:plugin/types@0.1.0" (instance $types
    (type $event (record (field "id" string) (field "source" string) (field "kind" string)
      (field "tenant" string) (field "received-at-ms" u64) (field "payload" string)))
    (export "event" (type (eq $event)))
    (type $delivery (record (field "id" string) (field "attempt" u32)
      (field "idempotency-key" string)))
    (export "delivery" (type (eq $delivery)))
    (type $rr (record (field "reason" string) (field "after-ms" (option u64))))
    (export "retry-request" (type $rr2 (eq $rr)))
    (type $he (variant (case "retry" $rr2) (case "fail" string)))
    (export "handler-error" (type (eq $he)))
  ))
  (alias export $types "event" (type $event))
  (alias export $types "delivery" (type $delivery))
  (alias export $types "handler-error" (type $handler-error))
  (import "wasmhook:plugin/log@0.1.0" (instance $log
    (type $level (enum "trace" "debug" "info" "warn" "error"))
    (export "level" (type $level2 (eq $level)))
    (export "write" (func (param "level" $level2) (param "message" string)
      (param "fields" (list (tuple string string)))))
  ))
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))
  ))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer $C $pollable (type $outer))
    (export "pollable" (type $p (eq $outer)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))
  ))
  (import "wasi:io/error@0.2.0" (instance $err
    (export "error" (type (sub resource)))
  ))
  (alias export $err "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $streams
    (alias outer $C $error (type $outer-error))
    (export "error" (type $e (eq $outer-error)))
    (type $se (variant (case "last-operation-failed" (own $e)) (case "closed")))
    (export "stream-error" (type $se2 (eq $se)))
    (export "output-stream" (type $os (sub resource)))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" (borrow $os)) (param "contents" (list u8))
        (result (result (error $se2)))))
  ))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer $C $output-stream (type $outer-os))
    (export "output-stream" (type $os (eq $outer-os)))
    (export "get-stdout" (func (result (own $os))))
  ))
  {extra_imports}

  (core module $Other
    (memory (export "memory") 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  (core instance $other (instantiate $Other))
  (core module $Memory (memory (export "memory") 1))
  (core instance $mem (instantiate $Memory))

  (core func $log-write (canon lower (func $log "write") (memory (core memory $mem "memory"))))
  (core func $subscribe (canon lower (func $clock "subscribe-duration")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core func $get-stdout (canon lower (func $stdout "get-stdout")))
  (core func $write (canon lower (func $streams "[method]output-stream.blocking-write-and-flush")
    (memory (core memory $mem "memory"))))
  (core instance $host
    (export "memory" (memory $mem "memory"))
    (export "log" (func $log-write))
    (export "grow-other" (func $other "grow"))
    (export "subscribe-duration" (func $subscribe))
    (export "block" (func $block))
    (export "get-stdout" (func $get-stdout))
    (export "write" (func $write)))

  (core module $Main
    (import "host" "memory" (memory 1))
    (import "host" "log" (func $log (param i32 i32 i32 i32 i32)))
    (import "host" "grow-other" (func $grow-other (param i32) (result i32)))
    (import "host" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "host" "block" (func $block (param i32)))
    (import "host" "get-stdout" (func $get-stdout (result i32)))
    (import "host" "write" (func $write (param i32 i32 i32 i32)))
    (global $bump (mut i32) (i32.const 4096))
    {data}
    ;; A bump allocator: enough for the host to pass the event's strings in.
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32)
      (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
      (global.set $bump (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
        (then
          (if (i32.eq
                (memory.grow (i32.add (i32.sub (i32.shr_u (global.get $bump) (i32.const 16))
                  (memory.size)) (i32.const 1)))
                (i32.const -1))
            (then unreachable))))
      (local.get $p))
    (func $recurse (param i32) (result i32)
      (i32.add (call $recurse (local.get 0)) (i32.const 1)))
    (func (export "handle")
      (param $id i32) (param $id_len i32) (param $source i32) (param $source_len i32)
      (param $kind i32) (param $kind_len i32) (param $tenant i32) (param $tenant_len i32)
      (param $received_at i64) (param $payload i32) (param $payload_len i32)
      (param $delivery i32) (param $delivery_len i32) (param $attempt i32)
      (param $key i32) (param $key_len i32)
      (result i32)
      {body})
  )
  (core instance $main (instantiate $Main (with "host" (instance $host))))
  {exports}
)
"#
    )
}

/// Services over a fresh store in `dir` and an API client with no APIs configured.
pub async fn services(dir: &Path) -> Services {
    let store = AnyStore::open(&StoreUrl::Sqlite(dir.join("store.db")))
        .await
        .expect("open the test store");
    let api = ApiClient::new(&BTreeMap::new()).expect("build the api client");
    Services { store, api }
}

/// A runtime with a small instance pool (tests run many runtimes at once).
pub fn runtime(services: Services) -> Runtime {
    let options = EngineOptions {
        pooled_instances: 8,
        ..EngineOptions::default()
    };
    Runtime::with_options(services, options).expect("build the runtime")
}

/// The manifest `name.toml` with `extra` TOML lines, subscribed to everything.
pub fn manifest(name: &str, extra: &str) -> Manifest {
    let path = format!("{name}.toml");
    Manifest::parse(
        Path::new(&path),
        &format!("name = \"{name}\"\nevents = [\"*\"]\n{extra}"),
    )
    .expect("valid test manifest")
}

/// A stored HighLevel `ContactCreate` event for tenant `loc-1`.
pub fn event() -> StoredEvent {
    StoredEvent {
        source: SourceName::new("highlevel"),
        id: EventId::new("evt-1"),
        kind: "ContactCreate".into(),
        tenant: TenantId::new("loc-1"),
        received_at_ms: 1_700_000_000_000,
        payload: br#"{"type":"ContactCreate","locationId":"loc-1"}"#.to_vec(),
    }
}

/// The first attempt of a delivery.
pub fn delivery() -> DeliveryInfo {
    DeliveryInfo {
        id: DeliveryId::new("dlv-1"),
        attempt: 1,
        idempotency_key: "idem-1".into(),
    }
}

/// Allowed slack between a deadline and the moment the runtime reports it.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(200);

/// The host state of one delivery of plugin `test` (event `evt-1`, tenant `loc-1`, idempotency
/// key `idem-1`) holding `capabilities`, with a 5 s budget: host imports are called on it
/// directly, no guest needed.
pub fn state(
    services: Services,
    capabilities: crate::api::Capabilities,
    config: serde_json::Map<String, serde_json::Value>,
    max_api_calls: u32,
) -> super::state::State {
    use std::sync::Arc;

    use super::state::{DeliveryTags, State, StateParts};
    use crate::ids::PluginName;
    State::new(StateParts {
        tags: Arc::new(DeliveryTags {
            plugin: PluginName::new("test"),
            event_id: EventId::new("evt-1"),
            delivery_id: DeliveryId::new("dlv-1"),
            tenant: TenantId::new("loc-1"),
        }),
        idempotency_key: "idem-1".into(),
        capabilities: Arc::new(capabilities),
        config: Arc::new(config),
        max_api_calls,
        memory: 16 << 20,
        deadline: tokio::time::Instant::now() + Duration::from_secs(5),
        services: Arc::new(services),
    })
}
