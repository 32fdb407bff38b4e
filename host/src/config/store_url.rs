//! `storage.url`: which store backend, and where.
//!
//! A PostgreSQL URL may carry a password; [`PostgresUrl`] keeps it out of every `Debug`,
//! `Display` and error message (they show the URL with the password replaced by `***`).

use std::{fmt, path::PathBuf};

/// Which store backend and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://path` (relative to the config file's folder).
    Sqlite(PathBuf),
    /// `postgres://user[:password]@host[:port]/database[?options]` (or `postgresql://`).
    Postgres(PostgresUrl),
}

/// A PostgreSQL connection URL. Shown redacted: the password never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Parses `text`, or says what is wrong with it (without repeating a password).
    pub fn parse(text: &str) -> Result<PostgresUrl, String> {
        let parsed = url::Url::parse(text).map_err(|err| {
            format!(
                "`{}` is not a valid URL ({err}); write \"postgres://user@host:5432/database\"",
                redact(text)
            )
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "`{}` is not a PostgreSQL URL; write \"postgres://user@host:5432/database\"",
                redact(text)
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!(
                "`{}` names no host; write \"postgres://user@host:5432/database\"",
                redact(text)
            ));
        }
        // The driver parses it again when connecting; checking here turns its complaints into
        // a config problem at start-up instead of a failed connection later.
        text.parse::<tokio_postgres::Config>().map_err(|err| {
            format!(
                "`{}` is not a PostgreSQL connection URL ({err}); write \"postgres://user@host:5432/database\"",
                redact(text)
            )
        })?;
        Ok(PostgresUrl(text.to_owned()))
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", redact(&self.0))
    }
}

/// `text` with the password of its user info (and any `password=` query option) replaced by
/// `***`. Text that does not parse as a URL is cut at its last `@`, which is where a password
/// would end.
pub fn redact(text: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(text) else {
        return match text.rfind('@') {
            Some(at) => format!("***{}", &text[at..]),
            None => text.to_owned(),
        };
    };
    if parsed.password().is_some() {
        // Fails only for URLs that cannot have a password, which this one has.
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = PostgresUrl::parse("postgres://app:s3cret@db.internal:5432/hooks").unwrap();
        assert_eq!(url.expose(), "postgres://app:s3cret@db.internal:5432/hooks");
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("app:***@db.internal:5432/hooks"), "{shown}");
        }
        let query = redact("postgresql://db/hooks?user=app&password=s3cret&sslmode=disable");
        assert!(
            !query.contains("s3cret") && query.contains("sslmode=disable"),
            "{query}"
        );
        assert!(!redact("not a url:s3cret@host").contains("s3cret"));
    }

    #[test]
    fn bad_urls_say_what_to_write_without_the_password() {
        let err = PostgresUrl::parse("postgres://app:s3cret@/hooks").unwrap_err();
        assert!(err.contains("postgres://user@host:5432/database"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err =
            PostgresUrl::parse("postgres://app:s3cret@db/hooks?sslmode=sometimes").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(PostgresUrl::parse("postgresql://app@db/hooks").is_ok());
    }
}
