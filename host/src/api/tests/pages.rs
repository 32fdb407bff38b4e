//! Pagination against a fake that pages a list of 25 items in each of HighLevel's styles: every
//! walk reaches the end with the right parameters, stops at `max_pages`, and never follows a
//! `nextPageUrl` it may not.

use std::time::Duration;

use serde_json::{Value, json};

use super::fake::{Fake, Reply, Seen, client, config, ctx_with, get, post, quick_schedule};
use crate::{
    api::{ApiClient, ApiError, ApiRequest, CallContext, PageStyle, PathPattern},
    config::ApiConfig,
};

const N: usize = 25;

const RULES: &[&str] = &[
    "GET /opportunities/search",
    "GET /opportunities",
    "GET /users/search",
    "GET /products",
    "POST /contacts/search",
    "POST /objects/*/records/search",
    "GET /contacts",
    "GET /conversations/*/messages",
    "GET /cursor",
    "GET /tokens",
];

fn item(i: usize) -> Value {
    json!({"id": format!("i{i:02}"), "searchAfter": [i, format!("i{i:02}")]})
}

fn slice(from: usize, limit: usize) -> (Vec<Value>, bool) {
    let end = (from + limit).min(N);
    ((from.min(N)..end).map(item).collect(), end < N)
}

fn number(v: Option<String>, default: usize) -> usize {
    v.map_or(default, |v| v.parse().unwrap())
}

/// Index after the item named `id` (`iNN`).
fn after(id: Option<String>) -> usize {
    id.map_or(0, |id| id[1..].parse::<usize>().unwrap() + 1)
}

/// Pages the 25 items the way each endpoint does.
fn paging(seen: &Seen) -> Reply {
    let limit = number(seen.query("limit"), 100);
    let host = seen.headers["host"].to_str().unwrap().to_string();
    let answer = match (seen.method.as_str(), seen.path()) {
        ("GET", "/opportunities/search") => {
            let page = number(seen.query("page"), 1);
            let (items, more) = slice((page - 1) * limit, limit);
            json!({"opportunities": items, "meta": {"total": N, "currentPage": page,
                   "nextPage": if more { json!(page + 1) } else { Value::Null }}})
        }
        ("GET", "/users/search") => {
            let (items, _) = slice(number(seen.query("skip"), 0), limit);
            json!({"users": items, "count": N})
        }
        ("GET", "/products") => {
            let (items, _) = slice(number(seen.query("offset"), 0), limit);
            json!({"products": items, "total": [{"total": N}]})
        }
        ("POST", "/contacts/search") => {
            let body = seen.json();
            let (page, size) = (
                body["page"].as_u64().unwrap(),
                body["pageLimit"].as_u64().unwrap(),
            );
            let (items, _) = slice((page as usize - 1) * size as usize, size as usize);
            json!({"contacts": items, "total": N})
        }
        ("POST", "/objects/pets/records/search") => {
            let body = seen.json();
            let from = body["searchAfter"][0]
                .as_u64()
                .map_or(0, |i| i as usize + 1);
            let (items, _) = slice(from, body["pageLimit"].as_u64().unwrap() as usize);
            json!({"records": items})
        }
        ("GET", "/contacts") => {
            let (items, more) = slice(after(seen.query("startAfterId")), limit);
            let last = items.last().map(|i| i["id"].clone());
            match (more, last) {
                (true, Some(last)) => json!({"contacts": items,
                    "meta": {"startAfter": 1_700_000_000_000u64, "startAfterId": last}}),
                _ => json!({"contacts": items, "meta": {"total": N}}),
            }
        }
        ("GET", "/opportunities") => {
            let (items, more) = slice(after(seen.query("startAfterId")), limit);
            let last = items
                .last()
                .map_or(String::new(), |i| i["id"].as_str().unwrap().to_string());
            let next = match seen.query("evil").as_deref() {
                Some("origin") => json!("http://evil.example/opportunities?locationId=loc1"),
                Some("path") => json!(format!("http://{host}/admin/secrets?locationId=loc1")),
                Some("tenant") => json!(format!("http://{host}/opportunities?locationId=loc2")),
                _ if more => json!(format!(
                    "http://{host}/opportunities?locationId=loc1&startAfterId={last}&limit={limit}"
                )),
                _ => Value::Null,
            };
            json!({"opportunities": items, "meta": {"nextPageUrl": next}})
        }
        ("GET", "/conversations/c1/messages") => {
            let (items, more) = slice(after(seen.query("lastMessageId")), limit);
            let last = items.last().map(|i| i["id"].clone());
            json!({"messages": {"lastMessageId": last, "nextPage": more, "messages": items}})
        }
        ("GET", "/cursor") => {
            let from = seen.query("cursor").map_or(0, |c| c[1..].parse().unwrap());
            let (items, more) = slice(from, limit);
            let next = more.then(|| format!("k{}", from + limit));
            json!({"items": items, "nextCursor": next})
        }
        ("GET", "/tokens") => {
            let from = seen
                .query("pageToken")
                .map_or(0, |c| c[1..].parse().unwrap());
            let (items, more) = slice(from, limit);
            let next = more.then(|| format!("k{}", from + limit));
            json!({"data": items, "meta": {"nextPageToken": next}})
        }
        other => panic!("unexpected {other:?}"),
    };
    Reply::json(answer)
}

fn paging_config(fake: &Fake) -> ApiConfig {
    let mut cfg = config(fake.base(""), None);
    cfg.max_response = 1 << 20;
    cfg.page_limit = 10;
    cfg.list_endpoints = vec![(PathPattern::parse("/users/search").unwrap(), 7)];
    cfg
}

async fn setup() -> (Fake, ApiClient, CallContext) {
    let fake = Fake::with_handler(paging).await;
    let client = client(paging_config(&fake), quick_schedule());
    (fake, client, ctx_with(RULES, Duration::from_secs(30)))
}

/// Every item id in a page, in order.
fn ids(body: &[u8]) -> Vec<String> {
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Array(items) => out.extend(
                items
                    .iter()
                    .filter_map(|i| i.get("id").and_then(Value::as_str).map(String::from)),
            ),
            Value::Object(map) => map.values().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    collect(&serde_json::from_slice(body).unwrap(), &mut out);
    out
}

/// Walks to the end; returns the ids in order and the pages fetched.
async fn walk(
    client: &ApiClient,
    ctx: &CallContext,
    req: ApiRequest,
    style: PageStyle,
) -> (Vec<String>, u32) {
    let mut pages = client.pages(ctx, req, style, 50);
    let mut all = vec![];
    while let Some(page) = pages.next().await {
        all.extend(ids(&page.unwrap().body));
    }
    assert!(!pages.truncated());
    (all, pages.pages_sent())
}

fn everything() -> Vec<String> {
    (0..N).map(|i| format!("i{i:02}")).collect()
}

fn with_location(mut req: ApiRequest) -> ApiRequest {
    req.query.push(("locationId".into(), "loc1".into()));
    req
}

#[tokio::test]
async fn query_counting_styles_walk_to_the_end() {
    let (fake, client, ctx) = setup().await;
    for (path, style, param, expected) in [
        (
            "/opportunities/search",
            PageStyle::Page,
            "page",
            vec!["1", "2", "3"],
        ),
        (
            "/users/search",
            PageStyle::Skip,
            "skip",
            vec!["0", "7", "14", "21"],
        ),
        (
            "/products",
            PageStyle::Offset,
            "offset",
            vec!["0", "10", "20"],
        ),
    ] {
        let before = fake.count();
        let (all, pages) = walk(&client, &ctx, with_location(get(path)), style).await;
        assert_eq!(all, everything(), "{path}");
        assert_eq!(pages as usize, expected.len(), "{path}");
        let seen = &fake.seen()[before..];
        let sent: Vec<String> = seen.iter().map(|s| s.query(param).unwrap()).collect();
        assert_eq!(sent, expected, "{path}");
        // `limit` always sent: the declared one for /users/search, else page_limit.
        let limit = if path == "/users/search" { "7" } else { "10" };
        assert!(
            seen.iter()
                .all(|s| s.query("limit").as_deref() == Some(limit)),
            "{path}"
        );
        assert!(
            seen.iter()
                .all(|s| s.query("locationId").as_deref() == Some("loc1"))
        );
    }
    // Each page is one call with its own number.
    let keys: Vec<String> = fake.seen()[..3]
        .iter()
        .map(|s| s.headers["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["evt1-tagger:3", "evt1-tagger:4", "evt1-tagger:5"]);
}

#[tokio::test]
async fn search_bodies_walk_by_page_and_by_search_after() {
    let (fake, client, ctx) = setup().await;
    let filters = json!({"locationId": "loc1", "filters": [{"field": "tags", "operator": "contains", "value": "vip"}]});
    let (all, pages) = walk(
        &client,
        &ctx,
        post("/contacts/search", filters.clone()),
        PageStyle::SearchPage,
    )
    .await;
    assert_eq!(all, everything());
    assert_eq!(pages, 3);
    let bodies: Vec<Value> = fake.seen().iter().map(Seen::json).collect();
    assert_eq!(
        bodies.iter().map(|b| b["page"].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2), json!(3)]
    );
    assert!(
        bodies
            .iter()
            .all(|b| b["pageLimit"] == 10 && b["filters"] == filters["filters"])
    );

    let (all, pages) = walk(
        &client,
        &ctx,
        post(
            "/objects/pets/records/search",
            json!({"locationId": "loc1"}),
        ),
        PageStyle::SearchAfter,
    )
    .await;
    assert_eq!(all, everything());
    assert_eq!(pages, 3);
    let after: Vec<Value> = fake.seen()[3..]
        .iter()
        .map(|s| s.json()["searchAfter"].clone())
        .collect();
    assert_eq!(after, [Value::Null, json!([9, "i09"]), json!([19, "i19"])]);
}

#[tokio::test]
async fn cursor_styles_walk_to_the_end() {
    let (fake, client, ctx) = setup().await;
    for (path, style, param, expected) in [
        (
            "/contacts",
            PageStyle::StartAfter,
            "startAfterId",
            [None, Some("i09"), Some("i19")],
        ),
        (
            "/opportunities",
            PageStyle::StartAfter,
            "startAfterId",
            [None, Some("i09"), Some("i19")],
        ),
        (
            "/conversations/c1/messages",
            PageStyle::LastMessageId,
            "lastMessageId",
            [None, Some("i09"), Some("i19")],
        ),
        (
            "/cursor",
            PageStyle::next_cursor(),
            "cursor",
            [None, Some("k10"), Some("k20")],
        ),
        (
            "/tokens",
            PageStyle::page_token(),
            "pageToken",
            [None, Some("k10"), Some("k20")],
        ),
    ] {
        let before = fake.count();
        let (all, pages) = walk(&client, &ctx, with_location(get(path)), style).await;
        assert_eq!(all, everything(), "{path}");
        assert_eq!(pages, 3, "{path}");
        let seen = &fake.seen()[before..];
        let sent: Vec<Option<String>> = seen.iter().map(|s| s.query(param)).collect();
        let expected: Vec<Option<String>> = expected.iter().map(|e| e.map(String::from)).collect();
        assert_eq!(sent, expected, "{path}");
        assert!(
            seen.iter()
                .all(|s| s.query("limit").as_deref() == Some("10")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_walk_stops_at_max_pages() {
    let (fake, client, ctx) = setup().await;
    let mut pages = client.pages(
        &ctx,
        with_location(get("/opportunities/search")),
        PageStyle::Page,
        2,
    );
    assert!(pages.next().await.unwrap().is_ok());
    assert!(pages.next().await.unwrap().is_ok());
    assert!(pages.next().await.is_none());
    assert!(pages.truncated());
    assert_eq!(fake.count(), 2);

    // The API's own ceiling bounds what a plugin may ask for.
    let mut cfg = paging_config(&fake);
    cfg.max_pages = 1;
    let capped = super::fake::client(cfg, quick_schedule());
    let mut pages = capped.pages(
        &ctx,
        with_location(get("/opportunities/search")),
        PageStyle::Page,
        1000,
    );
    assert!(pages.next().await.unwrap().is_ok());
    assert!(pages.next().await.is_none());
    assert!(pages.truncated());
}

#[tokio::test]
async fn a_next_page_url_is_followed_only_where_the_plugin_may_go() {
    let (fake, client, ctx) = setup().await;
    for (evil, why) in [
        ("origin", "another origin"),
        ("path", "not in the plugin's allow-list"),
        ("tenant", "must be this delivery's tenant"),
    ] {
        let before = fake.count();
        let mut req = with_location(get("/opportunities"));
        req.query.push(("evil".into(), evil.into()));
        let mut pages = client.pages(&ctx, req, PageStyle::StartAfter, 10);
        assert!(pages.next().await.unwrap().is_ok());
        let err = pages.next().await.unwrap().unwrap_err();
        assert!(
            matches!(&err, ApiError::Denied(m) if m.contains(why)),
            "{evil}: {err:?}"
        );
        assert!(pages.next().await.is_none());
        assert_eq!(
            fake.count(),
            before + 1,
            "{evil}: nothing sent after the first page"
        );
    }
}

#[tokio::test]
async fn a_malformed_walk_is_denied_before_sending() {
    let (fake, client, ctx) = setup().await;
    let mut pages = client.pages(
        &ctx,
        with_location(get("/contacts")),
        PageStyle::SearchPage,
        10,
    );
    assert!(matches!(pages.next().await, Some(Err(ApiError::Denied(_)))));
    assert!(pages.next().await.is_none());
    assert_eq!(fake.count(), 0);
}
