//! Secrets: referenced from config by environment variable or file, never inlined, and never
//! printed. `Secret` redacts itself in `Debug`/`Display` and zeroes nothing fancy: it is simply
//! kept out of logs, errors and plugin memory by construction.

use std::{fmt, path::PathBuf};

/// Where a secret's value comes from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file (trailing newlines removed), relative to the config file's folder.
    File(PathBuf),
}

/// Why a secret could not be read. Names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set (or not valid UTF-8)")]
    MissingEnv(String),
    #[error("environment variable {0} is empty")]
    EmptyEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    EmptyFile(PathBuf),
}

impl SecretRef {
    /// Reads the secret now. Called at start-up and on SIGHUP, never per request.
    pub fn load(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => {
                let value =
                    std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?;
                if value.is_empty() {
                    return Err(SecretError::EmptyEnv(name.clone()));
                }
                Ok(Secret::new(value))
            }
            SecretRef::File(path) => {
                let value = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let value = value.trim_end_matches(['\r', '\n']).to_string();
                if value.is_empty() {
                    return Err(SecretError::EmptyFile(path.clone()));
                }
                Ok(Secret::new(value))
            }
        }
    }

    /// A description safe to log: `env:NAME` or `file:PATH`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("env:{name}"),
            SecretRef::File(path) => format!("file:{}", path.display()),
        }
    }
}

/// A secret value. `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it (a MAC key, an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_secret_trims_newline_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(
            SecretRef::File(path.clone()).load().unwrap().expose(),
            "abc"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            SecretRef::File(path).load(),
            Err(SecretError::EmptyFile(_))
        ));
    }
}
