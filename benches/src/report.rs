//! A benchmark's section of `BENCHMARKS.md`: what was measured and how, the exact command, a
//! table of figures with their baselines and ratios, and each DESIGN.md §9 target with whether
//! this run met it. Printed to stdout as well when asked, and appended to `--markdown FILE`.

use std::{fmt::Write as _, io::Write as _, path::Path};

/// One DESIGN.md §9 target and this run's figure for it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The bar as DESIGN.md states it, e.g. "trivial plugin p50 <= 12 µs on 1 thread".
    pub bar: String,
    /// The figure this run measured, with its unit.
    pub measured: String,
    /// Whether the figure meets the bar.
    pub met: bool,
}

impl Target {
    /// A target whose figure must be at most `limit`.
    pub fn at_most(bar: &str, value: f64, limit: f64, unit: &str) -> Target {
        Target {
            bar: bar.into(),
            measured: format!("{} {unit}", round(value)),
            met: value <= limit,
        }
    }

    /// A target whose figure must be at least `floor`.
    pub fn at_least(bar: &str, value: f64, floor: f64, unit: &str) -> Target {
        Target {
            bar: bar.into(),
            measured: format!("{} {unit}", round(value)),
            met: value >= floor,
        }
    }
}

/// Short human rounding: three significant digits below 1,000, whole numbers above.
pub fn round(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A section under construction.
#[derive(Clone, Debug, Default)]
pub struct Section {
    title: String,
    about: String,
    command: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    targets: Vec<Target>,
    notes: Vec<String>,
}

impl Section {
    /// A section titled `title` (a `##` heading), described by `about` (Markdown prose),
    /// produced by `command` (shown verbatim in a code block).
    pub fn new(title: &str, about: &str, command: &str) -> Section {
        Section {
            title: title.into(),
            about: about.into(),
            command: command.into(),
            ..Section::default()
        }
    }

    /// The table's column names.
    pub fn header(&mut self, columns: &[&str]) {
        self.header = columns.iter().map(|c| c.to_string()).collect();
    }

    /// One row of the table (as many cells as the header has columns).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "row width != header width");
        self.rows.push(cells);
    }

    /// A target and this run's verdict on it.
    pub fn target(&mut self, target: Target) {
        self.targets.push(target);
    }

    /// A remark printed under the table (a flag used, a caveat of this run).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The section as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n\n{}\n", self.title, self.about.trim());
        let _ = writeln!(out, "```sh\n{}\n```\n", self.command);
        if !self.header.is_empty() {
            let _ = writeln!(out, "| {} |", self.header.join(" | "));
            let align: Vec<&str> = self
                .header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---" } else { "---:" })
                .collect();
            let _ = writeln!(out, "|{}|", align.join("|"));
            for row in &self.rows {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                out,
                "| DESIGN.md §9 target | this run | verdict |\n|---|---:|---|"
            );
            for t in &self.targets {
                let verdict = if t.met { "met" } else { "**not met**" };
                let _ = writeln!(out, "| {} | {} | {verdict} |", t.bar, t.measured);
            }
            out.push('\n');
        }
        out
    }

    /// The table and targets as plain text for the terminal.
    pub fn print(&self) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            println!("{}", padded.join("  "));
        };
        line(&self.header);
        for row in &self.rows {
            line(row);
        }
        for note in &self.notes {
            println!("note: {note}");
        }
        for t in &self.targets {
            let verdict = if t.met { "met" } else { "NOT MET" };
            println!("target: {} -> {} ({verdict})", t.bar, t.measured);
        }
    }

    /// Appends the Markdown to `file`, if given.
    pub fn append_to(&self, file: Option<&Path>) -> anyhow::Result<()> {
        let Some(file) = file else { return Ok(()) };
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| anyhow::anyhow!("opening {} to append the report: {e}", file.display()))?;
        out.write_all(self.markdown().as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_renders_its_table_and_verdicts() {
        let mut s = Section::new("Invocation", "What it measures.", "target/release/invoke");
        s.header(&["plugin", "p50 µs"]);
        s.row(vec!["trivial".into(), "9.1".into()]);
        s.target(Target::at_most("p50 <= 12 µs", 9.1, 12.0, "µs"));
        s.target(Target::at_least(">= 60,000/s", 59_000.0, 60_000.0, "/s"));
        let md = s.markdown();
        assert!(
            md.contains("| plugin | p50 µs |\n|---|---:|\n| trivial | 9.1 |"),
            "{md}"
        );
        assert!(md.contains("| p50 <= 12 µs | 9.10 µs | met |"), "{md}");
        assert!(
            md.contains("| >= 60,000/s | 59000 /s | **not met** |"),
            "{md}"
        );
        assert!(md.contains("```sh\ntarget/release/invoke\n```"), "{md}");
    }
}
