//! hostile: a test plugin that does one bad (or harmless) thing, picked by its manifest's
//! `[config] mode`. The host's sandbox and limit tests install it with a manifest per case.
//!
//! Modes and their config keys:
//!
//! | mode | does | returns |
//! |---|---|---|
//! | `loop` | spins forever | never |
//! | `sleep` | sleeps 60 s through WASI clocks | ok, if it ever wakes |
//! | `hang-api` | `GET /hang` on api `fake` | the API's answer (`?`) |
//! | `alloc` | allocates and touches 1 MiB chunks forever | never (traps past the cap) |
//! | `stack` | recurses without bound | never (traps) |
//! | `log-spam` | 10 MiB through the `log` import, 10 MiB through stdout | ok |
//! | `read-file` | reads `/etc/passwd`, lists `/` | fail if either worked |
//! | `read-env` | reads the environment and variable `env_name` | fail if any is visible |
//! | `socket` | TCP connect to `addr` | fail if it connects |
//! | `kv-write` | sets `key` = `value` | ok |
//! | `kv-read` | reads `key` | fail `visible: <value>` if present |
//! | `kv-probe` | reads `key`; if absent, writes the event's tenant under it | fail `visible: <value>` if present |
//! | `denied-path` | `GET <path>` on api `fake` | ok only if denied |
//! | `ok` | nothing | ok |
//! | `echo` | logs the event kind and tenant | ok |
//! | `slow` | sleeps `ms` milliseconds (default 1000), then `POST /slow/<event id>` on api `fake` | ok |
//! | `record` | `POST /record` on api `fake` with `{event, attempt}`; the first attempt of an event whose id ends in `-retry` then asks to retry after 300 ms | ok, or retry |
//!
//! Failure reasons never include environment values or file contents: only names and sizes.

use std::{hint::black_box, io::Write, time::Duration};

use wasmhook_sdk::{
    Delivery, Event, Handler, HandlerError, api, config, info, kv,
    log::{self, Level},
    warn,
};

const MIB: usize = 1 << 20;
/// Bytes pushed through each of the log import and stdout by `log-spam`.
const SPAM_BYTES: usize = 10 * MIB;
/// One spam line, newline included on stdout.
const SPAM_LINE: usize = 1024;

struct Hostile;

impl Handler for Hostile {
    fn handle(event: Event, delivery: Delivery) -> Result<(), HandlerError> {
        let mode = config::require("mode")?;
        match mode.as_str() {
            "loop" => spin(),
            "sleep" => sleep(),
            "hang-api" => hang_api(),
            "alloc" => alloc(),
            "stack" => stack(),
            "log-spam" => log_spam(),
            "read-file" => read_file(),
            "read-env" => read_env(),
            "socket" => socket(),
            "kv-write" => kv_write(),
            "kv-read" => kv_read(),
            "kv-probe" => kv_probe(&event),
            "denied-path" => denied_path(),
            "ok" => Ok(()),
            "echo" => echo(&event),
            "slow" => slow(&event),
            "record" => record(&event, &delivery),
            other => Err(HandlerError::fail(format!("unknown mode {other:?}"))),
        }
    }
}

wasmhook_sdk::export!(Hostile);

/// Sleeps `ms` (config) and then makes one side-effecting call, so a test can tell a plugin
/// that is still running from one that finished, and count runs at the fake.
fn slow(event: &Event) -> Result<(), HandlerError> {
    let ms: u64 = config::get("ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1000);
    std::thread::sleep(Duration::from_millis(ms));
    api::post("fake", format!("/slow/{}", event.id())).send()?;
    Ok(())
}

/// Records the order in which deliveries run at the fake (`POST /record`), and makes the first
/// attempt of an event whose id ends in `-retry` fail with a retry, so ordering can be watched
/// while one delivery waits for its retry.
fn record(event: &Event, delivery: &Delivery) -> Result<(), HandlerError> {
    let body = format!(
        "{{\"event\":\"{}\",\"attempt\":{}}}",
        event.id(),
        delivery.attempt()
    );
    api::post("fake", "/record").json_text(body).send()?;
    if event.id().ends_with("-retry") && delivery.attempt() == 1 {
        return Err(HandlerError::retry_after(
            "asked to retry once",
            Duration::from_millis(300),
        ));
    }
    Ok(())
}

/// Spins until the host's deadline interrupts it. `black_box` keeps the loop real work.
fn spin() -> Result<(), HandlerError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Blocks in `wasi:clocks` for a minute: the deadline must cover waiting in WASI, not just
/// running guest code.
fn sleep() -> Result<(), HandlerError> {
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// Waits on an API call the fake never answers: the deadline must cover host calls.
fn hang_api() -> Result<(), HandlerError> {
    api::get("fake", "/hang").send()?;
    Ok(())
}

/// Grows memory 1 MiB at a time and writes to every page so nothing stays lazily unmapped.
/// Past the manifest's cap the allocation fails and the infallible `Vec` aborts (a trap).
fn alloc() -> Result<(), HandlerError> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; MIB];
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        chunks.push(black_box(chunk));
    }
}

/// Recurses until the stack runs out.
fn stack() -> Result<(), HandlerError> {
    let depth = recurse(0);
    Err(HandlerError::fail(format!(
        "recursion ended at depth {depth}"
    )))
}

/// Each frame keeps a buffer alive across the recursive call and uses it after, so the call
/// cannot become a loop; `black_box` hides the values from the optimiser. The depth check only
/// keeps the compiler from calling the recursion unconditional: it is never reached.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let mut frame = [0u8; 256];
    frame[usize::try_from(depth % 256).unwrap_or(0)] = 1;
    let frame = black_box(frame);
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(u64::from(frame[0]))
}

/// 10 MiB through the log import, then 10 MiB through stdout. Write errors on stdout are
/// ignored (`println!` would panic on them): the point is to push the bytes, and a host that
/// closes the stream past its cap is behaving correctly.
fn log_spam() -> Result<(), HandlerError> {
    let line = "x".repeat(SPAM_LINE - 1);
    for _ in 0..SPAM_BYTES / SPAM_LINE {
        log::write(Level::Info, &line, &[]);
    }
    let mut out = std::io::stdout().lock();
    for _ in 0..SPAM_BYTES / SPAM_LINE {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    Ok(())
}

/// The sandbox grants no preopened directories: both reads must fail.
fn read_file() -> Result<(), HandlerError> {
    let mut visible = Vec::new();
    match std::fs::read("/etc/passwd") {
        Ok(bytes) => visible.push(format!("/etc/passwd ({} bytes)", bytes.len())),
        Err(e) => info!("reading /etc/passwd failed"; "error" => e),
    }
    match std::fs::read_dir("/") {
        Ok(entries) => visible.push(format!("listing of / ({} entries)", entries.count())),
        Err(e) => info!("listing / failed"; "error" => e),
    }
    verdict(visible)
}

/// The sandbox grants no environment: no variable may be visible.
fn read_env() -> Result<(), HandlerError> {
    let mut visible: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    if let Some(name) = config::get("env_name")
        && std::env::var_os(&name).is_some()
        && !visible.contains(&name)
    {
        visible.push(name);
    }
    info!("environment read"; "visible" => visible.len());
    verdict(visible)
}

/// The sandbox denies sockets: the connect must fail.
fn socket() -> Result<(), HandlerError> {
    let addr = config::require("addr")?;
    match std::net::TcpStream::connect(addr.as_str()) {
        Ok(_) => Err(HandlerError::fail(format!("visible: connected to {addr}"))),
        Err(e) => {
            info!("connect failed"; "addr" => addr, "error" => e);
            Ok(())
        }
    }
}

/// Writes config `key` = config `value` into this plugin's kv scope.
fn kv_write() -> Result<(), HandlerError> {
    let key = config::require("key")?;
    let value = config::require("value")?;
    kv::set(&key, value.as_bytes())?;
    Ok(())
}

/// Reads config `key`: used to prove another plugin's or tenant's value is invisible.
fn kv_read() -> Result<(), HandlerError> {
    let key = config::require("key")?;
    match kv::get(&key)? {
        Some(value) => Err(HandlerError::fail(format!(
            "visible: {}",
            String::from_utf8_lossy(&value)
        ))),
        None => Ok(()),
    }
}

/// Reads `key`; fails with what it saw if anything was there, else writes the event's tenant, so
/// a second event of the same tenant sees it (the control) and other scopes must not.
fn kv_probe(event: &Event) -> Result<(), HandlerError> {
    kv_read()?;
    let key = config::require("key")?;
    kv::set(&key, event.tenant().as_bytes())?;
    Ok(())
}

/// Calls config `path` on api `fake`; the host must refuse it before sending anything.
fn denied_path() -> Result<(), HandlerError> {
    let path = config::require("path")?;
    match api::get("fake", path.as_str()).send() {
        Err(api::Error::Denied(rule)) => {
            info!("denied as expected"; "path" => path, "rule" => rule);
            Ok(())
        }
        Ok(response) => Err(HandlerError::fail(format!(
            "{path} was sent: status {}",
            response.status()
        ))),
        Err(other) => Err(HandlerError::fail(format!(
            "{path}: expected denied, got {other}"
        ))),
    }
}

/// Logs what the host delivered, for routing and scoping tests.
fn echo(event: &Event) -> Result<(), HandlerError> {
    info!("echo"; "kind" => event.kind(), "tenant" => event.tenant(), "source" => event.source());
    Ok(())
}

/// Ok when nothing leaked; otherwise fail naming what was visible.
fn verdict(visible: Vec<String>) -> Result<(), HandlerError> {
    if visible.is_empty() {
        return Ok(());
    }
    warn!("sandbox leak"; "visible" => visible.join(", "));
    Err(HandlerError::fail(format!(
        "visible: {}",
        visible.join(", ")
    )))
}
