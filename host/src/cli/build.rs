//! `wasmhook build [DIR]`: builds a plugin project for the component target and installs the
//! pair (`NAME.wasm` + `NAME.toml`) into the config's plugins folder, where a running server
//! (or the next `wasmhook dev`) picks it up.
//!
//! Invariants: the manifest is validated before anything is built or copied; each file is
//! written under a temporary name and renamed into place, the component first, so a watching
//! server never loads a half-written file and sees a complete pair once the manifest lands.
//! The language is recognised from the project's files (`Cargo.toml`: Rust, `app.py`: Python,
//! `plugin.js`: JavaScript); a new language is one more arm in [`detect`] and [`compile`].

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::Context;
use clap::Args;

use super::{new::Lang, scripted_build::Toolchain};
use crate::{config::Config, plugins::Manifest};

/// The target whose output is already a WASI 0.2 component.
const RUST_TARGET: &str = "wasm32-wasip2";

/// Files in a project folder that are not the plugin's manifest.
const NOT_MANIFESTS: [&str; 2] = ["Cargo.toml", "pyproject.toml"];

/// Arguments of `wasmhook build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The plugin project (the folder `wasmhook new` created).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The config naming the plugins folder to install into.
    #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
    pub config: PathBuf,
    /// Install into this folder instead of the config's `plugins.dir`.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
}

/// Runs `wasmhook build`: 0 when the pair was installed, 1 when the build failed, 2 when the
/// project or config is wrong.
pub fn run(args: BuildArgs) -> ExitCode {
    match build(&args) {
        Ok(installed) => {
            println!("wasmhook build: installed {}", installed.display());
            ExitCode::SUCCESS
        }
        Err(BuildError::Compile(e)) => {
            eprintln!("wasmhook build: {e:#}");
            ExitCode::FAILURE
        }
        Err(BuildError::Setup(e)) => {
            eprintln!("wasmhook build: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A wrong project or config (exit 2), or a failed compile (exit 1).
#[derive(Debug)]
enum BuildError {
    Setup(anyhow::Error),
    Compile(anyhow::Error),
}

impl From<anyhow::Error> for BuildError {
    fn from(e: anyhow::Error) -> Self {
        BuildError::Setup(e)
    }
}

/// Builds and installs; returns the installed component's path.
fn build(args: &BuildArgs) -> Result<PathBuf, BuildError> {
    let manifest_path = find_manifest(&args.dir)?;
    let manifest = Manifest::load(&manifest_path).map_err(anyhow::Error::from)?;
    let plugins_dir = match &args.plugins_dir {
        Some(dir) => dir.clone(),
        None => Config::load(&args.config)
            .with_context(|| {
                "the plugins folder comes from the config; run in the folder `wasmhook init` set up, or pass --config or --plugins-dir"
            })?
            .plugins
            .dir,
    };
    let lang = detect(&args.dir)?;
    let toolchain = match lang {
        Lang::Rust => None,
        Lang::Python | Lang::Js => Some(Toolchain::find(lang)?),
    };
    fs::create_dir_all(&plugins_dir)
        .with_context(|| format!("cannot create {}", plugins_dir.display()))?;
    let name = manifest.name.as_str();
    let installed = plugins_dir.join(format!("{name}.wasm"));
    compile(toolchain.as_ref(), &args.dir, &installed)?;
    copy_atomically(&manifest_path, &plugins_dir.join(format!("{name}.toml")))?;
    Ok(installed)
}

/// The one `*.toml` in `dir` that is not a build file.
fn find_manifest(dir: &Path) -> anyhow::Result<PathBuf> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("cannot read the project folder {}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let is_build_file = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| NOT_MANIFESTS.contains(&n));
        if is_toml && !is_build_file && path.is_file() {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => anyhow::bail!(
            "no plugin manifest in {}; add `<name>.toml` (as `wasmhook new` writes it)",
            dir.display()
        ),
        _ => {
            found.sort();
            let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            anyhow::bail!(
                "several manifests in {}: {}; keep the plugin's `<name>.toml` only",
                dir.display(),
                names.join(", ")
            )
        }
    }
}

/// The project's language, from its files.
fn detect(dir: &Path) -> anyhow::Result<Lang> {
    let marks = [
        ("Cargo.toml", Lang::Rust),
        (Lang::Python.entry(), Lang::Python),
        (Lang::Js.entry(), Lang::Js),
    ];
    let found: Vec<_> = marks
        .iter()
        .filter(|(file, _)| dir.join(file).is_file())
        .collect();
    match found[..] {
        [(_, lang)] => Ok(*lang),
        [] => anyhow::bail!(
            "{} holds no plugin project `wasmhook build` knows (a Rust project has a Cargo.toml, a Python one app.py, a JavaScript one plugin.js); create one with `wasmhook new NAME --lang rust|python|js`",
            dir.display()
        ),
        _ => {
            let files: Vec<&str> = found.iter().map(|(file, _)| *file).collect();
            anyhow::bail!(
                "{} holds {}: the projects of several languages; keep one plugin per folder",
                dir.display(),
                files.join(" and ")
            )
        }
    }
}

/// Compiles the project (with `toolchain`'s script when it has one, else with cargo) and
/// installs the component at `installed`.
fn compile(toolchain: Option<&Toolchain>, dir: &Path, installed: &Path) -> Result<(), BuildError> {
    match toolchain {
        Some(toolchain) => toolchain.build(dir, installed).map_err(BuildError::Compile),
        None => {
            let wasm = cargo_build(dir).map_err(BuildError::Compile)?;
            Ok(copy_atomically(&wasm, installed)?)
        }
    }
}

/// `cargo build --release --target wasm32-wasip2` in `dir`, reading the artifact's path from
/// cargo's JSON messages (so `CARGO_TARGET_DIR` and workspaces are honoured). Diagnostics go to
/// the terminal as cargo renders them.
fn cargo_build(dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            RUST_TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (is Rust installed?)",
                cargo.to_string_lossy()
            )
        })?;
    if !output.status.success() {
        anyhow::bail!(
            "cargo build failed ({}); if the target is missing: `rustup target add {RUST_TARGET}`",
            output.status
        );
    }
    let manifest = dir
        .join("Cargo.toml")
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.join("Cargo.toml").display()))?;
    component_artifact(&String::from_utf8_lossy(&output.stdout), &manifest).with_context(|| {
        format!(
            "cargo built no .wasm for {}; is `crate-type = [\"cdylib\"]` set under [lib]?",
            manifest.display()
        )
    })
}

/// The `.wasm` file cargo reported for the package whose manifest is `manifest`.
fn component_artifact(messages: &str, manifest: &Path) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// Copies `from` to `to` through a sibling temporary file and a rename.
fn copy_atomically(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    // Not `.wasm`/`.toml`, so a server scanning the folder ignores it.
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    fs::rename(&tmp, to).with_context(|| format!("cannot move {} into place", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_is_the_projects_wasm() {
        let manifest = Path::new("/p/tagger/Cargo.toml");
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/sdk/Cargo.toml","filenames":["/t/libsdk.rlib"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/p/tagger/Cargo.toml","filenames":["/t/wasm32-wasip2/release/tagger.wasm"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            component_artifact(&messages, manifest),
            Some(PathBuf::from("/t/wasm32-wasip2/release/tagger.wasm"))
        );
        assert_eq!(
            component_artifact(&messages, Path::new("/other/Cargo.toml")),
            None
        );
    }

    #[test]
    fn the_manifest_is_the_one_toml_that_is_not_a_build_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        let err = find_manifest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no plugin manifest"), "{err}");
        fs::write(dir.path().join("tagger.toml"), "").unwrap();
        assert_eq!(
            find_manifest(dir.path()).unwrap(),
            dir.path().join("tagger.toml")
        );
        fs::write(dir.path().join("other.toml"), "").unwrap();
        let err = find_manifest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("several manifests"), "{err}");
    }

    #[test]
    fn a_folder_without_a_project_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("wasmhook new"), "{err}");
        for (file, lang) in [
            ("Cargo.toml", Lang::Rust),
            ("app.py", Lang::Python),
            ("plugin.js", Lang::Js),
        ] {
            let project = dir.path().join(file.replace('.', "-"));
            fs::create_dir(&project).unwrap();
            fs::write(project.join(file), "").unwrap();
            assert_eq!(detect(&project).unwrap(), lang, "{file}");
        }
    }

    #[test]
    fn a_folder_with_two_languages_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app.py"), "").unwrap();
        fs::write(dir.path().join("plugin.js"), "").unwrap();
        let err = detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("app.py and plugin.js"), "{err}");
    }

    #[test]
    fn a_bad_manifest_stops_the_build_before_cargo_runs() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Cargo.toml"), "not toml [").unwrap();
        fs::write(dir.path().join("tagger.toml"), "name = \"other\"\n").unwrap();
        let args = BuildArgs {
            dir: dir.path().to_path_buf(),
            config: dir.path().join("wasmhook.toml"),
            plugins_dir: Some(dir.path().join("plugins")),
        };
        let Err(BuildError::Setup(err)) = build(&args) else {
            panic!("expected a setup error")
        };
        assert!(
            format!("{err:#}").contains("differs from the file name"),
            "{err:#}"
        );
        assert!(!dir.path().join("plugins").exists());
    }
}
