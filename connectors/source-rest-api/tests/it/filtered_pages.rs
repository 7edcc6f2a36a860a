//! A record filter never changes what is requested: the page-counting paginators count the
//! records the API returned, before the filter (airbyte-cdk 7.39.1), so a page the filter
//! empties or mostly drops neither ends the pagination nor shortens the offset. Cursor
//! pagination sees what airbyte-cdk's does: the records emitted.

use std::sync::{Arc, Mutex};

use cdk::testing::http::{MockServer, Request};
use serde_json::{Value, json};

use crate::*;

/// Keeps 3, 6, 9 of the first page of ten, nothing of the second, 21 and 24 of the third.
const FILTER: &str = r#"record_selector:
  type: RecordSelector
  extractor: {type: DpathExtractor, field_path: [data]}
  record_filter:
    type: RecordFilter
    condition: "{{ record['id'] % 3 == 0 and (record['id'] < 11 or record['id'] > 20) }}""#;

const KEPT: [i64; 5] = [3, 6, 9, 21, 24];

/// Records 1..=25 in pages of ten; `page_of` says which page (1-based) a request asks for.
/// Returns the server and the log of request queries.
async fn items(
    page_of: impl Fn(&Request) -> i64 + Send + Sync + 'static,
) -> (MockServer, Arc<Mutex<Vec<String>>>) {
    let server = MockServer::start().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    serve(&server, "/items", move |r: &Request| {
        l.lock()
            .unwrap()
            .push(r.url.query().unwrap_or("").to_string());
        let page = page_of(r);
        let data: Vec<Value> = ((page - 1) * 10 + 1..=(page * 10).min(25))
            .map(|i| json!({"id": i}))
            .collect();
        let next = (page < 3).then(|| format!("c{}", page + 1));
        json_response(json!({"data": data, "next": next}))
    })
    .await;
    (server, log)
}

/// The one-stream manifest with the filter and this paginator.
fn filtered(paginator: &str) -> String {
    let yaml = one_stream("/items", "", paginator, "");
    let plain = "      record_selector:\n        type: RecordSelector\n        extractor:\n          type: DpathExtractor\n          field_path: [data]\n";
    let with_filter: String = FILTER.lines().map(|l| format!("      {l}\n")).collect();
    assert!(yaml.contains(plain), "the manifest has the plain selector");
    yaml.replace(plain, &with_filter)
}

fn param(name: &'static str) -> impl Fn(&Request) -> Option<i64> {
    move |r| query(r, name).map(|v| v.parse().unwrap())
}

async fn read(
    page_of: impl Fn(&Request) -> i64 + Send + Sync + 'static,
    paginator: &str,
) -> (Vec<i64>, Vec<String>) {
    let (server, log) = items(page_of).await;
    let ids = read_ids(&config_for(&server), &filtered(paginator));
    let log = log.lock().unwrap().clone();
    (ids, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_increment_counts_the_records_returned() {
    let offset = param("offset");
    let (ids, log) = read(
        move |r| offset(r).unwrap_or(0) / 10 + 1,
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: OffsetIncrement, page_size: 10}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}"#,
    )
    .await;
    assert_eq!(ids, KEPT);
    assert_eq!(log, ["", "offset=10", "offset=20"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_increment_injected_first_counts_the_records_returned() {
    let offset = param("offset");
    let (ids, log) = read(
        move |r| offset(r).expect("an offset") / 10 + 1,
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: OffsetIncrement, page_size: 10, inject_on_first_request: true}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}
  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}"#,
    )
    .await;
    assert_eq!(ids, KEPT);
    assert_eq!(
        log,
        [
            "limit=10&offset=0",
            "limit=10&offset=10",
            "limit=10&offset=20"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_increment_without_page_size_reads_until_an_empty_page() {
    let offset = param("offset");
    let (ids, log) = read(
        move |r| (offset(r).unwrap_or(0) + 9) / 10 + 1,
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: OffsetIncrement}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}"#,
    )
    .await;
    assert_eq!(ids, KEPT);
    assert_eq!(log, ["", "offset=10", "offset=20", "offset=25"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn page_increment_counts_the_records_returned() {
    let page = param("page");
    let (ids, log) = read(
        move |r| page(r).unwrap_or(1),
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 10, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#,
    )
    .await;
    assert_eq!(ids, KEPT);
    assert_eq!(log, ["", "page=2", "page=3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn page_increment_injected_first_counts_the_records_returned() {
    let page = param("page");
    let (ids, log) = read(
        move |r| page(r).expect("a page") + 1,
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 10, inject_on_first_request: true}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#,
    )
    .await;
    assert_eq!(ids, KEPT);
    assert_eq!(log, ["page=0", "page=1", "page=2"]);
}

fn cursor_page(r: &Request) -> i64 {
    match query(r, "cursor").as_deref() {
        None => 1,
        Some(c) => c.trim_start_matches('c').parse().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_pagination_goes_on_through_filtered_pages() {
    let (ids, log) = read(
        cursor_page,
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ response.next }}"
    stop_condition: "{{ response.next is none }}"
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: cursor}"#,
    )
    .await;
    assert_eq!(ids, KEPT);
    assert_eq!(log, ["", "cursor=c2", "cursor=c3"]);
}

/// airbyte-cdk's `CursorPagination` gives `last_page_size` and `last_record` of the records
/// emitted: a stop condition on them sees the filtered page, as it does there.
#[tokio::test(flavor = "multi_thread")]
async fn cursor_stop_condition_sees_the_emitted_page() {
    let (ids, log) = read(
        cursor_page,
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ response.next }}"
    stop_condition: "{{ last_page_size == 0 or last_record['id'] != 9 }}"
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: cursor}"#,
    )
    .await;
    assert_eq!(ids, [3, 6, 9]);
    assert_eq!(log, ["", "cursor=c2"]);
}

/// A filtered, paginated parent: every parent page is read, and each kept parent record
/// gives a partition.
#[tokio::test(flavor = "multi_thread")]
async fn substream_parent_pages_through_its_filter() {
    let (server, _log) = items(move |r| query(r, "page").map_or(1, |p| p.parse().unwrap())).await;
    serve_children(&server).await;
    let parent = filtered(
        r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: PageIncrement, page_size: 10, start_from_page: 1}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}"#,
    );
    let child = r##"  - type: DeclarativeStream
    name: children
    primary_key: [id]
    retriever:
      type: SimpleRetriever
      requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: "/children/{{ stream_partition.parent_id }}"
      record_selector:
        type: RecordSelector
        extractor: {type: DpathExtractor, field_path: [data]}
      partition_router:
        type: SubstreamPartitionRouter
        parent_stream_configs:
          - type: ParentStreamConfig
            stream: {$ref: "#/streams/0"}
            parent_key: id
            partition_field: parent_id
"##;
    let yaml = format!("{parent}{child}");
    let out = manifest(&yaml).read(&config_for(&server), &["children"]);
    out.assert_success();
    let expected: Vec<i64> = KEPT.iter().map(|p| p * 100).collect();
    let mut got = ids(&out, "children");
    got.sort_unstable();
    assert_eq!(
        got, expected,
        "partitions are read concurrently, in any order"
    );
}

async fn serve_children(server: &MockServer) {
    use cdk::testing::http::{Mock, matchers};
    Mock::given(matchers::path_regex(r"^/children/\d+$"))
        .respond_with(|r: &Request| {
            let p: i64 = r.url.path().rsplit('/').next().unwrap().parse().unwrap();
            json_response(json!({"data": [{"id": p * 100}]}))
        })
        .mount(server)
        .await;
}

/// With a client-side incremental cursor, airbyte-cdk drops the records below the state in
/// its record filter: a cursor stop condition sees the page without them.
async fn client_side(stop_condition: &str) -> (Vec<i64>, usize) {
    let server = MockServer::start().await;
    let (count, respond) = counting(|_, r: &Request| {
        let (days, next) = match query(r, "cursor").as_deref() {
            None => ([1, 2, 3], Some("c2")),
            _ => ([6, 7, 8], None),
        };
        let data: Vec<Value> = days
            .iter()
            .map(|d| json!({"id": d, "updated_at": format!("2024-01-{d:02}T00:00:00Z")}))
            .collect();
        json_response(json!({"data": data, "next": next}))
    });
    serve(&server, "/items", respond).await;
    let yaml = one_stream(
        "/items",
        "",
        &format!(
            r#"paginator:
  type: DefaultPaginator
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{{{ response.next }}}}"
    stop_condition: "{stop_condition}"
  page_token_option: {{type: RequestOption, inject_into: request_parameter, field_name: cursor}}"#
        ),
        r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T00:00:00Z"
  is_client_side_incremental: true"#,
    );
    let state = json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "items"},
        "stream_state": {"updated_at": "2024-01-05T00:00:00Z"}}}]);
    let out = manifest(&yaml).read_incremental(&config_for(&server), &["items"], Some(&state));
    out.assert_success();
    (
        ids(&out, "items"),
        count.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_incremental_pages_on_the_response() {
    assert_eq!(
        client_side("{{ response.next is none }}").await,
        (vec![6, 7, 8], 2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_incremental_stop_condition_sees_the_emitted_page() {
    assert_eq!(client_side("{{ last_page_size == 0 }}").await, (vec![], 1));
}
