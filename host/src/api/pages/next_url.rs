//! `meta.nextPageUrl`: an absolute (or root-relative) URL chosen by the server, followed only if
//! it stays on the API's configured origin and under its base path. What it names below the base
//! path then goes through the same checks as any plugin request (path rules, allow-list, tenant
//! fields in the query) when the page is sent.
//!
//! Invariant: a followed URL has the base URL's scheme, host and port, no user info, no
//! fragment, and a path below the base path; anything else is refused with a reason.

/// Splits `next` (resolved against `base`) into the path below the base path and its decoded
/// query pairs. The error is a reason for `Denied`.
pub fn follow(base: &reqwest::Url, next: &str) -> Result<(String, Vec<(String, String)>), String> {
    let url = base
        .join(next)
        .map_err(|_| "nextPageUrl is not a URL".to_string())?;
    if url.origin() != base.origin() {
        return Err("nextPageUrl points to another origin than the API's base URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("nextPageUrl carries user info".into());
    }
    if url.fragment().is_some() {
        return Err("nextPageUrl carries a fragment".into());
    }
    let prefix = base.path().trim_end_matches('/');
    let relative = url
        .path()
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))
        .ok_or_else(|| "nextPageUrl leaves the API's base path".to_string())?;
    let query = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok((relative.to_string(), query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> reqwest::Url {
        reqwest::Url::parse("https://api.example/v1").unwrap()
    }

    #[test]
    fn same_origin_urls_are_split_below_the_base_path() {
        let (path, query) = follow(
            &base(),
            "https://api.example/v1/contacts?startAfter=5&startAfterId=c%2F9&limit=100",
        )
        .unwrap();
        assert_eq!(path, "/contacts");
        assert_eq!(
            query,
            vec![
                ("startAfter".to_string(), "5".to_string()),
                ("startAfterId".to_string(), "c/9".to_string()),
                ("limit".to_string(), "100".to_string()),
            ]
        );
        let (path, _) = follow(&base(), "/v1/contacts/x").unwrap();
        assert_eq!(path, "/contacts/x");
    }

    #[test]
    fn anything_else_is_refused() {
        for (next, why) in [
            ("https://evil.example/v1/contacts", "another origin"),
            ("http://api.example/v1/contacts", "another origin"),
            ("https://api.example:8443/v1/contacts", "another origin"),
            ("//evil.example/v1/contacts", "another origin"),
            ("https://user:pw@api.example/v1/contacts", "user info"),
            ("https://api.example/v1/contacts#x", "fragment"),
            ("https://api.example/admin", "base path"),
            ("https://api.example/v1", "base path"),
            ("https://api.example/v10/contacts", "base path"),
            ("https://api.example/v1/../admin", "base path"),
            ("https://api.example/v1/%2e%2e/admin", "base path"),
            ("http://[::1", "not a URL"),
        ] {
            let err = follow(&base(), next).unwrap_err();
            assert!(err.contains(why), "{next}: {err}");
        }
    }
}
