//! Path rules for plugin-supplied paths, checked before anything is sent, and the join of a
//! checked path under an API's base URL.
//!
//! Invariants of a path that passes [`check_path`]: exactly one leading `/`; no empty segments;
//! no `.`/`..` segments, raw or percent-encoded in any case mix; no `\`, `?`, `#` or control
//! characters, raw or percent-encoded; no encoded `/` or `\`; every `%` starts a valid escape;
//! at most [`MAX_PATH_LEN`] bytes. Such a path cannot climb out of the base path, name another
//! host (`//host`), smuggle a query, or be read differently by a proxy that decodes it.
//!
//! [`join`] keeps the base URL's origin and path prefix, re-checks the result, and returns the
//! path below the base path as it will be sent: that is what the allow-list is matched against.

/// Longest accepted path, in bytes, before percent-encoding by the URL parser.
pub const MAX_PATH_LEN: usize = 2048;

/// Checks a plugin-supplied path. The error is the reason given in `ApiError::Denied`.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty; it must start with `/`".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "the path is {} bytes long; the limit is {MAX_PATH_LEN}",
            path.len()
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path must start with `/`".into());
    };
    // Raw characters first: the URL parser would turn `\` into `/`, drop tabs and newlines, and
    // read `?`/`#` as the start of a query or fragment.
    for c in path.chars() {
        match c {
            '\\' => return Err("the path contains `\\`".into()),
            '?' => return Err("the path contains `?`; pass query parameters in `query`".into()),
            '#' => return Err("the path contains `#`".into()),
            c if c.is_control() => return Err("the path contains a control character".into()),
            _ => {}
        }
    }
    if rest.starts_with('/') {
        return Err("the path must start with exactly one `/` (`//` names another host)".into());
    }
    for segment in rest.split('/') {
        check_segment(segment)?;
    }
    Ok(())
}

/// Checks one segment, decoding its percent escapes.
fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("the path has an empty segment (`//` or a trailing `/`)".into());
    }
    let decoded = percent_decode(segment)?;
    if decoded.contains(&b'/') {
        return Err("the path contains an encoded `/` (%2F)".into());
    }
    if decoded.contains(&b'\\') {
        return Err("the path contains an encoded `\\` (%5C)".into());
    }
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return Err("the path's percent escapes do not decode to UTF-8".into());
    };
    if text.chars().any(char::is_control) {
        return Err("the path contains an encoded control character".into());
    }
    if text == "." || text == ".." {
        return Err("`.` and `..` segments are not allowed (raw or percent-encoded)".into());
    }
    Ok(())
}

/// Decodes `%XX` escapes; any `%` not followed by two hex digits is an error.
fn percent_decode(segment: &str) -> Result<Vec<u8>, String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| {
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| !h.starts_with('+'))
                });
            let Some(byte) = hex else {
                return Err(
                    "the path has an invalid percent escape (`%` must be followed by \
                            two hex digits)"
                        .into(),
                );
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A checked path joined under an API's base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The full URL to send to (no query yet).
    pub url: reqwest::Url,
    /// The path below the base path as it will be sent (percent-encoded), starting with `/`.
    pub relative: String,
}

impl Joined {
    /// The segments of [`Joined::relative`], for allow-list matching.
    pub fn segments(&self) -> Vec<&str> {
        self.relative
            .strip_prefix('/')
            .unwrap_or(&self.relative)
            .split('/')
            .collect()
    }
}

/// Joins `path` (which must pass [`check_path`]) under `base`, which may carry a path prefix
/// such as `/v1`. The origin is always `base`'s; the result is re-checked after the URL parser
/// has encoded it, so the allow-list sees exactly what goes on the wire.
pub fn join(base: &reqwest::Url, path: &str) -> Result<Joined, String> {
    check_path(path)?;
    let prefix = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(None);
    url.set_fragment(None);
    // Defence in depth: none of these can fail for a checked path, but the cost is nothing and
    // a parser surprise must deny, not send.
    if url.origin() != base.origin() {
        return Err("the path would change the API's origin".into());
    }
    let relative = url
        .path()
        .strip_prefix(prefix)
        .filter(|r| r.starts_with('/'))
        .ok_or_else(|| "the path escapes the API's base path".to_string())?
        .to_string();
    check_path(&relative)?;
    Ok(Joined { url, relative })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile paths, each with a word its denial reason must contain.
    const HOSTILE: &[(&str, &str)] = &[
        ("/../x", "`..`"),
        ("/a/../../x", "`..`"),
        ("/./a", "`.`"),
        ("/a/.", "`.`"),
        ("/%2e%2e/x", "`..`"),
        ("/%2E%2E/x", "`..`"),
        ("/%2E./x", "`..`"),
        ("/.%2e/x", "`..`"),
        ("/%2e/x", "`.`"),
        ("//evil.example/x", "exactly one"),
        ("///x", "exactly one"),
        ("/a%2Fb", "%2F"),
        ("/a%2fb", "%2F"),
        ("/a%5Cb", "%5C"),
        ("/a%5cb", "%5C"),
        ("/a\\b", "`\\`"),
        ("\\\\evil.example/x", "start with `/`"),
        ("/\\evil.example/x", "`\\`"),
        ("/a?b", "`?`"),
        ("/a?locationId=other", "`?`"),
        ("/a#b", "`#`"),
        ("/a%00", "control"),
        ("/a%1f", "control"),
        ("/a%7F", "control"),
        ("/a%C2%85", "control"),
        ("/a\u{7}", "control"),
        ("/a\tb", "control"),
        ("/a\nb", "control"),
        ("/a\u{7f}", "control"),
        ("a", "start with `/`"),
        ("https://evil.example/x", "start with `/`"),
        ("", "empty"),
        ("/", "empty segment"),
        ("/a//b", "empty segment"),
        ("/a/", "empty segment"),
        ("/a%", "percent escape"),
        ("/a%2", "percent escape"),
        ("/a%zz", "percent escape"),
        ("/a%+1", "percent escape"),
        ("/a%ff", "UTF-8"),
    ];

    #[test]
    fn hostile_paths_are_denied_with_a_reason() {
        for (path, word) in HOSTILE {
            let why = check_path(path).expect_err(path);
            assert!(why.contains(word), "{path:?}: {why:?} lacks {word:?}");
        }
    }

    #[test]
    fn overlong_paths_are_denied() {
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert!(check_path(&long).unwrap_err().contains("limit"));
        let fits = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert!(check_path(&fits).is_ok());
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/contacts/abc123",
            "/contacts/abc/tags",
            "/a...b/..c/c..",
            "/search/John%20Doe",
            "/users/caf%C3%A9",
            "/emoji/ü",
            "/a;b=c/@x:y",
        ] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn join_keeps_origin_and_base_path() {
        let j = join(&url("https://api.example/v1"), "/contacts/1").unwrap();
        assert_eq!(j.url.as_str(), "https://api.example/v1/contacts/1");
        assert_eq!(j.relative, "/contacts/1");
        assert_eq!(j.segments(), vec!["contacts", "1"]);

        let j = join(&url("https://api.example/v1/"), "/contacts/1").unwrap();
        assert_eq!(j.url.as_str(), "https://api.example/v1/contacts/1");
        assert_eq!(j.relative, "/contacts/1");

        let j = join(&url("http://127.0.0.1:9/"), "/a").unwrap();
        assert_eq!(j.url.as_str(), "http://127.0.0.1:9/a");
        assert_eq!(j.relative, "/a");
    }

    #[test]
    fn join_encodes_what_the_parser_encodes_and_matching_sees_it() {
        let j = join(&url("https://api.example"), "/search/John Doe/ü").unwrap();
        assert_eq!(j.relative, "/search/John%20Doe/%C3%BC");
        assert_eq!(j.segments(), vec!["search", "John%20Doe", "%C3%BC"]);
    }

    #[test]
    fn join_refuses_hostile_paths() {
        let base = url("https://api.example/v1");
        for (path, _) in HOSTILE {
            assert!(join(&base, path).is_err(), "{path:?}");
        }
    }
}
