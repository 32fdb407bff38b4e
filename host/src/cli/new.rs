//! `wasmhook new NAME --lang rust|python|js`: a plugin project that builds as written: the
//! component's source, its manifest (`NAME.toml`, one template for every language) and, for
//! Rust, its build settings, from the templates in `templates/<lang>/`.
//!
//! Invariants: nothing existing is overwritten (the project folder must not exist); the
//! project's source and API names come from the config in the current folder when there is one,
//! so the manifest subscribes to a source that exists. A language is a template list plus a
//! build step in `build.rs`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::config::Config;

/// Arguments of `wasmhook new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The plugin's name: 1-64 characters of a-z, 0-9, `-` and `_`, starting with a letter.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where to create the project; default `./NAME`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The wasmhook-sdk crate a Rust project uses (the `plugin-sdk` folder of a wasmhook
    /// checkout); default: the checkout this binary was built from. Python and JavaScript
    /// projects get their helper layer from that checkout at build time.
    #[arg(long, env = "WASMHOOK_SDK")]
    pub sdk: Option<PathBuf>,
    /// The config whose source and API the manifest names (if the file exists).
    #[arg(long, short, default_value = "wasmhook.toml", env = "WASMHOOK_CONFIG")]
    pub config: PathBuf,
}

/// The languages `new` and `build` know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// A Rust crate using `wasmhook-sdk`, built with cargo for `wasm32-wasip2`.
    Rust,
    /// An `app.py` using the `wasmhook` package, built with componentize-py.
    Python,
    /// A `plugin.js` using the `wasmhook` module, built with esbuild and componentize-js.
    Js,
}

impl Lang {
    /// The file that holds the handler: what `new` tells the user to edit, and (except for
    /// Rust, recognised by its `Cargo.toml`) what `build` recognises the project by.
    pub fn entry(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::Python => "app.py",
            Lang::Js => "plugin.js",
        }
    }

    /// The project's files: (path in the project, template).
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// The manifest's memory cap and why it is enough: the template's handler measured in
    /// `wasmhook dev` (its `memory_bytes`), with room for large API answers.
    fn memory(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("16MiB", "a Rust handler needs little"),
            Lang::Python => (
                "32MiB",
                "CPython's snapshot heap is most of the 12.5 MiB this handler holds",
            ),
            Lang::Js => (
                "24MiB",
                "the JS engine's heap is most of the 9.1 MiB this handler holds",
            ),
        }
    }
}

/// The manifest, the same for every language.
const MANIFEST: (&str, &str) = ("{{name}}.toml", include_str!("templates/manifest.toml.txt"));

/// The Rust project.
const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("templates/rust/Cargo.toml.txt")),
    ("src/lib.rs", include_str!("templates/rust/lib.rs.txt")),
    MANIFEST,
    (
        ".cargo/config.toml",
        include_str!("templates/rust/cargo-config.toml.txt"),
    ),
    (".gitignore", include_str!("templates/rust/gitignore.txt")),
    // The dependency versions the SDK is tested with, so a first build resolves nothing new.
    ("Cargo.lock", include_str!("../../../plugin-sdk/Cargo.lock")),
];

/// The Python project: `scripts/build-python-plugin` adds the `wasmhook` package.
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("templates/python/app.py.txt")),
    MANIFEST,
];

/// The JavaScript project: `scripts/build-js-plugin` resolves `import ... from 'wasmhook'`.
const JS: &[(&str, &str)] = &[
    ("plugin.js", include_str!("templates/js/plugin.js.txt")),
    MANIFEST,
];

/// The values substituted for the templates' `{{name}}`-style variables.
struct Values {
    name: String,
    source: String,
    api: String,
    /// The Rust SDK's folder; empty for the other languages, whose SDK the build adds.
    sdk: String,
    memory: &'static str,
    memory_reason: &'static str,
}

/// Runs `wasmhook new`: 0 when the project was written, 2 when it could not be.
pub fn run(args: NewArgs) -> ExitCode {
    match new(&args) {
        Ok(dir) => {
            println!("wasmhook new: created {}", dir.display());
            println!(
                "next: edit {}, then `wasmhook build {}` and `wasmhook dev`",
                dir.join(args.lang.entry()).display(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmhook new: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn new(args: &NewArgs) -> anyhow::Result<PathBuf> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        anyhow::bail!(
            "{} already exists; choose another name or --dir",
            dir.display()
        );
    }
    let (source, api) = names_from_config(&args.config)?;
    let sdk = match args.lang {
        Lang::Rust => sdk_path(args.sdk.as_deref())?.display().to_string(),
        Lang::Python | Lang::Js => String::new(),
    };
    let (memory, memory_reason) = args.lang.memory();
    let values = Values {
        name: args.name.clone(),
        source,
        api,
        sdk,
        memory,
        memory_reason,
    };
    for (path, template) in args.lang.files() {
        let path = dir.join(render(path, &values));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, render(template, &values))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}

/// A name that is a valid plugin name and crate name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        anyhow::bail!(
            "`{name}` is not a plugin name; use 1-64 characters of a-z, 0-9, `-` and `_`, starting with a letter (e.g. `tag-contacts`)"
        );
    }
    Ok(())
}

/// The first source's name and its API from `config` when it exists, else `highlevel` for
/// both (the names `wasmhook init` writes).
fn names_from_config(config: &Path) -> anyhow::Result<(String, String)> {
    const DEFAULT: &str = "highlevel";
    if !config.exists() {
        return Ok((DEFAULT.into(), DEFAULT.into()));
    }
    let config = Config::load(config)?;
    let Some(source) = config.sources.first() else {
        return Ok((DEFAULT.into(), DEFAULT.into()));
    };
    let api = source
        .api
        .as_ref()
        .map(|a| a.to_string())
        .or_else(|| config.apis.keys().next().map(|a| a.to_string()))
        .unwrap_or_else(|| DEFAULT.into());
    Ok((source.name.to_string(), api))
}

/// `--sdk`, else the `plugin-sdk` folder of the checkout this binary was built from.
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    let path = given.unwrap_or(&built_from);
    if !path.join("Cargo.toml").is_file() {
        anyhow::bail!(
            "no wasmhook-sdk at {}; pass --sdk (or set WASMHOOK_SDK) to the plugin-sdk folder of a wasmhook checkout",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

fn render(template: &str, values: &Values) -> String {
    template
        .replace("{{name}}", &values.name)
        .replace("{{source}}", &values.source)
        .replace("{{api}}", &values.api)
        .replace("{{sdk}}", &values.sdk.replace('\\', "\\\\"))
        .replace("{{memory}}", values.memory)
        .replace("{{memory_reason}}", values.memory_reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Manifest;

    fn args(dir: &Path, name: &str) -> NewArgs {
        lang_args(dir, name, Lang::Rust)
    }

    fn lang_args(dir: &Path, name: &str, lang: Lang) -> NewArgs {
        NewArgs {
            name: name.into(),
            lang,
            dir: Some(dir.join(name)),
            sdk: None,
            config: dir.join("wasmhook.toml"),
        }
    }

    #[test]
    fn a_rust_project_has_a_valid_manifest_and_points_at_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let project = new(&args(dir.path(), "tag-contacts")).unwrap();
        let manifest = Manifest::load(project.join("tag-contacts.toml")).unwrap();
        assert_eq!(manifest.name.as_str(), "tag-contacts");
        assert!(manifest.subscribes_to("highlevel", "ContactCreate"));
        let cargo = fs::read_to_string(project.join("Cargo.toml")).unwrap();
        let sdk = sdk_path(None).unwrap();
        assert!(
            cargo.contains(&format!("path = \"{}\"", sdk.display())),
            "{cargo}"
        );
        assert!(cargo.contains("name = \"tag-contacts\""));
        for file in [
            "src/lib.rs",
            ".cargo/config.toml",
            "Cargo.lock",
            ".gitignore",
        ] {
            assert!(project.join(file).is_file(), "{file}");
        }
        let source = fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(
            !source.contains("{{"),
            "every template variable is substituted"
        );
    }

    #[test]
    fn python_and_js_projects_hold_their_entry_module_and_a_manifest_sized_for_their_runtime() {
        let dir = tempfile::tempdir().unwrap();
        for (lang, entry, memory) in [
            (Lang::Python, "app.py", 32 << 20),
            (Lang::Js, "plugin.js", 24 << 20),
        ] {
            let name = format!("tag-{}", entry.replace('.', "-"));
            let project = new(&lang_args(dir.path(), &name, lang)).unwrap();
            let manifest = Manifest::load(project.join(format!("{name}.toml"))).unwrap();
            assert!(manifest.subscribes_to("highlevel", "ContactCreate"));
            assert_eq!(manifest.memory, memory, "{lang:?}");
            let mut files: Vec<_> = fs::read_dir(&project)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            assert_eq!(files, [entry.to_owned(), format!("{name}.toml")]);
            let source = fs::read_to_string(project.join(entry)).unwrap();
            assert!(
                !source.contains("{{"),
                "every template variable is substituted"
            );
            assert!(source.contains("\"highlevel\"") || source.contains("'highlevel'"));
            assert_eq!(lang.entry(), entry);
        }
    }

    #[test]
    fn the_python_source_compiles() {
        let dir = tempfile::tempdir().unwrap();
        let project = new(&lang_args(dir.path(), "tidy", Lang::Python)).unwrap();
        let output = std::process::Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())"])
            .arg(project.join("app.py"))
            .output()
            .expect("running python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn the_rust_source_is_formatted_as_rustfmt_would() {
        let dir = tempfile::tempdir().unwrap();
        let project = new(&args(dir.path(), "tidy")).unwrap();
        let output = std::process::Command::new("rustfmt")
            .args(["--edition", "2024", "--check"])
            .arg(project.join("src/lib.rs"))
            .output()
            .expect("running rustfmt (rustup component add rustfmt)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    #[test]
    fn the_manifest_follows_the_configs_source_and_api() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("s"), "whsec_c2VjcmV0LWJ5dGVz").unwrap();
        fs::write(
            dir.path().join("wasmhook.toml"),
            "[[sources]]\nname = \"billing\"\nscheme = \"standard-webhooks\"\napi = \"crm\"\n\
             secrets = [{ file = \"s\" }]\n[apis.crm]\nbase_url = \"https://crm.example\"\n",
        )
        .unwrap();
        let project = new(&args(dir.path(), "sync")).unwrap();
        let manifest = Manifest::load(project.join("sync.toml")).unwrap();
        assert!(manifest.subscribes_to("billing", "ContactCreate"));
        assert!(
            manifest
                .capabilities
                .allow_list(&crate::ids::ApiName::new("crm"))
                .is_some()
        );
    }

    #[test]
    fn bad_names_existing_folders_and_missing_sdks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "Tag", "1tag", "a/b", "a.b"] {
            let err = new(&args(dir.path(), name)).unwrap_err().to_string();
            assert!(err.contains("not a plugin name"), "{name}: {err}");
        }
        fs::create_dir(dir.path().join("taken")).unwrap();
        let err = new(&args(dir.path(), "taken")).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let mut no_sdk = args(dir.path(), "fine");
        no_sdk.sdk = Some(dir.path().join("nowhere"));
        let err = new(&no_sdk).unwrap_err().to_string();
        assert!(err.contains("--sdk"), "{err}");
        assert!(!dir.path().join("fine").exists());
    }
}
