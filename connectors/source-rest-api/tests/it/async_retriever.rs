//! `AsyncRetriever`: report jobs created, polled until done, downloaded (CSV, JSONL, several
//! targets, a paginated download) and deleted; failed and timed-out jobs created again, then
//! the stream failed; one job per partition and per cursor slice; the job limit; garbage
//! answers end the read with an error, never a panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cdk::testing::Captured;
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

/// The status a job answers at a poll: (job number from 1, poll number from 0) -> status.
type Script = Box<dyn Fn(usize, usize) -> &'static str + Send + Sync>;
/// The download targets of a completed job, given the body it was created with (the urls are
/// relative to the server; the API makes them absolute).
type Targets = Box<dyn Fn(&Value) -> Vec<String> + Send + Sync>;
/// A file by name and `page` parameter, or `None` (404).
type Files = Box<dyn Fn(&str, Option<&str>) -> Option<String> + Send + Sync>;

#[derive(Default)]
struct State {
    /// What happened, in order: `create <body>`, `poll <n> <status>`, `targets <n>`,
    /// `download <file>`, `delete <n>`, `abort <n>`.
    log: Vec<String>,
    bodies: Vec<Value>,
    polls: HashMap<usize, usize>,
    /// Jobs created and not yet seen completed, failed or aborted; and the most at once.
    running: usize,
    most_running: usize,
}

/// A fake API of report jobs.
struct JobApi {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

fn job_number(req: &Request) -> usize {
    req.url
        .path()
        .split('/')
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl JobApi {
    async fn start(script: Script, targets: Targets, files: Files) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        Mock::given(matchers::path("/jobs"))
            .and(matchers::method("POST"))
            .respond_with(move |req: &Request| {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let mut st = s.lock().expect("lock");
                st.log.push(format!("create {body}"));
                st.bodies.push(body);
                st.running += 1;
                st.most_running = st.most_running.max(st.running);
                json_response(json!({"id": st.bodies.len()}))
            })
            .mount(&server)
            .await;
        let (s, uri) = (state.clone(), server.uri());
        Mock::given(matchers::path_regex(r"^/jobs/\d+$"))
            .respond_with(move |req: &Request| {
                let n = job_number(req);
                let mut st = s.lock().expect("lock");
                let poll = st.polls.entry(n).or_insert(0);
                let status = script(n, *poll);
                *poll += 1;
                st.log.push(format!("poll {n} {status}"));
                if !["pending", "running"].contains(&status) {
                    st.running -= 1;
                }
                let body = st.bodies.get(n - 1).cloned().unwrap_or(Value::Null);
                let urls: Vec<String> = targets(&body)
                    .iter()
                    .map(|t| format!("{uri}/files/{t}"))
                    .collect();
                json_response(json!({"id": n, "status": status, "urls": urls}))
            })
            .mount(&server)
            .await;
        let s = state.clone();
        Mock::given(matchers::path_regex(r"^/jobs/\d+/(delete|abort)$"))
            .and(matchers::method("POST"))
            .respond_with(move |req: &Request| {
                let n = job_number(req);
                let what = req.url.path().rsplit('/').next().unwrap_or_default();
                s.lock().expect("lock").log.push(format!("{what} {n}"));
                json_response(json!({}))
            })
            .mount(&server)
            .await;
        let s = state.clone();
        Mock::given(matchers::path_regex(r"^/files/"))
            .respond_with(move |req: &Request| {
                let name = req.url.path().trim_start_matches("/files/").to_string();
                let page = query(req, "page");
                s.lock().expect("lock").log.push(format!(
                    "download {name} {}",
                    page.as_deref().unwrap_or("-")
                ));
                match files(&name, page.as_deref()) {
                    Some(body) => ResponseTemplate::new(200).set_body_string(body),
                    None => ResponseTemplate::new(404),
                }
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    fn log(&self) -> Vec<String> {
        self.state.lock().expect("lock").log.clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    fn most_running(&self) -> usize {
        self.state.lock().expect("lock").most_running
    }

    /// Reads stream `report` of `yaml` (polling every 20 ms).
    fn read(&self, yaml: &str, state: Option<&Value>, incremental: bool) -> Captured {
        let out = manifest(yaml)
            .run()
            .env("SOURCE_REST_API_ASYNC_POLL_MS", "20")
            .read(
                &config_for(&self.server),
                &catalog(&["report"], incremental),
                state,
            );
        out.assert_protocol();
        out
    }
}

/// A manifest with one async stream `report`: jobs at `/jobs`, polled at `/jobs/<id>`, targets
/// in the polling response's `urls`, deleted and aborted by POST; the fields of the YAML
/// mappings `retriever` and `stream` replace or add to those of the retriever and the stream.
fn report(retriever: &str, stream: &str) -> String {
    let mut m: Value = serde_yaml::from_str(REPORT).expect("the base manifest");
    let merge = |target: &mut Value, extra: &str| {
        if let Ok(Value::Object(extra)) = serde_yaml::from_str::<Value>(extra)
            && let Value::Object(t) = target
        {
            t.extend(extra);
        }
    };
    merge(&mut m["streams"][0]["retriever"], retriever);
    merge(&mut m["streams"][0], stream);
    m.to_string()
}

const REPORT: &str = r#"version: 6.0.0
type: DeclarativeSource
check:
  type: CheckStream
  stream_names: [report]
streams:
  - type: DeclarativeStream
    name: report
    primary_key: [id]
    retriever:
      type: AsyncRetriever
      record_selector:
        type: RecordSelector
        extractor:
          type: DpathExtractor
          field_path: [not_used]
      status_mapping:
        type: AsyncJobStatusMap
        running: [pending, running]
        completed: [done]
        failed: [error]
        timeout: [expired]
        skipped: [empty]
      status_extractor:
        type: DpathExtractor
        field_path: [status]
      download_target_extractor:
        type: DpathExtractor
        field_path: [urls]
      creation_requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: /jobs
        http_method: POST
        request_body_json:
          key: "{{ config['api_key'] }}"
      polling_requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: "/jobs/{{ creation_response['id'] }}"
      download_requester:
        type: HttpRequester
        url: "{{ download_target }}"
      delete_requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: "/jobs/{{ creation_response.id }}/delete"
        http_method: POST
      abort_requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: "/jobs/{{ stream_slice.extra_fields.creation_response.id }}/abort"
        http_method: POST
"#;

fn files(map: &[(&'static str, &'static str)]) -> Files {
    let map: HashMap<&str, &str> = map.iter().copied().collect();
    Box::new(move |name, _| map.get(name).map(|s| s.to_string()))
}

fn records(out: &Captured) -> Vec<Value> {
    out.records_of("report").into_iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_completes_and_its_two_csv_files_are_read_then_it_is_deleted() {
    let api = JobApi::start(
        Box::new(|_, poll| ["pending", "running", "done"][poll.min(2)]),
        Box::new(|_| vec!["a.csv".into(), "b.csv".into()]),
        files(&[
            ("a.csv", "id,name\n1,ann\n2,\n"),
            ("b.csv", "id,name\n3,cy\n"),
        ]),
    )
    .await;
    let out = api.read(
        &report("download_decoder:\n  type: CsvDecoder", ""),
        None,
        false,
    );
    out.assert_success();
    assert_eq!(
        records(&out),
        vec![
            json!({"id": "1", "name": "ann"}),
            json!({"id": "2", "name": ""}),
            json!({"id": "3", "name": "cy"}),
        ]
    );
    assert_eq!(
        api.log(),
        vec![
            r#"create {"key":"sekrit-key-123"}"#,
            "poll 1 pending",
            "poll 1 running",
            "poll 1 done",
            "download a.csv -",
            "download b.csv -",
            "delete 1",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jsonl_targets_from_their_own_request_pass_the_record_filter_and_transformations() {
    let api = JobApi::start(
        Box::new(|_, _| "done"),
        Box::new(|_| Vec::new()),
        files(&[
            (
                "c.jsonl",
                "{\"id\": 1, \"kind\": \"a\"}\n{\"id\": 2, \"kind\": \"skip\"}\n",
            ),
            ("d.jsonl", "{\"id\": 3, \"kind\": \"b\"}\n"),
        ]),
    )
    .await;
    let listing = format!(
        "{{\"files\": [\"{0}/files/c.jsonl\", \"{0}/files/d.jsonl\"]}}",
        api.server.uri()
    );
    Mock::given(matchers::path_regex(r"^/jobs/\d+/files$"))
        .respond_with(ResponseTemplate::new(200).set_body_string(listing))
        .mount(&api.server)
        .await;
    let retriever = r#"download_decoder:
  type: JsonlDecoder
download_target_requester:
  type: HttpRequester
  url_base: "{{ config['base_url'] }}"
  path: "/jobs/{{ polling_response.id }}/files"
download_target_extractor:
  type: DpathExtractor
  field_path: [files]
record_selector:
  type: RecordSelector
  extractor:
    type: DpathExtractor
    field_path: [ignored]
  record_filter:
    type: RecordFilter
    condition: "{{ record.kind != 'skip' }}""#;
    let stream = r#"transformations:
  - type: AddFields
    fields:
      - type: AddedFieldDefinition
        path: [double]
        value: "{{ record.id * 2 }}""#;
    let out = api.read(&report(retriever, stream), None, false);
    out.assert_success();
    assert_eq!(
        records(&out),
        vec![
            json!({"id": 1, "kind": "a", "double": 2}),
            json!({"id": 3, "kind": "b", "double": 6}),
        ]
    );
    assert_eq!(api.count("download"), 2);
    assert_eq!(api.count("delete 1"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_is_created_again() {
    let api = JobApi::start(
        Box::new(|job, _| if job == 1 { "error" } else { "done" }),
        Box::new(|_| vec!["r.jsonl".into()]),
        files(&[("r.jsonl", "{\"id\": 7}\n")]),
    )
    .await;
    let out = api.read(
        &report("download_decoder:\n  type: JsonlDecoder", ""),
        None,
        false,
    );
    out.assert_success();
    assert_eq!(records(&out), vec![json!({"id": 7})]);
    assert_eq!(api.count("create"), 2);
    assert_eq!(api.count("abort"), 0, "a failed job is not aborted");
    assert_eq!(api.count("delete"), 1);
    assert_eq!(api.count("delete 2"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn timed_out_jobs_are_aborted_and_after_three_the_stream_fails() {
    let api = JobApi::start(
        Box::new(|_, poll| if poll == 0 { "running" } else { "expired" }),
        Box::new(|_| vec!["r.jsonl".into()]),
        files(&[("r.jsonl", "{\"id\": 7}\n")]),
    )
    .await;
    let out = api.read(
        &report("download_decoder:\n  type: JsonlDecoder", ""),
        None,
        false,
    );
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("did not complete in 3 attempts (last status: TIMED_OUT)"),
        "{message}"
    );
    assert_eq!(api.count("create"), 3);
    assert_eq!(api.count("abort"), 3);
    assert_eq!(api.count("download"), 0);
    assert!(records(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_failing_three_times_fail_the_stream_and_a_skipped_job_reads_nothing() {
    let api = JobApi::start(
        Box::new(|_, _| "error"),
        Box::new(|_| Vec::new()),
        files(&[]),
    )
    .await;
    let out = api.read(&report("", ""), None, false);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(message.contains("(last status: FAILED)"), "{message}");
    assert_eq!(api.count("create"), 3);
    assert_eq!(api.count("abort"), 0);

    let api = JobApi::start(
        Box::new(|_, _| "empty"),
        Box::new(|_| vec!["never".into()]),
        files(&[]),
    )
    .await;
    let out = api.read(&report("", ""), None, false);
    out.assert_success();
    assert!(records(&out).is_empty());
    assert_eq!(api.count("create"), 1);
    assert_eq!(api.count("download"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_download_paginator_reads_every_page_of_a_target() {
    let pages: Files = Box::new(|name, page| match (name, page) {
        ("rows", None) => Some(r#"{"rows": [{"id": 1}, {"id": 2}], "next": 2}"#.into()),
        ("rows", Some("2")) => Some(r#"{"rows": [{"id": 3}, {"id": 4}], "next": 3}"#.into()),
        ("rows", Some("3")) => Some(r#"{"rows": [{"id": 5}], "next": null}"#.into()),
        _ => None,
    });
    let api = JobApi::start(
        Box::new(|_, _| "done"),
        Box::new(|_| vec!["rows".into()]),
        pages,
    )
    .await;
    let retriever = r#"download_extractor:
  type: DpathExtractor
  field_path: [rows]
download_paginator:
  type: DefaultPaginator
  pagination_strategy:
    type: CursorPagination
    cursor_value: "{{ response.next }}"
    stop_condition: "{{ not response.next }}"
  page_token_option:
    type: RequestOption
    inject_into: request_parameter
    field_name: page"#;
    let out = api.read(&report(retriever, ""), None, false);
    out.assert_success();
    let ids: Vec<i64> = records(&out)
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        api.log()
            .into_iter()
            .filter(|l| l.starts_with("download"))
            .collect::<Vec<_>>(),
        vec!["download rows -", "download rows 2", "download rows 3"]
    );
}

/// The files of a job created for a region and a window: `<region>-<from>.jsonl` (from
/// 2024-01-01 without a window).
fn region_files(body: &Value) -> Vec<String> {
    vec![format!(
        "{}-{}.jsonl",
        body["region"].as_str().unwrap_or("none"),
        body["from"].as_str().unwrap_or("2024-01-01")
    )]
}

fn region_rows(name: &str, _: Option<&str>) -> Option<String> {
    let (region, from) = name.trim_end_matches(".jsonl").split_once('-')?;
    if from.len() != 10 {
        return None;
    }
    let day = |d: &str| format!("{}{d}", &from[..8]);
    let rows = [
        json!({"id": format!("{region}1{}", &from[5..7]), "region": region, "updated_at": day("05")}),
        json!({"id": format!("{region}2{}", &from[5..7]), "region": region, "updated_at": day("20")}),
    ];
    Some(rows.iter().map(|r| format!("{r}\n")).collect())
}

const PARTITIONED: &str = r#"download_decoder:
  type: JsonlDecoder
partition_router:
  type: ListPartitionRouter
  cursor_field: region
  values: [eu, us]
creation_requester:
  type: HttpRequester
  url_base: "{{ config['base_url'] }}"
  path: /jobs
  http_method: POST
  request_body_json:
    region: "{{ stream_partition.region }}"
    from: "{{ stream_interval.start_time }}"
    to: "{{ stream_slice.end_time }}""#;

const MONTHS: &str = r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%d"
  start_datetime: "2024-01-01"
  end_datetime: "2024-02-29"
  step: P1M
  cursor_granularity: P1D"#;

#[tokio::test(flavor = "multi_thread")]
async fn one_job_per_partition_and_cursor_slice_and_the_state_follows_the_records() {
    let api = JobApi::start(
        Box::new(|_, poll| if poll == 0 { "running" } else { "done" }),
        Box::new(region_files),
        Box::new(region_rows),
    )
    .await;
    let yaml = report(PARTITIONED, MONTHS);
    let out = api.read(&yaml, None, true);
    out.assert_success();
    let mut ids: Vec<String> = records(&out)
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "eu101", "eu102", "eu201", "eu202", "us101", "us102", "us201", "us202"
        ]
    );
    let mut created: Vec<String> = api
        .log()
        .into_iter()
        .filter(|l| l.starts_with("create"))
        .collect();
    created.sort();
    assert_eq!(
        created,
        vec![
            r#"create {"from":"2024-01-01","region":"eu","to":"2024-01-31"}"#,
            r#"create {"from":"2024-01-01","region":"us","to":"2024-01-31"}"#,
            r#"create {"from":"2024-02-01","region":"eu","to":"2024-02-29"}"#,
            r#"create {"from":"2024-02-01","region":"us","to":"2024-02-29"}"#,
        ]
    );
    assert_eq!(api.most_running(), 1, "one job at a time by default");
    assert_eq!(api.count("delete"), 4);
    let last = states(&out, "report").pop().expect("a state");
    let cursors: Vec<&Value> = last["states"]
        .as_array()
        .expect("per-partition states")
        .iter()
        .map(|s| &s["cursor"]["updated_at"])
        .collect();
    assert_eq!(cursors, vec!["2024-02-20", "2024-02-20"], "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_concurrent_async_job_count_lets_jobs_run_together() {
    let api = JobApi::start(
        Box::new(|_, poll| if poll < 3 { "running" } else { "done" }),
        Box::new(region_files),
        Box::new(region_rows),
    )
    .await;
    let mut m: Value = serde_json::from_str(&report(PARTITIONED, "")).expect("json");
    m["max_concurrent_async_job_count"] = json!("{{ 1 + 1 }}");
    m["concurrency_level"] = json!({"type": "ConcurrencyLevel", "default_concurrency": 4});
    let yaml = m.to_string();
    let out = api.read(&yaml, None, false);
    out.assert_success();
    assert_eq!(records(&out).len(), 4);
    assert_eq!(api.most_running(), 2);
}

/// Garbage from any endpoint of the job API: the read fails with an error, never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_answers_fail_the_read_without_a_panic() {
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        (
            "/jobs",
            ResponseTemplate::new(200).set_body_string("not json"),
        ),
        (
            "/jobs",
            ResponseTemplate::new(200).set_body_string("[1, 2]"),
        ),
        (
            "/jobs/1",
            ResponseTemplate::new(200).set_body_string("\u{1F600}{"),
        ),
        ("/jobs/1", json_response(json!({"status": "weird"}))),
        ("/jobs/1", json_response(json!({"status": {"nested": [1]}}))),
        (
            "/jobs/1",
            json_response(json!({"status": "done", "urls": 5})),
        ),
        (
            "/files/x",
            ResponseTemplate::new(200).set_body_string("[1, \"a\"]"),
        ),
        (
            "/files/x",
            ResponseTemplate::new(200).set_body_string("\u{0}\u{1}é"),
        ),
    ];
    for (path, garbage) in cases {
        let server = MockServer::start().await;
        Mock::given(matchers::path(path))
            .respond_with(garbage)
            .mount(&server)
            .await;
        let uri = server.uri();
        Mock::given(matchers::path("/jobs"))
            .respond_with(json_response(json!({"id": 1})))
            .mount(&server)
            .await;
        Mock::given(matchers::path("/jobs/1"))
            .respond_with(json_response(
                json!({"status": "done", "urls": [format!("{uri}/files/x")]}),
            ))
            .mount(&server)
            .await;
        let out = manifest(&report("", ""))
            .run()
            .env("SOURCE_REST_API_ASYNC_POLL_MS", "10")
            .read(&config_for(&server), &catalog(&["report"], false), None);
        assert!(
            !out.stderr.contains("panicked"),
            "{path}: a panic\n{}",
            out.describe()
        );
        out.assert_failure();
        assert!(!trace_error(&out).0.is_empty());
    }
}
