//! Every pagination kind: page increment, offset increment, cursor from the body, from a
//! header and from the Link header (as the next URL), with stop conditions and page sizes.

use std::sync::{Arc, Mutex};

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

/// Records 1..=total, `size` per page; `page_of` says which page a request asks for (1-based).
fn paged(
    total: i64,
    size: i64,
    page_of: impl Fn(&Request) -> i64 + Send + Sync + 'static,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
    move |req: &Request| {
        let page = page_of(req);
        let from = (page - 1) * size + 1;
        let to = (from + size - 1).min(total);
        let data: Vec<Value> = (from..=to)
            .map(|i| json!({"id": i, "name": format!("n{i}")}))
            .collect();
        json_response(json!({ "data": data }))
    }
}

/// A one-stream manifest of `/items` with a `DefaultPaginator` of these fields.
fn paginated(fields: &str) -> String {
    let retriever = format!("paginator:\n  type: DefaultPaginator\n{fields}");
    one_stream("/items", "", &retriever, "")
}

/// Serves `respond` at `/items`, recording every request's query.
async fn serve_recorded(
    server: &MockServer,
    respond: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let record = move |req: &Request| {
        let query = req.url.query().unwrap_or("").to_string();
        l.lock().unwrap().push(query);
        respond(req)
    };
    serve(server, "/items", record).await;
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn page_increment_with_page_size_option() {
    let server = MockServer::start().await;
    let pages = paged(25, 10, |r| {
        query(r, "page").map_or(1, |p| p.parse().unwrap())
    });
    let log = serve_recorded(&server, pages).await;
    let yaml = paginated(
        r#"  pagination_strategy: {type: PageIncrement, page_size: 10, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}
  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: per_page}"#,
    );
    let ids = read_ids(&config_for(&server), &yaml);
    assert_eq!(ids, (1..=25).collect::<Vec<_>>());
    assert_eq!(
        *log.lock().unwrap(),
        vec!["per_page=10", "per_page=10&page=2", "per_page=10&page=3"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_increment_injected_on_first_request() {
    let server = MockServer::start().await;
    let pages = paged(25, 10, |r| {
        query(r, "offset").unwrap().parse::<i64>().unwrap() / 10 + 1
    });
    let log = serve_recorded(&server, pages).await;
    let yaml = paginated(
        r#"  pagination_strategy: {type: OffsetIncrement, page_size: "{{ config['page_size'] }}", inject_on_first_request: true}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}
  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}"#,
    );
    let mut config = config_for(&server);
    config["page_size"] = json!(10);
    assert_eq!(read_ids(&config, &yaml).len(), 25);
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "limit=10&offset=0",
            "limit=10&offset=10",
            "limit=10&offset=20"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_from_the_body_with_stop_condition() {
    let server = MockServer::start().await;
    let log = serve_recorded(&server, |r: &Request| match query(r, "cursor").as_deref() {
        None => json_response(
            json!({"data": [{"id": 1}, {"id": 2}], "meta": {"next": "c2", "has_more": true}}),
        ),
        Some("c2") => {
            json_response(json!({"data": [{"id": 3}], "meta": {"next": "c3", "has_more": false}}))
        }
        Some(other) => {
            ResponseTemplate::new(400).set_body_string(format!("unexpected cursor {other}"))
        }
    })
    .await;
    let yaml = paginated(
        r#"  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ response.meta.next }}"
    stop_condition: "{{ not response['meta']['has_more'] }}"
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: cursor}"#,
    );
    assert_eq!(read_ids(&config_for(&server), &yaml), vec![1, 2, 3]);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_from_a_header_into_a_header() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        let cursor = r
            .headers
            .get("x-page-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        match cursor.as_deref() {
            None => {
                json_response(json!({"data": [{"id": 1}]})).insert_header("X-Next-Cursor", "abc")
            }
            Some("abc") => json_response(json!({"data": [{"id": 2}]})),
            Some(other) => ResponseTemplate::new(400).set_body_string(other.to_string()),
        }
    })
    .await;
    let yaml = paginated(
        r#"  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ headers['X-Next-Cursor'] }}"
  page_token_option: {type: RequestOption, inject_into: header, field_name: X-Page-Cursor}"#,
    );
    assert_eq!(read_ids(&config_for(&server), &yaml), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn link_header_as_the_next_url() {
    let server = MockServer::start().await;
    let base = server.uri();
    serve(&server, "/items", move |r: &Request| {
        let page: i64 = query(r, "page").map_or(1, |p| p.parse().unwrap());
        assert_eq!(query(r, "per_page").as_deref(), Some("2"), "page size kept on every request");
        let data: Vec<Value> = (0..2).map(|i| json!({"id": (page - 1) * 2 + i + 1})).collect();
        let mut resp = json_response(json!({ "data": data }));
        if page < 3 {
            resp = resp.insert_header(
                "Link",
                format!("<{base}/items?page={}&per_page=2>; rel=\"next\", <{base}/items?page=3&per_page=2>; rel=\"last\"", page + 1).as_str(),
            );
        }
        resp
    })
    .await;
    let yaml = one_stream(
        "/items",
        "request_parameters:\n  per_page: 2",
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ headers.link.next.url }}"
    stop_condition: "{{ 'next' not in headers['link'] }}"
  page_token_option: {type: RequestPath}"#,
        "",
    );
    let ids = read_ids(&config_for(&server), &yaml);
    assert_eq!(ids, (1..=6).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_from_the_last_record_until_a_short_page() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        let after: i64 = query(r, "after").map_or(0, |p| p.parse().unwrap());
        let data: Vec<Value> = (after + 1..=(after + 3).min(7))
            .map(|i| json!({"id": i}))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let yaml = paginated(
        r#"  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ last_record['id'] }}"
    stop_condition: "{{ last_page_size < 3 }}"
    page_size: 3
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}"#,
    );
    let ids = read_ids(&config_for(&server), &yaml);
    assert_eq!(ids, (1..=7).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn page_token_in_a_json_body() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/search"))
        .and(matchers::method("POST"))
        .respond_with(|r: &Request| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(
                body["query"]["kind"], "all",
                "the requester's body is kept: {body}"
            );
            match body["paging"]["token"].as_str() {
                None => json_response(json!({"data": [{"id": 1}], "next": "t2"})),
                Some("t2") => json_response(json!({"data": [{"id": 2}], "next": null})),
                Some(other) => ResponseTemplate::new(400).set_body_string(other.to_string()),
            }
        })
        .mount(&server)
        .await;
    let yaml = one_stream(
        "/search",
        "request_body_json:\n  query:\n    kind: all",
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: CursorPagination, cursor_value: "{{ response.next }}"}
  page_token_option: {type: RequestOption, inject_into: body_json, field_path: [paging, token]}"#,
        "",
    )
    .replace("http_method: GET", "http_method: POST");
    assert_eq!(read_ids(&config_for(&server), &yaml), vec![1, 2]);
}
