//! The runtime end to end with hand-written components: loading checks, every way `handle` can
//! end, the memory cap over several memories, deadlines, and log capture.

use std::time::{Duration, Instant};

use super::{
    Outcome, RuntimeError,
    test_support::{self, DEADLINE_SLACK, FAIL_WITH_KIND, OK, RETRY_WITH_KEY, component},
};

/// A runtime over a fresh store; the directory must outlive the runtime.
async fn setup() -> (tempfile::TempDir, super::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let services = test_support::services(dir.path()).await;
    (dir, test_support::runtime(services))
}

/// Loads `wasm` as plugin `test` with the manifest lines `extra`, and runs it once.
async fn run(runtime: &super::Runtime, extra: &str, wasm: &[u8]) -> super::Invocation {
    let plugin = runtime
        .load(test_support::manifest("test", extra), wasm)
        .expect("the component loads");
    runtime
        .invoke(&plugin, &test_support::event(), &test_support::delivery())
        .await
}

#[tokio::test]
async fn a_plugin_that_returns_ok_succeeds() {
    let (_dir, runtime) = setup().await;
    let wasm = component(OK);
    let plugin = runtime
        .load(test_support::manifest("test", ""), &wasm)
        .unwrap();
    assert_eq!(plugin.sha256.len(), 64);
    assert!(plugin.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    let invocation = runtime
        .invoke(&plugin, &test_support::event(), &test_support::delivery())
        .await;
    assert_eq!(invocation.outcome, Outcome::Succeeded);
    assert_eq!(invocation.api_calls, 0);
    assert!(invocation.logs.is_empty());
    // The same pre-instantiated plugin runs again in a fresh instance.
    let again = runtime
        .invoke(&plugin, &test_support::event(), &test_support::delivery())
        .await;
    assert_eq!(again.outcome, Outcome::Succeeded);
}

#[tokio::test]
async fn the_event_reaches_the_guest_and_fail_is_reported() {
    let (_dir, runtime) = setup().await;
    let invocation = run(&runtime, "", &component(FAIL_WITH_KIND)).await;
    assert_eq!(invocation.outcome, Outcome::Fail("ContactCreate".into()));
}

#[tokio::test]
async fn retry_carries_the_reason_and_the_delay() {
    let (_dir, runtime) = setup().await;
    let plugin = runtime
        .load(
            test_support::manifest("test", ""),
            &component(RETRY_WITH_KEY),
        )
        .unwrap();
    let mut delivery = test_support::delivery();
    delivery.attempt = 3;
    let invocation = runtime
        .invoke(&plugin, &test_support::event(), &delivery)
        .await;
    assert_eq!(
        invocation.outcome,
        Outcome::Retry {
            reason: "idem-1".into(),
            after: Some(Duration::from_secs(3)),
        }
    );
}

#[tokio::test]
async fn traps_name_their_cause() {
    let (_dir, runtime) = setup().await;
    let unreachable = run(&runtime, "", &component("unreachable")).await;
    match unreachable.outcome {
        Outcome::Trap(message) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    let overflow = run(
        &runtime,
        "",
        &component("(drop (call $recurse (i32.const 0))) (i32.const 64)"),
    )
    .await;
    match overflow.outcome {
        Outcome::Trap(message) => assert!(message.contains("stack overflow"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn an_infinite_loop_times_out_at_its_deadline() {
    let (_dir, runtime) = setup().await;
    let started = Instant::now();
    let invocation = run(
        &runtime,
        "timeout = \"300ms\"",
        &component("(loop $l (br $l)) (i32.const 64)"),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(invocation.outcome, Outcome::Timeout);
    assert!(
        elapsed < Duration::from_millis(300) + DEADLINE_SLACK,
        "took {elapsed:?}"
    );
    assert!(invocation.duration >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_plugin_sleeping_in_the_host_times_out_too() {
    let (_dir, runtime) = setup().await;
    // Blocks on a WASI pollable for a minute: epochs cannot interrupt a host wait, the tokio
    // timeout must.
    let sleep = "(call $block (call $subscribe-duration (i64.const 60000000000))) (i32.const 64)";
    let started = Instant::now();
    let invocation = run(&runtime, "timeout = \"300ms\"", &component(sleep)).await;
    assert_eq!(invocation.outcome, Outcome::Timeout);
    assert!(started.elapsed() < Duration::from_millis(300) + DEADLINE_SLACK);
}

/// Grows the main memory by 20 pages, then the other module's memory by 20 pages: each memory
/// ends at 21 pages (1.3 MiB), both together at 42 pages (2.6 MiB).
const GROW_BOTH: &str = "
    (if (i32.eq (memory.grow (i32.const 20)) (i32.const -1)) (then unreachable))
    (if (i32.eq (call $grow-other (i32.const 20)) (i32.const -1)) (then unreachable))
    (i32.store8 (i32.const 64) (i32.const 0))
    (i32.const 64)";

#[tokio::test]
async fn the_memory_cap_covers_all_memories_together() {
    let (_dir, runtime) = setup().await;
    let wasm = component(GROW_BOTH);
    // 2 MiB: each memory alone fits, both together do not.
    let capped = run(&runtime, "memory = \"2MiB\"", &wasm).await;
    match capped.outcome {
        Outcome::MemoryExceeded(message) => assert!(message.contains("2097152"), "{message}"),
        other => panic!("expected MemoryExceeded, got {other:?}"),
    }
    // With room for both, the same component succeeds, and reports what both memories hold.
    let roomy = run(&runtime, "memory = \"4MiB\"", &wasm).await;
    assert_eq!(roomy.outcome, Outcome::Succeeded);
    assert_eq!(roomy.memory_bytes, 42 * 65536);
}

#[tokio::test]
async fn log_lines_and_stdout_are_captured() {
    let (_dir, runtime) = setup().await;
    let body = "
        (call $log (i32.const 2) (i32.const 160) (i32.const 15) (i32.const 512) (i32.const 1))
        (call $write (call $get-stdout) (i32.const 192) (i32.const 13) (i32.const 256))
        (i32.store8 (i32.const 64) (i32.const 0))
        (i32.const 64)";
    // The `fields` list at 512: one (key, value) tuple of (ptr, len) pairs.
    let fields = "
        (i32.store (i32.const 512) (i32.const 224)) (i32.store (i32.const 516) (i32.const 7))
        (i32.store (i32.const 520) (i32.const 240)) (i32.store (i32.const 524) (i32.const 3))";
    let invocation = run(&runtime, "", &component(&format!("{fields} {body}"))).await;
    assert_eq!(invocation.outcome, Outcome::Succeeded);
    let lines: Vec<_> = invocation
        .logs
        .iter()
        .map(|l| (l.level.as_str(), l.message.as_str(), l.fields.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                "info",
                "hello from wasm",
                vec![("contact".to_string(), "c-1".to_string())]
            ),
            ("stdout", "printed line", vec![]),
        ]
    );
}

#[tokio::test]
async fn plugins_built_against_another_0_1_release_link() {
    // wasmtime's linker matches semver-compatible imports: any 0.1.x against the host's 0.1.y.
    let (_dir, runtime) = setup().await;
    let log_line = "
        (call $log (i32.const 2) (i32.const 160) (i32.const 15) (i32.const 0) (i32.const 0))
        (i32.store8 (i32.const 64) (i32.const 0))
        (i32.const 64)";
    let wasm = test_support::component_at_version("0.1.7", log_line);
    let invocation = run(&runtime, "", &wasm).await;
    assert_eq!(invocation.outcome, Outcome::Succeeded);
    assert_eq!(invocation.logs[0].message, "hello from wasm");

    let next_minor = test_support::component_at_version("0.2.0", OK);
    let err = runtime
        .load(test_support::manifest("test", ""), &next_minor)
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::RefusedImport { import, .. } if import.ends_with("@0.2.0")),
        "{err}"
    );
}

#[tokio::test]
async fn a_forbidden_import_is_refused_by_name() {
    let (_dir, runtime) = setup().await;
    let http = r#"(import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func))))"#;
    let wasm = test_support::component_importing(http, OK);
    let err = runtime
        .load(test_support::manifest("test", ""), &wasm)
        .unwrap_err();
    match &err {
        RuntimeError::RefusedImport { import, .. } => {
            assert_eq!(import, "wasi:http/outgoing-handler@0.2.0")
        }
        other => panic!("expected RefusedImport, got {other:?}"),
    }
    assert!(err.to_string().contains("wasi:http/outgoing-handler@0.2.0"));
}

#[tokio::test]
async fn a_component_without_handle_is_refused() {
    let (_dir, runtime) = setup().await;
    let wasm = test_support::component_exporting("");
    let err = runtime
        .load(test_support::manifest("test", ""), &wasm)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::MissingHandle), "{err}");
    assert!(err.to_string().contains("handle"));
}

#[tokio::test]
async fn a_handle_of_the_wrong_type_is_refused() {
    let (_dir, runtime) = setup().await;
    let exports = r#"
        (func $wrong (result u32) (canon lift (core func $main "realloc")))
        (export "handle" (func $wrong))"#;
    // `realloc` takes four i32s, so lift it with a matching (wrong for `handle`) type.
    let exports = exports.replace(
        "(func $wrong (result u32)",
        "(func $wrong (param \"a\" u32) (param \"b\" u32) (param \"c\" u32) (param \"d\" u32) (result u32)",
    );
    let wasm = test_support::component_exporting(&exports);
    let err = runtime
        .load(test_support::manifest("test", ""), &wasm)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::WrongWorld(_)), "{err}");
}

#[tokio::test]
async fn garbage_and_core_modules_fail_to_compile() {
    let (_dir, runtime) = setup().await;
    let err = runtime
        .load(test_support::manifest("test", ""), b"not wasm at all")
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Compile(_)), "{err}");
    assert!(err.to_string().contains("not a WebAssembly file"), "{err}");
    let half_written = &component(OK)[..100];
    let err = runtime
        .load(test_support::manifest("test", ""), half_written)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Compile(_)), "{err}");
    let core = wat::parse_str("(module)").unwrap();
    let err = runtime
        .load(test_support::manifest("test", ""), &core)
        .unwrap_err();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
}

#[tokio::test]
async fn the_runtime_is_usable_from_clones() {
    let (_dir, runtime) = setup().await;
    let plugin = runtime
        .load(test_support::manifest("test", ""), &component(OK))
        .unwrap();
    let clone = runtime.clone();
    drop(runtime);
    let invocation = clone
        .invoke(&plugin, &test_support::event(), &test_support::delivery())
        .await;
    assert_eq!(invocation.outcome, Outcome::Succeeded);
}

/// Host imports called directly on a delivery's state (no guest needed).
mod host_calls {
    use super::*;
    use crate::runtime::{
        bindings::{api, config, kv},
        state::State,
    };

    async fn state(dir: &std::path::Path, max_api_calls: u32) -> State {
        let services = test_support::services(dir).await;
        let manifest = test_support::manifest("test", "[config]\ntag = \"new-lead\"\nmax = 3");
        test_support::state(
            services,
            manifest.capabilities.clone(),
            manifest.config.clone(),
            max_api_calls,
        )
    }

    fn request() -> api::Request {
        api::Request {
            api: "highlevel".into(),
            method: api::Method::Get,
            path: "/contacts/c-1".into(),
            query: vec![],
            body: None,
            retry: None,
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn api_calls_past_the_cap_are_denied_without_reaching_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state(dir.path(), 2).await;
        for n in 1..=2 {
            // No API is configured, so the client answers with an error; what matters is that
            // it was asked, and counted.
            let _ = api::Host::send(&mut state, request()).await;
            assert_eq!(state.api_calls, n);
        }
        match api::Host::send(&mut state, request()).await {
            Err(api::ApiError::Denied(why)) => {
                assert_eq!(why, "max_api_calls (2) reached for this delivery")
            }
            other => panic!("expected denied, got {other:?}"),
        }
        assert_eq!(state.api_calls, 2);
    }

    #[tokio::test]
    async fn kv_refuses_bad_keys_and_values_before_touching_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state(dir.path(), 0).await;
        assert!(matches!(
            kv::Host::get(&mut state, String::new()).await,
            Err(kv::KvError::InvalidKey(_))
        ));
        assert!(matches!(
            kv::Host::set(&mut state, "k".repeat(257), vec![], None).await,
            Err(kv::KvError::InvalidKey(_))
        ));
        assert!(matches!(
            kv::Host::set(&mut state, "k".into(), vec![0; 64 * 1024 + 1], None).await,
            Err(kv::KvError::TooLarge(_))
        ));
        assert!(matches!(
            kv::Host::compare_and_swap(&mut state, "k".into(), None, Some(vec![0; 70_000]), None)
                .await,
            Err(kv::KvError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn config_comes_from_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state(dir.path(), 0).await;
        assert_eq!(
            config::Host::get(&mut state, "tag".into()).await.as_deref(),
            Some("new-lead")
        );
        assert_eq!(
            config::Host::get(&mut state, "max".into()).await.as_deref(),
            Some("3")
        );
        let all: serde_json::Value =
            serde_json::from_str(&config::Host::all(&mut state).await).unwrap();
        assert_eq!(all, serde_json::json!({"tag": "new-lead", "max": 3}));
    }
}
