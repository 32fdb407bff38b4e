//! Config errors: every problem names the file, the field and the fix.

use std::{fmt, path::PathBuf};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `sources[0].app_id`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", Invalid(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

struct Invalid<'a>(&'a PathBuf, &'a [Problem]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Invalid(path, problems) = self;
        write!(f, "{} has {} problem(s):", path.display(), problems.len())?;
        for p in problems.iter() {
            write!(f, "\n  {}: {}: {}", path.display(), p.field, p.message)?;
        }
        Ok(())
    }
}
