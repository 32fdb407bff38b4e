//! `wasmhook build` for Python and JavaScript projects: runs the build script of the wasmhook
//! checkout this binary was built from (`scripts/build-python-plugin`,
//! `scripts/build-js-plugin`, the same ones the tests and `scripts/serve-example` use), with the
//! toolchains `scripts/prepare` installs.
//!
//! Invariants: the toolchains are looked up where `scripts/prepare` puts them
//! (`WASMHOOK_TOOLCHAINS`, else `${CARGO_TARGET_DIR:-<checkout>/target}/toolchains`) and that
//! folder is handed to the script, so the check here and the script agree; a missing tool is
//! reported, naming it and the command that installs it, before anything runs. The scripts write
//! their output through a temporary file and a rename.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context;

use super::new::Lang;

/// The environment variable that overrides where the toolchains are (read by the scripts too).
const TOOLCHAINS_ENV: &str = "WASMHOOK_TOOLCHAINS";

/// A language built by a script: the script and the tools it needs.
struct Script {
    /// Relative to the checkout.
    path: &'static str,
    /// (tool, path relative to the toolchains folder).
    tools: &'static [(&'static str, &'static str)],
}

const PYTHON: Script = Script {
    path: "scripts/build-python-plugin",
    tools: &[("componentize-py", "python/bin/componentize-py")],
};

const JS: Script = Script {
    path: "scripts/build-js-plugin",
    tools: &[
        ("componentize-js", "js/node_modules/.bin/componentize-js"),
        ("esbuild", "js/node_modules/.bin/esbuild"),
    ],
};

/// What a scripted build runs with: the checkout and the toolchains folder.
pub(super) struct Toolchain {
    script: PathBuf,
    toolchains: PathBuf,
}

impl Toolchain {
    /// The script and toolchains for `lang` (Python or JavaScript), from this process's
    /// environment; an error names what is missing and how to install it.
    pub(super) fn find(lang: Lang) -> anyhow::Result<Toolchain> {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let toolchains = toolchains_dir(
            std::env::var_os(TOOLCHAINS_ENV),
            std::env::var_os("CARGO_TARGET_DIR"),
            &checkout,
        );
        Toolchain::check(lang, &checkout, toolchains)
    }

    fn check(lang: Lang, checkout: &Path, toolchains: PathBuf) -> anyhow::Result<Toolchain> {
        let spec = match lang {
            Lang::Python => PYTHON,
            Lang::Js => JS,
            Lang::Rust => anyhow::bail!("Rust projects are built with cargo, not a script"),
        };
        let script = checkout.join(spec.path);
        if !script.is_file() {
            anyhow::bail!(
                "no build script at {}: `wasmhook build` builds {lang:?} plugins with the wasmhook checkout it was built from; reinstall wasmhook from a checkout (`cargo install --path host`)",
                script.display()
            );
        }
        for (tool, path) in spec.tools {
            let path = toolchains.join(path);
            if !path.is_file() {
                anyhow::bail!(
                    "{tool} is not installed (no {}); install it with `{}`",
                    path.display(),
                    checkout.join("scripts/prepare").display(),
                );
            }
        }
        Ok(Toolchain { script, toolchains })
    }

    /// Builds the project in `dir` into the component `out`. The script's messages go to the
    /// terminal.
    pub(super) fn build(&self, dir: &Path, out: &Path) -> anyhow::Result<()> {
        let status = Command::new(&self.script)
            .arg(dir)
            .arg(out)
            .env(TOOLCHAINS_ENV, &self.toolchains)
            .status()
            .with_context(|| format!("cannot run {}", self.script.display()))?;
        if !status.success() {
            anyhow::bail!("{} failed ({status})", self.script.display());
        }
        Ok(())
    }
}

/// Where `scripts/prepare` installs the toolchains: `explicit` (`WASMHOOK_TOOLCHAINS`), else
/// `toolchains` in `cargo_target` (`CARGO_TARGET_DIR`), else in `<checkout>/target`.
fn toolchains_dir(
    explicit: Option<OsString>,
    cargo_target: Option<OsString>,
    checkout: &Path,
) -> PathBuf {
    match (explicit, cargo_target) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(target)) => PathBuf::from(target).join("toolchains"),
        (None, None) => checkout.join("target/toolchains"),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn toolchains_are_where_prepare_installs_them() {
        let checkout = Path::new("/src/wasmhook");
        assert_eq!(
            toolchains_dir(Some("/t".into()), Some("/c".into()), checkout),
            Path::new("/t")
        );
        assert_eq!(
            toolchains_dir(None, Some("/c".into()), checkout),
            Path::new("/c/toolchains")
        );
        assert_eq!(
            toolchains_dir(None, None, checkout),
            Path::new("/src/wasmhook/target/toolchains")
        );
    }

    #[test]
    fn a_missing_tool_is_named_with_the_command_that_installs_it() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let empty = tempfile::tempdir().unwrap();
        for (lang, tool) in [
            (Lang::Python, "componentize-py"),
            (Lang::Js, "componentize-js"),
        ] {
            let err = Toolchain::check(lang, checkout, empty.path().to_path_buf())
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.starts_with(&format!("{tool} is not installed")),
                "{err}"
            );
            assert!(err.contains("scripts/prepare"), "{err}");
        }
        // componentize-js alone is not enough: esbuild bundles the modules first.
        let bin = empty.path().join("js/node_modules/.bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("componentize-js"), "").unwrap();
        let err = Toolchain::check(Lang::Js, checkout, empty.path().to_path_buf())
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("esbuild is not installed"), "{err}");
        fs::write(bin.join("esbuild"), "").unwrap();
        assert!(Toolchain::check(Lang::Js, checkout, empty.path().to_path_buf()).is_ok());
    }

    #[test]
    fn a_checkout_without_the_script_says_so() {
        let elsewhere = tempfile::tempdir().unwrap();
        let err = Toolchain::check(Lang::Python, elsewhere.path(), elsewhere.path().into())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no build script"), "{err}");
    }
}
