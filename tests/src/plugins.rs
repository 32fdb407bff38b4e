//! Plugins for the tests, built from source: the Rust example plugins (`example-plugins/`) and
//! the test-only plugins (`tests/plugins/`), compiled for `wasm32-wasip2` into the shared
//! `target/plugins` dir; the Python and JavaScript example plugins, built by
//! `scripts/build-python-plugin` / `scripts/build-js-plugin` (the same commands users run) into
//! `target/plugins/<language>/`; and installed into a plugin folder as `name.wasm` +
//! `name.toml`.
//!
//! Invariants: both Rust workspaces are built at most once per test process (a `OnceLock`), and
//! concurrent test processes are safe because cargo locks the target dir. A Python or JS plugin
//! is rebuilt only when a hash of everything its build reads (its folder, its language's SDK,
//! the WIT, the build script) names no existing output; outputs land through a rename, so
//! concurrent test processes at worst build the same bytes twice. Nothing here is committed as
//! a binary; a failed build panics with the build's full output.

use std::{
    collections::HashMap,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
};

use sha2::{Digest, Sha256};

/// The cargo workspaces holding Rust plugins, relative to the repository root.
const WORKSPACES: [&str; 2] = ["example-plugins", "tests/plugins"];

/// The guest target: its output `.wasm` is already a component.
const TARGET: &str = "wasm32-wasip2";

/// Environment variables that would override the workspaces' `.cargo/config.toml` rustflags
/// (and so drop the small guest stack, and rebuild everything) if the test run inherited them.
const RUSTFLAGS_OVERRIDES: [&str; 3] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
];

/// The repository root (the tests crate is `<repo>/tests`).
pub fn repo_root() -> PathBuf {
    let tests_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_crate.parent().unwrap_or(tests_crate).to_path_buf()
}

/// Where the plugin workspaces build: `<repo>/target/plugins`.
pub fn plugins_target_dir() -> PathBuf {
    repo_root().join("target").join("plugins")
}

/// Where `scripts/prepare` installs the Python and JavaScript toolchains:
/// `WASMHOOK_TOOLCHAINS`, else `toolchains` in `CARGO_TARGET_DIR` or `<repo>/target`.
pub fn toolchains_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMHOOK_TOOLCHAINS") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("toolchains")
}

/// The component built from the Rust plugin crate `name` (e.g. `contact-tagger`, `hostile`),
/// building every plugin workspace first if this process has not yet.
///
/// Panics if a build fails (with cargo's full stderr) or if no crate of that name exists.
pub fn rust_plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out_dir = BUILT.get_or_init(build_all);
    let path = out_dir.join(wasm_file_name(name));
    assert!(
        path.is_file(),
        "no plugin `{name}`: {} does not exist after building {WORKSPACES:?}; built: {:?}",
        path.display(),
        built_plugins(out_dir),
    );
    path
}

/// A language whose plugins are built by a script in `scripts/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptedLang {
    /// componentize-py; the entry module is `app.py`.
    Python,
    /// esbuild + componentize-js; the entry module is `plugin.js`.
    JavaScript,
}

impl ScriptedLang {
    /// The build script, relative to the repository root.
    fn script(self) -> &'static str {
        match self {
            Self::Python => "scripts/build-python-plugin",
            Self::JavaScript => "scripts/build-js-plugin",
        }
    }

    /// The language's helper layer, relative to the repository root.
    fn sdk(self) -> &'static str {
        match self {
            Self::Python => "plugin-sdk/python",
            Self::JavaScript => "plugin-sdk/js",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::JavaScript => "js",
        }
    }
}

/// The component built from the Python example plugin `example-plugins/<name>` (e.g.
/// `sms-router`), built now unless an output for the same sources exists.
pub fn python_plugin(name: &str) -> PathBuf {
    scripted_plugin(
        ScriptedLang::Python,
        &repo_root().join("example-plugins").join(name),
    )
}

/// The component built from the JavaScript example plugin `example-plugins/<name>` (e.g.
/// `won-followup`), built now unless an output for the same sources exists.
pub fn js_plugin(name: &str) -> PathBuf {
    scripted_plugin(
        ScriptedLang::JavaScript,
        &repo_root().join("example-plugins").join(name),
    )
}

/// Builds the plugin in `dir` with `lang`'s script into
/// `target/plugins/<lang>/<folder>-<source hash>.wasm`, unless that file exists.
///
/// Panics with the script's output if the build fails (e.g. the toolchain is missing: run
/// `scripts/prepare`).
pub fn scripted_plugin(lang: ScriptedLang, dir: &Path) -> PathBuf {
    // One build at a time per process: the builds are CPU-bound, and a second test asking for
    // the same plugin waits for the first one's output instead of building it again.
    static BUILDS: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let mut builds = BUILDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let builds = builds.get_or_insert_with(HashMap::new);
    if let Some(out) = builds.get(dir) {
        return out.clone();
    }
    let root = repo_root();
    let name = dir
        .file_name()
        .unwrap_or_else(|| panic!("{} has no folder name", dir.display()))
        .to_string_lossy();
    let hash = source_hash(&[
        dir,
        &root.join(lang.sdk()),
        &root.join("wit"),
        &root.join(lang.script()),
    ]);
    let out = plugins_target_dir()
        .join(lang.dir_name())
        .join(format!("{name}-{}.wasm", &hash[..16]));
    if !out.is_file() {
        let output = Command::new(root.join(lang.script()))
            .arg(dir)
            .arg(&out)
            .current_dir(&root)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", lang.script()));
        assert!(
            output.status.success(),
            "{} {} failed ({}):\n{}{}",
            lang.script(),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    builds.insert(dir.to_path_buf(), out.clone());
    out
}

/// SHA-256 (hex) over the relative paths and contents of every file under `roots`, in a fixed
/// order. Caches and dependency folders (`__pycache__`, `node_modules`) are skipped.
fn source_hash(roots: &[&Path]) -> String {
    let mut hasher = Sha256::new();
    for root in roots {
        let mut files = Vec::new();
        collect_files(root, &mut files);
        files.sort();
        for file in files {
            let relative = file.strip_prefix(root).unwrap_or(&file);
            let bytes =
                fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            hasher.update(relative.to_string_lossy().as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    hex::encode(hasher.finalize())
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        files.push(path.to_path_buf());
        return;
    }
    let entries = fs::read_dir(path).unwrap_or_else(|e| panic!("listing {}: {e}", path.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", path.display()));
        let name = entry.file_name();
        if name == "__pycache__" || name == "node_modules" {
            continue;
        }
        collect_files(&entry.path(), files);
    }
}

/// Installs a plugin into `plugins_dir` as `name.wasm` and `name.toml` (`manifest` is the TOML
/// text), replacing any earlier version.
///
/// Each file is written to a temporary name and renamed into place, the component first, so a
/// watching host never reads a half-written file and sees a complete pair once the manifest
/// lands.
pub fn install(plugins_dir: &Path, wasm: &Path, name: &str, manifest: &str) {
    fs::create_dir_all(plugins_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", plugins_dir.display()));
    let bytes = fs::read(wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    write_atomically(&plugins_dir.join(format!("{name}.wasm")), &bytes);
    write_atomically(
        &plugins_dir.join(format!("{name}.toml")),
        manifest.as_bytes(),
    );
}

/// A rebuilt variant of the component `wasm`: the same code with a custom section named
/// `wasmhook-test-variant` holding `label` appended, written to `out`. Behaviour is unchanged
/// but the bytes (and so the SHA-256) differ, as after a rebuild, so the host must compile it.
pub fn variant(wasm: &Path, label: &str, out: &Path) -> PathBuf {
    let mut bytes = fs::read(wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    let name = b"wasmhook-test-variant";
    let mut payload = Vec::new();
    leb128(&mut payload, name.len());
    payload.extend_from_slice(name);
    payload.extend_from_slice(label.as_bytes());
    bytes.push(0); // custom section id
    leb128(&mut bytes, payload.len());
    bytes.extend_from_slice(&payload);
    fs::write(out, &bytes).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    out.to_path_buf()
}

/// Appends `n` as unsigned LEB128, the wasm binary format's integer encoding.
fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Builds every plugin workspace; returns the directory holding the `.wasm` files.
fn build_all() -> PathBuf {
    let root = repo_root();
    let target_dir = plugins_target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    for workspace in WORKSPACES {
        let dir = root.join(workspace);
        let mut command = Command::new(&cargo);
        command
            .current_dir(&dir)
            .args(["build", "--release", "--target", TARGET, "--target-dir"])
            .arg(&target_dir);
        for var in RUSTFLAGS_OVERRIDES {
            command.env_remove(var);
        }
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("running {cargo:?} in {}: {e}", dir.display()));
        assert!(
            output.status.success(),
            "building the plugins in {} failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr),
        );
    }
    target_dir.join(TARGET).join("release")
}

/// Cargo names a cdylib after its crate with `-` replaced by `_`.
fn wasm_file_name(crate_name: &str) -> String {
    format!("{}.wasm", crate_name.replace('-', "_"))
}

/// The `.wasm` files in `dir`, for the error message when a name is wrong.
fn built_plugins(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".wasm"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes `bytes` to `path` through a sibling temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let mut tmp_name = path.as_os_str().to_owned();
    // Not `.wasm`/`.toml`, so a host scanning the folder ignores it.
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("renaming {} into place: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Component binaries start with the wasm magic and the component-model layer version.
    const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn crate_names_map_to_cargo_file_names() {
        assert_eq!(wasm_file_name("contact-tagger"), "contact_tagger.wasm");
        assert_eq!(wasm_file_name("hostile"), "hostile.wasm");
    }

    #[test]
    fn every_plugin_builds_as_a_component() {
        for name in ["contact-tagger", "hostile"] {
            let path = rust_plugin(name);
            let bytes = fs::read(&path).unwrap();
            assert_eq!(
                bytes[..8],
                COMPONENT_HEADER,
                "{} is not a component",
                path.display()
            );
        }
    }

    #[test]
    fn leb128_encodes_like_the_wasm_spec() {
        let enc = |n| {
            let mut out = Vec::new();
            leb128(&mut out, n);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(624_485), [0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn the_source_hash_follows_contents_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("__pycache__")).unwrap();
        fs::write(src.join("app.py"), "x = 1\n").unwrap();
        let first = source_hash(&[&src]);
        fs::write(src.join("__pycache__/app.pyc"), b"cache").unwrap();
        assert_eq!(source_hash(&[&src]), first, "caches do not count");
        fs::write(src.join("app.py"), "x = 2\n").unwrap();
        let second = source_hash(&[&src]);
        assert_ne!(second, first, "a changed file changes the hash");
        fs::rename(src.join("app.py"), src.join("main.py")).unwrap();
        assert_ne!(
            source_hash(&[&src]),
            second,
            "a renamed file changes the hash"
        );
    }

    #[test]
    #[should_panic(expected = "no plugin `no-such-plugin`")]
    fn an_unknown_plugin_names_what_was_built() {
        rust_plugin("no-such-plugin");
    }

    #[test]
    fn install_writes_the_pair_and_replaces_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        let wasm = dir.path().join("built.wasm");
        fs::write(&wasm, b"v1").unwrap();
        install(&plugins, &wasm, "tagger", "name = \"tagger\"\n");
        fs::write(&wasm, b"v2").unwrap();
        install(
            &plugins,
            &wasm,
            "tagger",
            "name = \"tagger\"\nmax_attempts = 2\n",
        );

        assert_eq!(fs::read(plugins.join("tagger.wasm")).unwrap(), b"v2");
        assert_eq!(
            fs::read_to_string(plugins.join("tagger.toml")).unwrap(),
            "name = \"tagger\"\nmax_attempts = 2\n"
        );
        let mut left: Vec<_> = fs::read_dir(&plugins)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["tagger.toml", "tagger.wasm"],
            "no temporary files left"
        );
    }
}
