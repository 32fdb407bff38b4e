//! What a plugin may call: per API, an allow-list of `METHOD /path/pattern` rules from its
//! manifest. Deny by default: an API without an entry allows nothing, and an empty list allows
//! nothing.
//!
//! Pattern segments are literal text, `*` (exactly one non-empty segment) or `**` (one or more
//! segments: "the rest", only as the last segment). Rules are matched against the segments of the
//! FINAL request path below the API's base path, as sent on the wire (percent-encoded), so a
//! literal never matches an encoded spelling of itself — the safe direction.
//!
//! Invariant: a parsed [`Rule`] never contains empty, `.` or `..` segments, percent escapes,
//! `?`, `#`, `\` or control characters, so what a rule allows is exactly what it reads as.

use std::{collections::BTreeMap, fmt};

use crate::ids::ApiName;

/// A plugin's grants: the APIs it may call and, for each, what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// API name (`[apis.<name>]` in the host config) -> what the plugin may call on it.
    pub apis: BTreeMap<ApiName, AllowList>,
}

impl Capabilities {
    /// The allow-list for `api`, if the plugin was granted anything on it.
    pub fn allow_list(&self, api: &ApiName) -> Option<&AllowList> {
        self.apis.get(api)
    }
}

/// Allowed `METHOD /path` patterns for one API. Build it with [`AllowList::parse`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

impl AllowList {
    /// Parses manifest rules such as `GET /contacts/*`. The error names the rule (1-based
    /// position and text), says what is wrong and how to write it instead.
    ///
    /// The error stays a `String` because it is one field's message inside the manifest
    /// validator's problem list, which is what the plugin loader codes against.
    pub fn parse(rules: &[String]) -> Result<AllowList, String> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Rule::parse(text).map_err(|why| format!("rule {} `{}`: {why}", i + 1, text))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { rules })
    }

    /// The rules, in manifest order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule allowing `method` on the path made of `segments` (the final path below the
    /// base path, split on `/`, without the leading empty part), if any.
    pub fn find(&self, method: &http::Method, segments: &[&str]) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(method, segments))
    }
}

/// One allow-list rule, e.g. `GET /contacts/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    method: http::Method,
    path: PathPattern,
}

/// A path pattern such as `/contacts/*` or `/opportunities/**`, without a method: what allow-list
/// rules, cache rules and list-endpoint declarations match against the final path below the
/// API's base path. Build it with [`PathPattern::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written; it is the path template in logs.
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses `/pattern`; the error says what is wrong and how to write it instead.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        Ok(PathPattern {
            text: text.to_string(),
            segments: parse_pattern(text)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path made of `segments` (split on `/`, without the leading empty part)
    /// matches.
    pub fn matches(&self, segments: &[&str]) -> bool {
        for (i, pattern) in self.segments.iter().enumerate() {
            match pattern {
                // Parsing guarantees `**` is last; it needs at least one segment here.
                Segment::Rest => return segments.len() > i,
                Segment::One => {
                    if segments.get(i).is_none_or(|s| s.is_empty()) {
                        return false;
                    }
                }
                Segment::Literal(literal) => {
                    if segments.get(i) != Some(&literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        segments.len() == self.segments.len()
    }

    /// Whether `path` (one leading `/`) matches.
    pub fn matches_path(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        self.matches(&segments)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One segment of a rule's pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Must equal the request segment exactly (case-sensitive).
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: one or more segments; only last.
    Rest,
}

/// Methods a rule may name: the WIT `method` enum.
const METHODS: [http::Method; 5] = [
    http::Method::GET,
    http::Method::POST,
    http::Method::PUT,
    http::Method::PATCH,
    http::Method::DELETE,
];

/// Characters allowed in a literal segment besides ASCII letters and digits: RFC 3986
/// `unreserved` and `sub-delims` plus `:` and `@`, i.e. what a path segment may hold without
/// percent-encoding. Percent escapes are left out so each rule has one spelling.
const SEGMENT_PUNCTUATION: &str = "-._~!$&'()+,;=:@";

impl Rule {
    /// Parses `METHOD /pattern`; the error says what is wrong (without the rule's position).
    fn parse(text: &str) -> Result<Rule, String> {
        let mut parts = text.split_whitespace();
        let (Some(method), Some(pattern)) = (parts.next(), parts.next()) else {
            return Err("a rule is `METHOD /path`, e.g. `GET /contacts/*`".into());
        };
        if parts.next().is_some() {
            return Err(
                "a rule is `METHOD /path` and nothing more; query parameters are \
                        not part of rules"
                    .into(),
            );
        }
        let method = parse_method(method)?;
        Ok(Rule {
            method,
            path: PathPattern::parse(pattern)?,
        })
    }

    /// The method this rule allows.
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The path pattern as written (e.g. `/contacts/*`): the path template for logs.
    pub fn pattern(&self) -> &str {
        self.path.as_str()
    }

    /// Whether this rule allows `method` on `segments`.
    pub fn matches(&self, method: &http::Method, segments: &[&str]) -> bool {
        *method == self.method && self.path.matches(segments)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn parse_method(text: &str) -> Result<http::Method, String> {
    if let Some(method) = METHODS.iter().find(|m| m.as_str() == text) {
        return Ok(method.clone());
    }
    let upper = text.to_ascii_uppercase();
    if METHODS.iter().any(|m| m.as_str() == upper) {
        return Err(format!("write the method in upper case: `{upper}`"));
    }
    Err(format!(
        "unknown method `{text}`; use GET, POST, PUT, PATCH or DELETE"
    ))
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(format!(
            "the path must start with `/`, e.g. `/{}`",
            pattern.trim_start_matches('/')
        ));
    };
    if rest.is_empty() {
        return Err(
            "the path `/` names nothing; write e.g. `/contacts/*` (or `/**` for \
                    every path)"
                .into(),
        );
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| parse_segment(part, i == last))
        .collect()
}

fn parse_segment(part: &str, is_last: bool) -> Result<Segment, String> {
    match part {
        "" => Err("the path has an empty segment (`//` or a trailing `/`); remove it".into()),
        "**" if is_last => Ok(Segment::Rest),
        "**" => Err("`**` matches the rest of the path, so it may only be the last segment".into()),
        "*" => Ok(Segment::One),
        "." | ".." => Err("`.` and `..` segments are not allowed".into()),
        _ if part.contains('*') => Err(format!(
            "`*` must be a whole segment (`/contacts/*`), not part of one (`{part}`)"
        )),
        _ => match part
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !SEGMENT_PUNCTUATION.contains(*c))
        {
            None => Ok(Segment::Literal(part.to_string())),
            Some('?') => Err("`?` is not allowed: query parameters are not part of rules".into()),
            Some('%') => Err(format!(
                "percent escapes are not allowed in rules (`{part}`); use `*` for that segment"
            )),
            Some(c) if c.is_control() => Err("control characters are not allowed in a path".into()),
            Some(c) => Err(format!(
                "`{c}` is not allowed in a path segment; use letters, digits and `{SEGMENT_PUNCTUATION}`"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    fn list(rules: &[&str]) -> AllowList {
        AllowList::parse(&rules.iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn parse_err(rule: &str) -> String {
        AllowList::parse(&[rule.to_string()]).unwrap_err()
    }

    fn segs(path: &str) -> Vec<&str> {
        path.trim_start_matches('/').split('/').collect()
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        let l = list(&["GET /contacts/*"]);
        assert!(l.find(&Method::GET, &segs("/contacts/abc")).is_some());
        assert!(l.find(&Method::GET, &segs("/contacts")).is_none());
        assert!(l.find(&Method::GET, &segs("/contacts/abc/tags")).is_none());
        assert!(l.find(&Method::GET, &["contacts", ""]).is_none());
    }

    #[test]
    fn double_star_matches_one_or_more_trailing_segments() {
        let l = list(&["GET /opportunities/**"]);
        assert!(l.find(&Method::GET, &segs("/opportunities/a")).is_some());
        assert!(
            l.find(&Method::GET, &segs("/opportunities/a/b/c"))
                .is_some()
        );
        assert!(l.find(&Method::GET, &segs("/opportunities")).is_none());
        assert!(l.find(&Method::GET, &segs("/contacts/a")).is_none());
        assert!(
            list(&["GET /**"])
                .find(&Method::GET, &segs("/x/y"))
                .is_some()
        );
    }

    #[test]
    fn literals_are_exact_and_methods_must_match() {
        let l = list(&["POST /contacts/*/tags", "GET /opportunities/pipelines"]);
        let rule = l.find(&Method::POST, &segs("/contacts/c1/tags")).unwrap();
        assert_eq!(rule.pattern(), "/contacts/*/tags");
        assert_eq!(rule.to_string(), "POST /contacts/*/tags");
        assert!(l.find(&Method::GET, &segs("/contacts/c1/tags")).is_none());
        assert!(
            l.find(&Method::DELETE, &segs("/contacts/c1/tags"))
                .is_none()
        );
        assert!(l.find(&Method::POST, &segs("/contacts/c1/Tags")).is_none());
        assert!(
            l.find(&Method::GET, &segs("/opportunities/pipelines"))
                .is_some()
        );
        // An encoded spelling is a different segment.
        assert!(
            l.find(&Method::GET, &segs("/opportunities/pipeline%73"))
                .is_none()
        );
    }

    #[test]
    fn empty_list_and_missing_api_deny() {
        let empty = AllowList::parse(&[]).unwrap();
        assert!(empty.is_empty());
        assert!(empty.find(&Method::GET, &segs("/contacts/1")).is_none());
        let caps = Capabilities::default();
        assert!(caps.allow_list(&ApiName::new("highlevel")).is_none());
    }

    #[test]
    fn errors_name_the_rule_and_the_fix() {
        let e = AllowList::parse(&["GET /a".into(), "get /contacts".into()]).unwrap_err();
        assert!(e.contains("rule 2 `get /contacts`"), "{e}");
        assert!(e.contains("`GET`"), "{e}");
        assert!(parse_err("FETCH /a").contains("unknown method"));
        assert!(parse_err("HEAD /a").contains("unknown method"));
        assert!(parse_err("GET").contains("`METHOD /path`"));
        assert!(parse_err("").contains("`METHOD /path`"));
        assert!(parse_err("GET /a extra").contains("nothing more"));
        assert!(parse_err("GET contacts").contains("must start with `/`"));
        assert!(parse_err("GET /").contains("names nothing"));
        assert!(parse_err("GET /a//b").contains("empty segment"));
        assert!(parse_err("GET /a/").contains("empty segment"));
        assert!(parse_err("GET /**/a").contains("last segment"));
        assert!(parse_err("GET /a*").contains("whole segment"));
        assert!(parse_err("GET /../a").contains("`..`"));
        assert!(parse_err("GET /a/./b").contains("`.`"));
        assert!(parse_err("GET /a?b=1").contains("query"));
        assert!(parse_err("GET /a%2Fb").contains("percent"));
        assert!(parse_err("GET /a\\b").contains("not allowed"));
        assert!(parse_err("GET /a#b").contains("not allowed"));
        assert!(parse_err("GET /a\u{7}").contains("control"));
    }

    #[test]
    fn all_five_methods_parse() {
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let l = list(&[&format!("{m} /x")]);
            assert_eq!(l.rules()[0].method().as_str(), m);
        }
    }
}
