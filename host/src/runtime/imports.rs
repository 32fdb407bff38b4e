//! What a component may import and must export, checked at load before anything is linked, so
//! a refusal names the offending import instead of surfacing as a linker error.
//!
//! Allowed imports: the WASI 0.2 interfaces the host links (`wasi:io`, `wasi:clocks`,
//! `wasi:random`, `wasi:cli`, `wasi:filesystem`, `wasi:sockets`, any `0.2.x`, because guest
//! toolchains import them even when unused; they grant nothing), and `wasmhook:plugin/*` at any
//! `0.1.x` (wasmtime's linker matches semver-compatible versions, so a plugin built against
//! 0.1.0 links against a 0.1.y host). Anything else, `wasi:http` included, is refused: plugins
//! reach the network only through the host's `api` import.
//!
//! Required export: a function `handle`. Its exact type is checked afterwards by the generated
//! bindings (`PluginPre::new`).

use wasmtime::{
    Engine,
    component::{Component, types::ComponentItem},
};

use super::RuntimeError;

/// WASI packages the linker provides.
const WASI_PACKAGES: &[&str] = &["io", "clocks", "random", "cli", "filesystem", "sockets"];
/// The semver track of WASI the host links.
const WASI_TRACK: &str = "0.2.";
/// The semver track of the plugin contract.
const PLUGIN_TRACK: &str = "0.1.";

/// Refuses a component that imports anything outside the allowed set or lacks `handle`.
pub fn check(engine: &Engine, component: &Component) -> Result<(), RuntimeError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if let Err(reason) = check_import(name) {
            return Err(RuntimeError::RefusedImport {
                import: name.to_string(),
                reason,
            });
        }
    }
    match ty.get_export(engine, "handle") {
        Some(export) if matches!(export.ty, ComponentItem::ComponentFunc(_)) => Ok(()),
        Some(_) => Err(RuntimeError::WrongWorld(
            "the export `handle` is not a function; build the plugin against the \
             `wasmhook:plugin` world"
                .into(),
        )),
        None => Err(RuntimeError::MissingHandle),
    }
}

/// Whether one import name is allowed; the error says why not.
fn check_import(name: &str) -> Result<(), String> {
    let Some((path, version)) = name.split_once('@') else {
        return Err("unversioned imports are not provided by the host".into());
    };
    let Some((namespace, rest)) = path.split_once(':') else {
        return Err("only `wasi:*` 0.2 and `wasmhook:plugin/*` 0.1 imports are provided".into());
    };
    let package = rest.split('/').next().unwrap_or_default();
    match (namespace, package) {
        ("wasi", pkg) if WASI_PACKAGES.contains(&pkg) => {
            if version.starts_with(WASI_TRACK) {
                Ok(())
            } else {
                Err(format!(
                    "the host provides WASI {WASI_TRACK}x, not {version}; build for wasm32-wasip2"
                ))
            }
        }
        ("wasmhook", "plugin") => {
            if version.starts_with(PLUGIN_TRACK) {
                Ok(())
            } else {
                Err(format!(
                    "this host speaks wasmhook:plugin {PLUGIN_TRACK}x, not {version}; rebuild the \
                     plugin with a matching SDK"
                ))
            }
        }
        ("wasi", _) => Err(
            "plugins may not use this WASI interface; reach APIs through the host's \
             `wasmhook:plugin/api` import"
                .into(),
        ),
        _ => Err("only `wasi:*` 0.2 and `wasmhook:plugin/*` 0.1 imports are provided".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_02_and_plugin_01_are_allowed() {
        for name in [
            "wasi:io/streams@0.2.0",
            "wasi:cli/stdout@0.2.6",
            "wasi:clocks/monotonic-clock@0.2.3",
            "wasi:random/random@0.2.0",
            "wasi:filesystem/preopens@0.2.0",
            "wasi:sockets/tcp@0.2.0",
            "wasmhook:plugin/api@0.1.0",
            "wasmhook:plugin/kv@0.1.7",
        ] {
            assert_eq!(check_import(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for name in [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:cli/stdout@0.3.0",
            "wasi:io/streams",
            "wasmhook:plugin/api@0.2.0",
            "wasmhook:other/api@0.1.0",
            "acme:evil/net@1.0.0",
            "env",
        ] {
            assert!(check_import(name).is_err(), "{name}");
        }
    }
}
