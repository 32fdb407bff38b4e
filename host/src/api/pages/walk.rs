//! The pure part of pagination: how each style's first request is completed, and how the next
//! request follows from the previous request and its answer. No I/O: the iterator in `mod.rs`
//! sends; this decides.
//!
//! End of a walk, per style: a page with fewer items than the `limit` sent (or an explicit
//! `nextPage: null`/`false` in the answer or its `meta`) for the counting styles; a missing or
//! repeated cursor for the cursor styles (a cursor that does not move would loop forever). The
//! items are the array at `items_at` (a JSON pointer) when given, else the longest array among
//! the answer's top-level values, else among the values of its top-level objects.

use serde_json::{Map, Value};

use super::{PageStyle, next_url};
use crate::api::ApiRequest;

/// Where a walk stands.
#[derive(Clone, Debug)]
pub struct Walk {
    /// The paging style.
    pub style: PageStyle,
    /// The `limit` (or body `pageLimit`) sent with every page.
    pub limit: u64,
    /// JSON pointer to the items, if the caller named it.
    pub items_at: Option<String>,
    /// The last cursor followed, to stop on one that does not move.
    last_cursor: Option<String>,
}

/// Completes the first request of a walk: `limit` (defaulted to `default_limit`) and the start
/// position. The error is a reason for `Denied`.
pub fn first(style: PageStyle, req: &mut ApiRequest, default_limit: u32) -> Result<Walk, String> {
    let limit = if style.uses_body() {
        if req.method != http::Method::POST {
            return Err(format!(
                "{style:?} pagination walks POST search bodies; this request is {}",
                req.method
            ));
        }
        let mut body = body_object(req)?;
        let limit = number_field(&body, "pageLimit")?.unwrap_or(u64::from(default_limit));
        body.insert("pageLimit".into(), limit.into());
        if style == PageStyle::SearchPage && number_field(&body, "page")?.is_none() {
            body.insert("page".into(), 1.into());
        }
        req.body = Some(Value::Object(body).to_string());
        limit
    } else {
        let limit = match query_number(req, "limit")? {
            Some(limit) => limit,
            None => {
                req.query.push(("limit".into(), default_limit.to_string()));
                u64::from(default_limit)
            }
        };
        let start = match style {
            PageStyle::Page => Some(("page", 1)),
            PageStyle::Skip => Some(("skip", 0)),
            PageStyle::Offset => Some(("offset", 0)),
            _ => None,
        };
        if let Some((name, value)) = start
            && query_number(req, name)?.is_none()
        {
            req.query.push((name.into(), value.to_string()));
        }
        limit
    };
    if limit == 0 {
        return Err("`limit` must be at least 1".into());
    }
    Ok(Walk {
        style,
        limit,
        items_at: None,
        last_cursor: None,
    })
}

/// The request for the page after the one `req` fetched and `body` answered; None at the end.
/// `base` is the API's base URL (for `nextPageUrl`). The error is a reason for `Denied`.
pub fn next(
    walk: &mut Walk,
    req: &ApiRequest,
    body: &[u8],
    base: Option<&reqwest::Url>,
) -> Result<Option<ApiRequest>, String> {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        // Nothing to follow in an answer that is not JSON; the plugin has the page as is.
        return Ok(None);
    };
    let count = items(&answer, walk.items_at.as_deref());
    let short = count.is_none_or(|n| (n as u64) < walk.limit) || says_last(&answer);
    let mut next = req.clone();
    match walk.style.clone() {
        PageStyle::Page | PageStyle::Skip | PageStyle::Offset => {
            if short {
                return Ok(None);
            }
            let (name, step) = match walk.style {
                PageStyle::Page => ("page", 1),
                PageStyle::Skip => ("skip", count.unwrap_or(0) as u64),
                _ => ("offset", count.unwrap_or(0) as u64),
            };
            let at = query_number(req, name)?.unwrap_or(0);
            set_query(&mut next, name, &(at + step).to_string());
        }
        PageStyle::SearchPage => {
            if short {
                return Ok(None);
            }
            let mut body = body_object(req)?;
            let page = number_field(&body, "page")?.unwrap_or(1);
            body.insert("page".into(), (page + 1).into());
            next.body = Some(Value::Object(body).to_string());
        }
        PageStyle::SearchAfter => {
            if count.is_none_or(|n| (n as u64) < walk.limit) {
                return Ok(None);
            }
            let Some(after) = last_item(&answer, walk.items_at.as_deref())
                .and_then(|item| item.get("searchAfter"))
                .filter(|v| !v.is_null())
                .cloned()
            else {
                return Ok(None);
            };
            if !walk.advance(after.to_string()) {
                return Ok(None);
            }
            let mut body = body_object(req)?;
            body.insert("searchAfter".into(), after);
            next.body = Some(Value::Object(body).to_string());
        }
        PageStyle::StartAfter => {
            if count == Some(0) {
                return Ok(None);
            }
            let meta = answer.get("meta");
            let url = meta
                .and_then(|m| m.get("nextPageUrl"))
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty());
            if let Some(url) = url {
                if !walk.advance(url.to_string()) {
                    return Ok(None);
                }
                let base =
                    base.ok_or("the API is not configured, so nextPageUrl cannot be checked")?;
                let (path, mut query) = next_url::follow(base, url)?;
                if !query.iter().any(|(k, _)| k == "limit") {
                    query.push(("limit".into(), walk.limit.to_string()));
                }
                next.path = path;
                next.query = query;
            } else {
                let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(scalar);
                let (Some(after), Some(after_id)) = (field("startAfter"), field("startAfterId"))
                else {
                    return Ok(None);
                };
                if !walk.advance(format!("{after}/{after_id}")) {
                    return Ok(None);
                }
                set_query(&mut next, "startAfter", &after);
                set_query(&mut next, "startAfterId", &after_id);
            }
        }
        PageStyle::LastMessageId => {
            let holder = holder_of(&answer, "lastMessageId");
            let more = holder
                .and_then(|h| h.get("nextPage"))
                .and_then(Value::as_bool);
            let last = holder.and_then(|h| h.get("lastMessageId")).and_then(scalar);
            let (Some(true), Some(last)) = (more, last) else {
                return Ok(None);
            };
            if !walk.advance(last.clone()) {
                return Ok(None);
            }
            set_query(&mut next, "lastMessageId", &last);
        }
        PageStyle::Cursor { param, field } => {
            let value = if field.starts_with('/') {
                answer.pointer(&field)
            } else {
                answer
                    .get(&field)
                    .or_else(|| answer.get("meta").and_then(|m| m.get(&field)))
            };
            let Some(cursor) = value.and_then(scalar) else {
                return Ok(None);
            };
            if !walk.advance(cursor.clone()) {
                return Ok(None);
            }
            set_query(&mut next, &param, &cursor);
        }
    }
    Ok(Some(next))
}

impl Walk {
    /// Records `cursor` as followed; false if it is the one followed last (no progress).
    fn advance(&mut self, cursor: String) -> bool {
        if self.last_cursor.as_ref() == Some(&cursor) {
            return false;
        }
        self.last_cursor = Some(cursor);
        true
    }
}

/// The number of items in a page, if an item array can be found.
fn items(answer: &Value, at: Option<&str>) -> Option<usize> {
    item_array(answer, at).map(Vec::len)
}

fn last_item<'a>(answer: &'a Value, at: Option<&str>) -> Option<&'a Value> {
    item_array(answer, at).and_then(|items| items.last())
}

fn item_array<'a>(answer: &'a Value, at: Option<&str>) -> Option<&'a Vec<Value>> {
    if let Some(pointer) = at {
        return answer.pointer(pointer).and_then(Value::as_array);
    }
    if let Some(items) = answer.as_array() {
        return Some(items);
    }
    let longest = |object: &'a Map<String, Value>| {
        object
            .values()
            .filter_map(Value::as_array)
            .max_by_key(|a| a.len())
    };
    let top = answer.as_object()?;
    longest(top).or_else(|| {
        top.values()
            .filter_map(Value::as_object)
            .filter_map(longest)
            .max_by_key(|a| a.len())
    })
}

/// Whether the answer says there is no next page (`nextPage` null or false, top-level or in
/// `meta`).
fn says_last(answer: &Value) -> bool {
    [
        answer.get("nextPage"),
        answer.get("meta").and_then(|m| m.get("nextPage")),
    ]
    .into_iter()
    .flatten()
    .any(|v| v.is_null() || *v == Value::Bool(false))
}

/// The object holding `field`: the answer itself or one of its top-level objects.
fn holder_of<'a>(answer: &'a Value, field: &str) -> Option<&'a Value> {
    if answer.get(field).is_some() {
        return Some(answer);
    }
    answer
        .as_object()?
        .values()
        .find(|v| v.get(field).is_some())
}

/// A cursor value as query text: a non-empty string or a number.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn set_query(req: &mut ApiRequest, name: &str, value: &str) {
    req.query.retain(|(k, _)| k != name);
    req.query.push((name.into(), value.into()));
}

fn query_number(req: &ApiRequest, name: &str) -> Result<Option<u64>, String> {
    req.query
        .iter()
        .rfind(|(k, _)| k == name)
        .map(|(_, v)| {
            v.parse::<u64>()
                .map_err(|_| format!("query parameter `{name}` must be a whole number"))
        })
        .transpose()
}

fn body_object(req: &ApiRequest) -> Result<Map<String, Value>, String> {
    match req.body.as_deref() {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err("a search body must be a JSON object".into()),
        },
    }
}

fn number_field(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    body.get(name)
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("body field `{name}` must be a whole number"))
        })
        .transpose()
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
