//! The retriever's answers to refused requests: `REDUCE_PAGE_SIZE` with `page_size_reduction`,
//! `SPLIT_REQUEST_WINDOW` with `request_window_splitting`, `pagination_reset` and
//! `RESET_PAGINATION`, and what a manifest using them wrongly is refused with.

use std::sync::{Arc, Mutex};

use cdk::protocol::FailureType;
use cdk::testing::http::{MockServer, Request, ResponseTemplate};
use serde_json::{Value, json};

use crate::*;

type Log = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// Items 1..=n served by `limit`/`offset`; a page asked with more than `max` records is
/// refused with 413. Logs (limit, offset) of every request.
async fn sized_server(n: i64, max: i64) -> (MockServer, Log) {
    let server = MockServer::start().await;
    let log: Log = Arc::default();
    let l = log.clone();
    serve(&server, "/items", move |r: &Request| {
        let (limit, offset) = (query(r, "limit"), query(r, "offset"));
        l.lock().unwrap().push((limit.clone(), offset.clone()));
        let limit: i64 = limit.map_or(n, |v| v.parse().unwrap());
        if limit > max {
            return ResponseTemplate::new(413).set_body_json(json!({"error": "page too big"}));
        }
        let offset: i64 = offset.map_or(0, |v| v.parse().unwrap());
        let data: Vec<Value> = (offset + 1..=(offset + limit).min(n))
            .map(|id| json!({ "id": id }))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    (server, log)
}

const REDUCE_HANDLER: &str = r#"error_handler:
  type: DefaultErrorHandler
  response_filters:
    - {type: HttpResponseFilter, action: REDUCE_PAGE_SIZE, http_codes: [413], error_message: "{{ response.error }}"}"#;

fn offset_paginator(page_size: i64, reduction: &str) -> String {
    format!(
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {{type: OffsetIncrement, page_size: {page_size}}}
  page_token_option: {{type: RequestOption, inject_into: request_parameter, field_name: offset}}
  page_size_option: {{type: RequestOption, inject_into: request_parameter, field_name: limit}}
page_size_reduction:
  type: PageSizeReduction
  backoff_seconds: 0
{reduction}"#
    )
}

fn requests(log: &Log) -> Vec<(Option<i64>, Option<i64>)> {
    let parse = |v: &Option<String>| v.as_ref().map(|v| v.parse().unwrap());
    log.lock()
        .unwrap()
        .iter()
        .map(|(l, o)| (parse(l), parse(o)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reduce_page_size_until_the_api_takes_the_page() {
    let (server, log) = sized_server(35, 10).await;
    let yaml = one_stream(
        "/items",
        REDUCE_HANDLER,
        &offset_paginator(40, "  minimum_page_size: 5"),
        "",
    );
    assert_eq!(
        read_ids(&config_for(&server), &yaml),
        (1..=35).collect::<Vec<_>>()
    );
    // 40 and 20 refused, then every page at 10: a full page of 10 is not the last one.
    assert_eq!(
        requests(&log),
        vec![
            (Some(40), None),
            (Some(20), None),
            (Some(10), None),
            (Some(10), Some(10)),
            (Some(10), Some(20)),
            (Some(10), Some(30)),
        ]
    );

    // AFTER_SUCCESSFUL_PAGE: each page starts again from the configured size.
    let (server, log) = sized_server(20, 10).await;
    let yaml = one_stream(
        "/items",
        REDUCE_HANDLER,
        &offset_paginator(20, "  reset_policy: AFTER_SUCCESSFUL_PAGE"),
        "",
    );
    assert_eq!(
        read_ids(&config_for(&server), &yaml),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        requests(&log),
        vec![
            (Some(20), None),
            (Some(10), None),
            (Some(20), Some(10)),
            (Some(10), Some(10)),
            (Some(20), Some(20)),
            (Some(10), Some(20)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_pagination_stops_on_a_short_page_at_the_reduced_size() {
    let server = MockServer::start().await;
    let log: Log = Arc::default();
    let l = log.clone();
    serve(&server, "/items", move |r: &Request| {
        let (limit, after) = (query(r, "limit"), query(r, "after"));
        l.lock().unwrap().push((limit.clone(), after.clone()));
        let limit: i64 = limit.unwrap().parse().unwrap();
        if limit > 3 {
            return ResponseTemplate::new(413).set_body_json(json!({"error": "page too big"}));
        }
        let after: i64 = after.map_or(0, |v| v.parse().unwrap());
        let data: Vec<Value> = (after + 1..=(after + limit).min(7))
            .map(|id| json!({ "id": id }))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let paginator = r#"paginator:
  type: DefaultPaginator
  pagination_strategy:
    type: CursorPagination
    page_size: 8
    cursor_value: "{{ last_record.id }}"
    stop_condition: "{{ last_page_size < page_size }}"
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}
  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}
page_size_reduction: {type: PageSizeReduction, backoff_seconds: 0}"#;
    let yaml = one_stream("/items", REDUCE_HANDLER, paginator, "");
    assert_eq!(
        read_ids(&config_for(&server), &yaml),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(
        requests(&log),
        vec![
            (Some(8), None),
            (Some(4), None),
            (Some(2), None),
            (Some(2), Some(2)),
            (Some(2), Some(4)),
            (Some(2), Some(6)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_size_floor_is_a_clear_error() {
    let (server, log) = sized_server(35, 0).await;
    let reduction = "  minimum_page_size: 10\n  retries_at_minimum_page_size: 1\n  failure_message: Select fewer fields.";
    let yaml = one_stream(
        "/items",
        REDUCE_HANDLER,
        &offset_paginator(40, reduction),
        "",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_failure();
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains(
            "the source keeps rejecting pages of stream 'items' at the smallest page size the \
             connector is allowed to request (10 records per page); the API said: page too big. \
             Select fewer fields."
        ),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::TransientError));
    // 40, 20, 10, then 10 once more (the retry at the floor).
    let sizes: Vec<_> = requests(&log).into_iter().map(|(l, _)| l).collect();
    assert_eq!(sizes, vec![Some(40), Some(20), Some(10), Some(10)]);

    // `max_attempts` reductions in a row without a page getting through.
    let (server, log) = sized_server(35, 0).await;
    let yaml = one_stream(
        "/items",
        REDUCE_HANDLER,
        &offset_paginator(1000, "  max_attempts: 2"),
        "",
    );
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains("down to 250 records per page"),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::TransientError));
    assert_eq!(requests(&log).len(), 3);
}

/// One item per day of 2024-01-01..=2024-01-08 (id = day); a window of more than two days
/// (`since`/`until` as dates, both included) is refused with 400.
async fn window_server() -> (MockServer, Log) {
    let server = MockServer::start().await;
    let log: Log = Arc::default();
    let l = log.clone();
    serve(&server, "/items", move |r: &Request| {
        let (since, until) = (query(r, "since"), query(r, "until"));
        l.lock().unwrap().push((since.clone(), until.clone()));
        let day = |v: &Option<String>| -> i64 { v.as_ref().unwrap()[8..10].parse().unwrap() };
        let (from, to) = (day(&since), day(&until));
        if to - from >= 2 {
            return ResponseTemplate::new(400).set_body_json(json!({"error": "window too large"}));
        }
        let data: Vec<Value> = (from..=to.min(8))
            .map(|d| json!({"id": d, "updated_at": format!("2024-01-{d:02}")}))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    (server, log)
}

const SPLIT_HANDLER: &str = r#"error_handler:
  type: DefaultErrorHandler
  response_filters:
    - {type: HttpResponseFilter, action: SPLIT_REQUEST_WINDOW, error_message_contains: window too large}"#;

const DAY_CURSOR: &str = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%d"
  start_datetime: "2024-01-01"
  end_datetime: "2024-01-08"
  step: P30D
  cursor_granularity: P1D
  start_time_option: {type: RequestOption, inject_into: request_parameter, field_name: since}
  end_time_option: {type: RequestOption, inject_into: request_parameter, field_name: until}"#;

fn windows(log: &Log) -> Vec<(String, String)> {
    log.lock()
        .unwrap()
        .iter()
        .map(|(s, u)| (s.clone().unwrap(), u.clone().unwrap()))
        .collect()
}

fn w(s: &str, u: &str) -> (String, String) {
    (format!("2024-01-{s}"), format!("2024-01-{u}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_window_is_split_twice() {
    let (server, log) = window_server().await;
    let yaml = one_stream(
        "/items",
        SPLIT_HANDLER,
        "request_window_splitting: {type: RequestWindowSplitting}",
        DAY_CURSOR,
    );
    let out = manifest(&yaml).read_incremental(&config_for(&server), &["items"], None);
    out.assert_success();
    assert_eq!(ids(&out, "items"), (1..=8).collect::<Vec<_>>());
    assert_eq!(
        windows(&log),
        vec![
            w("01", "08"),
            w("01", "04"),
            w("01", "02"),
            w("03", "04"),
            w("05", "08"),
            w("05", "06"),
            w("07", "08"),
        ]
    );
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "2024-01-08"}))
    );

    // A window at `min_split_window` is not split further: the read fails, saying so.
    let (server, log) = window_server().await;
    let splitting = "request_window_splitting:\n  type: RequestWindowSplitting\n  min_split_window: P3D\n  failure_message: Lower the window.";
    let yaml = one_stream("/items", SPLIT_HANDLER, splitting, DAY_CURSOR);
    let out = manifest(&yaml).read_incremental(&config_for(&server), &["items"], None);
    out.assert_failure();
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains(
            "the API kept rejecting stream 'items''s request window 2024-01-01..2024-01-04 even \
             at the smallest window its cursor allows, its configured `min_split_window` (P3D)"
        ) && message.ends_with("Lower the window."),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::TransientError));
    assert_eq!(windows(&log), vec![w("01", "08"), w("01", "04")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_reset_splits_using_the_cursor() {
    let server = MockServer::start().await;
    let log: Log = Arc::default();
    let l = log.clone();
    serve(&server, "/items", move |r: &Request| {
        let (since, offset) = (query(r, "since"), query(r, "offset"));
        l.lock().unwrap().push((since.clone(), offset.clone()));
        let from: i64 = since.unwrap()[8..10].parse().unwrap();
        let offset: usize = offset.map_or(0, |v| v.parse().unwrap());
        let data: Vec<Value> = (from..=6)
            .map(|d| json!({"id": d, "updated_at": format!("2024-01-{d:02}")}))
            .skip(offset)
            .take(2)
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let retriever = r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: OffsetIncrement, page_size: 2}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}
pagination_reset:
  type: PaginationReset
  action: SPLIT_USING_CURSOR
  limits: {type: PaginationResetLimits, number_of_records: 3}"#;
    let cursor = DAY_CURSOR
        .replace("2024-01-08", "2024-01-06")
        .replace("  end_time_option: {type: RequestOption, inject_into: request_parameter, field_name: until}", "");
    let yaml = one_stream("/items", "", retriever, &cursor);
    let out = manifest(&yaml).read_incremental(&config_for(&server), &["items"], None);
    out.assert_success();
    // After 4 records the slice restarts at the highest cursor value read (the 4th), then
    // after 3 more at the 6th.
    assert_eq!(ids(&out, "items"), vec![1, 2, 3, 4, 4, 5, 6, 6]);
    let got: Vec<_> = log.lock().unwrap().clone();
    let s = |d: &str, o: Option<&str>| (Some(format!("2024-01-{d}")), o.map(String::from));
    assert_eq!(
        got,
        vec![
            s("01", None),
            s("01", Some("2")),
            s("04", None),
            s("04", Some("2")),
            s("06", None),
        ]
    );
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "2024-01-06"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_pagination_twice_on_the_same_slice_fails() {
    let server = MockServer::start().await;
    let (count, respond) = counting(|_, r: &Request| {
        if query(r, "page").as_deref() == Some("2") {
            return ResponseTemplate::new(400).set_body_json(json!({"error": "cursor expired"}));
        }
        json_response(json!({"data": [{"id": 1}, {"id": 2}]}))
    });
    serve(&server, "/items", respond).await;
    let retriever = r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 2, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#;
    let handler = r#"error_handler:
  type: DefaultErrorHandler
  response_filters:
    - {type: HttpResponseFilter, action: RESET_PAGINATION, error_message_contains: cursor expired}"#;
    let out = manifest(&one_stream("/items", handler, retriever, ""))
        .read(&config_for(&server), &["items"]);
    out.assert_failure();
    let (message, failure) = trace_error(&out);
    assert!(
        message.contains(
            "there were 2 attempts with the same slice already while the max allowed is 2"
        ),
        "{message}"
    );
    assert_eq!(failure, Some(FailureType::SystemError));
    // Page 1, page 2 (reset), page 1, page 2 (reset again).
    assert_eq!(ids(&out, "items"), vec![1, 2, 1, 2]);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 4);
}

/// The error a manifest is refused with when it loads.
fn refusal(yaml: &str) -> String {
    let out = manifest(yaml).read(&json!({"base_url": "http://127.0.0.1:9"}), &["items"]);
    out.assert_failure();
    let (message, failure) = trace_error(&out);
    assert_eq!(failure, Some(FailureType::ConfigError), "{message}");
    message
}

#[test]
fn misused_actions_are_refused_when_the_manifest_loads() {
    let paginator = offset_paginator(40, "");
    let cases: Vec<(String, &str)> = vec![
        (
            one_stream("/items", REDUCE_HANDLER, "", ""),
            "stream 'items' has a response filter with the REDUCE_PAGE_SIZE action but the \
             retriever does not define `page_size_reduction`",
        ),
        (
            one_stream(
                "/items",
                REDUCE_HANDLER,
                &paginator.replace("OffsetIncrement", "PageIncrement"),
                "",
            ),
            "`page_size_reduction` does not support the PageIncrement pagination strategy",
        ),
        (
            one_stream(
                "/items",
                REDUCE_HANDLER,
                &paginator.replace(
                    "page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}",
                    "",
                ),
                "",
            ),
            "`page_size_reduction` requires `page_size_option` on the paginator",
        ),
        (
            one_stream(
                "/items",
                REDUCE_HANDLER,
                &format!("{paginator}\n  minimum_page_size: 40"),
                "",
            ),
            "the pagination strategy's `page_size` is 40 and `minimum_page_size` is 40",
        ),
        (
            one_stream(
                "/items",
                REDUCE_HANDLER,
                &format!("{paginator}\n  reduction_factor: 1"),
                "",
            ),
            "the page size reduction factor needs to be greater than 1, got 1",
        ),
        (
            one_stream(
                "/items",
                REDUCE_HANDLER,
                "paginator:\n  type: DefaultPaginator\n  pagination_strategy: {type: CursorPagination, page_size: 10, cursor_value: '{{ response.next }}', stop_condition: '{{ last_page_size < 10 }}'}\n  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}\n  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}\npage_size_reduction: {type: PageSizeReduction}",
                "",
            ),
            "cannot be used with the `stop_condition` '{{ last_page_size < 10 }}': it stops as soon as a page is smaller than `10`",
        ),
        (
            one_stream(
                "/items",
                "",
                "paginator:\n  type: DefaultPaginator\n  pagination_strategy: {type: CursorPagination, cursor_value: '{{ response.next }}', stop_condition: '{{ last_page_size < page_size }}'}\n  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: after}",
                "",
            ),
            "the `stop_condition` '{{ last_page_size < page_size }}' reads the `page_size` variable, \
             but the CursorPagination strategy declares no `page_size`",
        ),
        (
            one_stream("/items", SPLIT_HANDLER, "", DAY_CURSOR),
            "stream 'items' has a response filter with the SPLIT_REQUEST_WINDOW action but the \
             retriever does not define `request_window_splitting`",
        ),
        (
            one_stream(
                "/items",
                SPLIT_HANDLER,
                "request_window_splitting: {type: RequestWindowSplitting}",
                "",
            ),
            "`request_window_splitting` requires an incremental cursor that supports window \
             splitting, found no cursor",
        ),
        (
            one_stream(
                "/items",
                SPLIT_HANDLER,
                "request_window_splitting: {type: RequestWindowSplitting}",
                &DAY_CURSOR
                    .replace("  step: P30D\n", "")
                    .replace("  cursor_granularity: P1D\n", ""),
            ),
            "`request_window_splitting` requires `cursor_granularity` on the `DatetimeBasedCursor`",
        ),
        (
            one_stream(
                "/items",
                SPLIT_HANDLER,
                "request_window_splitting: {type: RequestWindowSplitting, min_split_window: P1M}",
                DAY_CURSOR,
            ),
            "`min_split_window` must be a positive duration expressible as a fixed number of \
             days/hours/minutes/seconds: 'P1M' is not",
        ),
        (
            one_stream(
                "/items",
                SPLIT_HANDLER,
                "request_window_splitting: {type: RequestWindowSplitting}",
                &DAY_CURSOR.replace("cursor_granularity: P1D", "cursor_granularity: PT1H"),
            ),
            "`request_window_splitting` requires `cursor_granularity` to be no finer than what \
             `datetime_format` '%Y-%m-%d' can represent",
        ),
        (
            one_stream(
                "/items",
                "",
                "pagination_reset:\n  type: PaginationReset\n  action: RESET\n  limits: {type: PaginationResetLimits, number_of_records: 5}",
                "",
            )
            .replace(
                "field_path: [data]",
                "field_path: [data]\n        record_filter: {type: RecordFilter, condition: '{{ record.id > 1 }}'}",
            ),
            "PaginationResetLimits are not supported while having record filter",
        ),
        (
            one_stream(
                "/items",
                "authenticator:\n  type: SessionTokenAuthenticator\n  login_requester:\n    type: HttpRequester\n    url_base: http://127.0.0.1:9\n    path: /login\n    error_handler:\n      type: DefaultErrorHandler\n      response_filters:\n        - {type: HttpResponseFilter, action: REDUCE_PAGE_SIZE, http_codes: [413]}\n  session_token_path: [token]\n  request_authentication: {type: Bearer}",
                "",
                "",
            ),
            "the REDUCE_PAGE_SIZE response action is not supported on the `login_requester` of \
             the SessionTokenAuthenticator",
        ),
        (
            ASYNC.to_string(),
            "the SPLIT_REQUEST_WINDOW response action is not supported on the `polling_requester` \
             of the AsyncRetriever",
        ),
    ];
    for (yaml, expected) in cases {
        let message = refusal(&yaml);
        assert!(
            message.contains(expected),
            "expected '{expected}' in:\n{message}\n{yaml}"
        );
    }
}

/// An async stream whose polling requester's error handler splits windows.
const ASYNC: &str = r#"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [items]}
streams:
  - type: DeclarativeStream
    name: items
    retriever:
      type: AsyncRetriever
      record_selector:
        type: RecordSelector
        extractor: {type: DpathExtractor, field_path: []}
      status_mapping: {type: AsyncJobStatusMap, running: [running], completed: [done], failed: [error], timeout: [expired]}
      status_extractor: {type: DpathExtractor, field_path: [status]}
      download_target_extractor: {type: DpathExtractor, field_path: [urls]}
      creation_requester: {type: HttpRequester, url_base: "{{ config['base_url'] }}", path: /jobs, http_method: POST}
      polling_requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: "/jobs/{{ creation_response.id }}"
        error_handler:
          type: DefaultErrorHandler
          response_filters:
            - {type: HttpResponseFilter, action: SPLIT_REQUEST_WINDOW, http_codes: [400]}
      download_requester: {type: HttpRequester, url: "{{ download_target }}"}
"#;
