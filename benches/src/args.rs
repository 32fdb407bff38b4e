//! The command line every benchmark of the suite takes: `--quick` (one short pass, what CI runs
//! so no benchmark rots) and `--markdown FILE` (also append this benchmark's section of
//! `BENCHMARKS.md` to FILE, as `scripts/bench` asks); the end-to-end benchmark also takes its
//! peer's files (`--peer-wasmtime FILE --peer-component FILE`) and its delivery slots
//! (`--workers N`).

use std::path::PathBuf;

/// Parsed benchmark arguments.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// One short pass per case: the figures only show that the benchmark works.
    pub quick: bool,
    /// Where to append the Markdown section, if anywhere.
    pub markdown: Option<PathBuf>,
    /// The end-to-end benchmark's peer: the `wasmtime` CLI binary (`--peer-wasmtime FILE`).
    pub peer_wasmtime: Option<PathBuf>,
    /// ... and the `wasi:http` component it serves (`--peer-component FILE`).
    pub peer_component: Option<PathBuf>,
    /// The end-to-end benchmark's `[plugins] workers` and relay concurrency (`--workers N`).
    pub workers: Option<usize>,
    /// Every argument as given, for the "command" line of the report.
    pub raw: Vec<String>,
}

impl Args {
    /// Parses `std::env::args()`; an unknown argument is an error naming the known ones.
    pub fn parse() -> anyhow::Result<Args> {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let mut args = Args {
            raw: raw.clone(),
            ..Args::default()
        };
        let mut it = raw.into_iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => args.quick = true,
                "--markdown" => {
                    let file = it
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("--markdown needs a file name"))?;
                    args.markdown = Some(PathBuf::from(file));
                }
                "--peer-wasmtime" | "--peer-component" => {
                    let file = it
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("{arg} needs a file name"))?;
                    if arg == "--peer-wasmtime" {
                        args.peer_wasmtime = Some(PathBuf::from(file));
                    } else {
                        args.peer_component = Some(PathBuf::from(file));
                    }
                }
                "--workers" => {
                    let n = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow::anyhow!("--workers needs a count of at least 1"))?;
                    args.workers = Some(n);
                }
                other => anyhow::bail!(
                    "unknown argument {other:?}; the arguments are --quick, --markdown FILE, \
                     --peer-wasmtime FILE, --peer-component FILE and --workers N"
                ),
            }
        }
        Ok(args)
    }

    /// `(quick, full)` picked by the mode.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }

    /// The arguments as they would be typed after the binary's name, `--markdown` left out.
    pub fn flags(&self) -> String {
        if self.quick {
            "--quick".into()
        } else {
            String::new()
        }
    }
}
