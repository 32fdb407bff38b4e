//! Each style's first request and next-request rule, without a server.

use serde_json::json;

use super::*;
use crate::{api::RetryMode, ids::ApiName};

fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        api: ApiName::new("hl"),
        method: http::Method::GET,
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: None,
        retry: RetryMode::Auto,
        headers: vec![],
    }
}

fn post(path: &str, body: serde_json::Value) -> ApiRequest {
    ApiRequest {
        method: http::Method::POST,
        body: Some(body.to_string()),
        ..get(path, &[])
    }
}

fn q(req: &ApiRequest, name: &str) -> Option<String> {
    req.query
        .iter()
        .rfind(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn body(req: &ApiRequest) -> serde_json::Value {
    serde_json::from_str(req.body.as_deref().unwrap()).unwrap()
}

fn page(items: usize, extra: serde_json::Value) -> Vec<u8> {
    let mut answer = json!({ "items": (0..items).map(|i| json!({"id": i})).collect::<Vec<_>>() });
    if let (Some(a), Some(e)) = (answer.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    answer.to_string().into_bytes()
}

fn base() -> reqwest::Url {
    reqwest::Url::parse("https://api.example/v1").unwrap()
}

#[test]
fn first_requests_always_carry_a_limit_and_a_start() {
    let mut req = get("/opportunities/search", &[]);
    let walk = first(PageStyle::Page, &mut req, 100).unwrap();
    assert_eq!(walk.limit, 100);
    assert_eq!(q(&req, "limit").as_deref(), Some("100"));
    assert_eq!(q(&req, "page").as_deref(), Some("1"));

    let mut req = get("/users/search", &[("limit", "20"), ("skip", "40")]);
    let walk = first(PageStyle::Skip, &mut req, 100).unwrap();
    assert_eq!(walk.limit, 20);
    assert_eq!(q(&req, "skip").as_deref(), Some("40"));

    let mut req = post("/contacts/search", json!({"filters": []}));
    first(PageStyle::SearchPage, &mut req, 50).unwrap();
    assert_eq!(
        body(&req),
        json!({"filters": [], "page": 1, "pageLimit": 50})
    );

    for (style, mut req) in [
        (PageStyle::SearchAfter, get("/contacts/search", &[])),
        (PageStyle::Page, get("/x", &[("limit", "ten")])),
        (PageStyle::Page, get("/x", &[("limit", "0")])),
        (PageStyle::SearchPage, post("/x", json!([1]))),
        (PageStyle::SearchPage, post("/x", json!({"page": "one"}))),
    ] {
        assert!(first(style, &mut req, 10).is_err(), "{req:?}");
    }
}

#[test]
fn counting_styles_stop_on_a_short_page() {
    for (style, name, steps) in [
        (PageStyle::Page, "page", ["2", "3"]),
        (PageStyle::Skip, "skip", ["10", "20"]),
        (PageStyle::Offset, "offset", ["10", "20"]),
    ] {
        let mut req = get("/x", &[("limit", "10")]);
        let mut walk = first(style.clone(), &mut req, 100).unwrap();
        for step in steps {
            req = next(&mut walk, &req, &page(10, json!({})), None)
                .unwrap()
                .unwrap();
            assert_eq!(q(&req, name).as_deref(), Some(step), "{style:?}");
            assert_eq!(q(&req, "limit").as_deref(), Some("10"));
        }
        assert!(
            next(&mut walk, &req, &page(3, json!({})), None)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn an_explicit_last_page_ends_a_full_page() {
    let mut req = get("/x", &[("limit", "2")]);
    let mut walk = first(PageStyle::Page, &mut req, 100).unwrap();
    let full_but_last = page(2, json!({"meta": {"nextPage": null}}));
    assert!(
        next(&mut walk, &req, &full_but_last, None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn search_bodies_page_and_search_after() {
    let mut req = post("/contacts/search", json!({"pageLimit": 2}));
    let mut walk = first(PageStyle::SearchPage, &mut req, 100).unwrap();
    let next_req = next(&mut walk, &req, &page(2, json!({})), None)
        .unwrap()
        .unwrap();
    assert_eq!(body(&next_req)["page"], 2);

    let mut req = post("/contacts/search", json!({"pageLimit": 2}));
    let mut walk = first(PageStyle::SearchAfter, &mut req, 100).unwrap();
    assert!(body(&req).get("page").is_none());
    let answer = json!({"contacts": [
        {"id": "a", "searchAfter": [1, "a"]},
        {"id": "b", "searchAfter": [2, "b"]}
    ]});
    let next_req = next(&mut walk, &req, answer.to_string().as_bytes(), None)
        .unwrap()
        .unwrap();
    assert_eq!(body(&next_req)["searchAfter"], json!([2, "b"]));
    // The same cursor again would loop: the walk ends.
    assert!(
        next(&mut walk, &next_req, answer.to_string().as_bytes(), None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn start_after_follows_meta_or_the_next_page_url() {
    let mut req = get("/contacts", &[("locationId", "loc1")]);
    let mut walk = first(PageStyle::StartAfter, &mut req, 10).unwrap();
    let meta = page(
        10,
        json!({"meta": {"startAfter": 1700000000000u64, "startAfterId": "c9"}}),
    );
    let req2 = next(&mut walk, &req, &meta, Some(&base()))
        .unwrap()
        .unwrap();
    assert_eq!(q(&req2, "startAfter").as_deref(), Some("1700000000000"));
    assert_eq!(q(&req2, "startAfterId").as_deref(), Some("c9"));
    assert_eq!(q(&req2, "locationId").as_deref(), Some("loc1"));

    let url = page(
        10,
        json!({"meta": {"nextPageUrl": "https://api.example/v1/contacts?startAfterId=c19&locationId=loc1"}}),
    );
    let req3 = next(&mut walk, &req2, &url, Some(&base()))
        .unwrap()
        .unwrap();
    assert_eq!(req3.path, "/contacts");
    assert_eq!(
        req3.query,
        vec![
            ("startAfterId".to_string(), "c19".to_string()),
            ("locationId".to_string(), "loc1".to_string()),
            ("limit".to_string(), "10".to_string()),
        ]
    );
    let elsewhere = page(
        10,
        json!({"meta": {"nextPageUrl": "https://evil.example/v1/contacts"}}),
    );
    let err = next(&mut walk, &req3, &elsewhere, Some(&base())).unwrap_err();
    assert!(err.contains("another origin"), "{err}");
    // No cursor, or an empty page: the end.
    assert!(
        next(
            &mut walk,
            &req3,
            &page(10, json!({"meta": {}})),
            Some(&base())
        )
        .unwrap()
        .is_none()
    );
    assert!(
        next(
            &mut walk,
            &req3,
            &page(0, json!({"meta": {"startAfterId": "x", "startAfter": 1}})),
            Some(&base())
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn last_message_id_continues_while_next_page_is_true() {
    let mut req = get("/conversations/c1/messages", &[]);
    let mut walk = first(PageStyle::LastMessageId, &mut req, 20).unwrap();
    let answer = |last: &str, more: bool| {
        json!({"messages": {"lastMessageId": last, "nextPage": more, "messages": [{"id": last}]}})
            .to_string()
            .into_bytes()
    };
    let req2 = next(&mut walk, &req, &answer("m20", true), None)
        .unwrap()
        .unwrap();
    assert_eq!(q(&req2, "lastMessageId").as_deref(), Some("m20"));
    assert!(
        next(&mut walk, &req2, &answer("m40", false), None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn opaque_cursors_are_read_top_level_in_meta_or_at_a_pointer() {
    for (style, answer, param) in [
        (
            PageStyle::next_cursor(),
            json!({"items": [1], "nextCursor": "abc"}),
            "cursor",
        ),
        (
            PageStyle::page_token(),
            json!({"items": [1], "meta": {"nextPageToken": "abc"}}),
            "pageToken",
        ),
        (
            PageStyle::Cursor {
                param: "after".into(),
                field: "/paging/next".into(),
            },
            json!({"items": [1], "paging": {"next": "abc"}}),
            "after",
        ),
    ] {
        let mut req = get("/x", &[]);
        let mut walk = first(style, &mut req, 10).unwrap();
        let req2 = next(&mut walk, &req, answer.to_string().as_bytes(), None)
            .unwrap()
            .unwrap();
        assert_eq!(q(&req2, param).as_deref(), Some("abc"));
        assert_eq!(req2.query.iter().filter(|(k, _)| k == param).count(), 1);
        let end = json!({"items": [1], "nextCursor": null, "meta": {}});
        assert!(
            next(&mut walk, &req2, end.to_string().as_bytes(), None)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn items_are_the_named_or_the_longest_array() {
    let answer = json!({"products": [1, 2, 3], "total": [{"total": 3}]});
    assert_eq!(items(&answer, None), Some(3));
    let nested = json!({"messages": {"messages": [1, 2], "tags": []}});
    assert_eq!(items(&nested, None), Some(2));
    assert_eq!(items(&nested, Some("/messages/tags")), Some(0));
    assert_eq!(items(&json!([1, 2]), None), Some(2));
    assert_eq!(items(&json!({"n": 1}), None), None);
}

#[test]
fn answers_that_are_not_json_end_the_walk() {
    let mut req = get("/x", &[]);
    let mut walk = first(PageStyle::Page, &mut req, 10).unwrap();
    assert!(next(&mut walk, &req, b"<html>", None).unwrap().is_none());
}
