//! Partition routers: a substream of a paginated parent (every parent page read), the
//! per-partition state Airbyte writes and resuming from it, list partitions.

use std::sync::{Arc, Mutex};

use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::{Value, json};

use crate::*;

const MANIFEST: &str = r##"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [projects]}
definitions:
  requester:
    type: HttpRequester
    url_base: "{{ config['base_url'] }}"
  projects:
    type: DeclarativeStream
    name: projects
    primary_key: id
    retriever:
      type: SimpleRetriever
      requester: {$ref: "#/definitions/requester", path: /projects}
      record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: [data]}}
      paginator:
        type: DefaultPaginator
        pagination_strategy: {type: PageIncrement, page_size: 2, start_from_page: 1}
        page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: page}
streams:
  - $ref: "#/definitions/projects"
  - type: DeclarativeStream
    name: tasks
    primary_key: [id, project_id]
    retriever:
      type: SimpleRetriever
      requester:
        $ref: "#/definitions/requester"
        path: "/projects/{{ stream_partition.project_id }}/tasks"
      record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: [data]}}
      partition_router:
        type: SubstreamPartitionRouter
        parent_stream_configs:
          - type: ParentStreamConfig
            stream: {$ref: "#/definitions/projects"}
            parent_key: id
            partition_field: project_id
            extra_fields: [[name]]
    transformations:
      - type: AddFields
        fields:
          - {type: AddedFieldDefinition, path: [project_id], value: "{{ stream_partition['project_id'] }}"}
          - {type: AddedFieldDefinition, path: [project_name], value: "{{ stream_slice.extra_fields['name'] }}"}
    incremental_sync:
      type: DatetimeBasedCursor
      cursor_field: updated_at
      datetime_format: "%Y-%m-%dT%H:%M:%SZ"
      start_datetime: "{{ config['start_date'] }}"
      start_time_option: {type: RequestOption, inject_into: request_parameter, field_name: since}
"##;

/// Projects 1..=5 in pages of 2; project p has tasks p*10+1 and p*10+2 updated on day p and p+1.
async fn server() -> (MockServer, Arc<Mutex<Vec<String>>>) {
    let server = MockServer::start().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    serve(&server, "/projects", |r: &Request| {
        let page: i64 = query(r, "page").map_or(1, |p| p.parse().unwrap());
        let data: Vec<Value> = ((page - 1) * 2 + 1..=(page * 2).min(5))
            .map(|i| json!({"id": i, "name": format!("project {i}")}))
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let l = log.clone();
    Mock::given(matchers::path_regex(r"^/projects/\d+/tasks$"))
        .respond_with(move |r: &Request| {
            let p: i64 = r.url.path().split('/').nth(2).unwrap().parse().unwrap();
            let since = query(r, "since").unwrap_or_default();
            l.lock().unwrap().push(format!("{p}:{since}"));
            let data: Vec<Value> = [(1, p), (2, p + 1)]
                .iter()
                .map(|(n, day)| json!({"id": p * 10 + n, "updated_at": format!("2024-01-{day:02}T00:00:00Z")}))
                .filter(|t| t["updated_at"].as_str().unwrap() >= since.as_str())
                .collect();
            json_response(json!({ "data": data }))
        })
        .mount(&server)
        .await;
    (server, log)
}

fn config(server: &MockServer) -> Value {
    json!({"base_url": server.uri(), "start_date": "2024-01-01T00:00:00Z"})
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_of_the_parent_gives_partitions() {
    let (server, log) = server().await;
    let m = manifest(MANIFEST);
    let out = m.read(&config(&server), &["tasks"]);
    out.assert_success();
    let tasks = out.records_of("tasks");
    assert_eq!(tasks.len(), 10, "{}", out.describe());
    let mut projects: Vec<i64> = tasks
        .iter()
        .map(|t| t["project_id"].as_i64().unwrap())
        .collect();
    projects.sort();
    projects.dedup();
    assert_eq!(projects, vec![1, 2, 3, 4, 5]);
    let t11 = tasks.iter().find(|t| t["id"] == 11).unwrap();
    assert_eq!(t11["project_name"], "project 1");
    assert_eq!(log.lock().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_partition_state_and_resume() {
    let (server, log) = server().await;
    let m = manifest(MANIFEST);
    let out = m.read_incremental(&config(&server), &["tasks"], None);
    out.assert_success();
    let last = states(&out, "tasks").pop().unwrap();
    assert_eq!(last["use_global_cursor"], false);
    assert_eq!(last["state"], json!({"updated_at": "2024-01-06T00:00:00Z"}));
    let mut parts: Vec<(Value, Value)> = last["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["partition"].clone(), s["cursor"].clone()))
        .collect();
    parts.sort_by_key(|(p, _)| p["project_id"].as_i64());
    assert_eq!(parts.len(), 5);
    assert_eq!(
        parts[0],
        (
            json!({"project_id": 1, "parent_slice": {}}),
            json!({"updated_at": "2024-01-02T00:00:00Z"})
        )
    );
    assert_eq!(parts[4].1, json!({"updated_at": "2024-01-06T00:00:00Z"}));

    // Resume: each partition from its own cursor; a new partition from the global one.
    log.lock().unwrap().clear();
    let mut state = out.final_state();
    let inner = &mut state[0]["stream"]["stream_state"];
    inner["states"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["partition"]["project_id"] != 5);
    inner["state"] = json!({"updated_at": "2024-01-03T00:00:00Z"});
    let again = m.read_incremental(&config(&server), &["tasks"], Some(&state));
    again.assert_success();
    let mut requests = log.lock().unwrap().clone();
    requests.sort();
    assert_eq!(
        requests,
        vec![
            "1:2024-01-02T00:00:00Z",
            "2:2024-01-03T00:00:00Z",
            "3:2024-01-04T00:00:00Z",
            "4:2024-01-05T00:00:00Z",
            "5:2024-01-03T00:00:00Z",
        ]
    );
    let mut got = ids(&again, "tasks");
    got.sort();
    assert_eq!(got, vec![12, 22, 32, 42, 51, 52]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_parent_fails_the_child() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/projects",
        ResponseTemplate::new(403).set_body_string("forbidden"),
    )
    .await;
    let out = manifest(MANIFEST).read(&config(&server), &["tasks"]);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("parent stream 'projects'") && message.contains("403"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_partitions_with_a_request_option() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        let region = query(r, "region").unwrap();
        json_response(json!({"data": [{"id": region.len(), "region": region}]}))
    })
    .await;
    let router = r#"partition_router:
  type: ListPartitionRouter
  cursor_field: region
  values: "{{ config['regions'] }}"
  request_option: {type: RequestOption, inject_into: request_parameter, field_name: region}"#;
    let transformations = r#"transformations:
  - type: AddFields
    fields: [{type: AddedFieldDefinition, path: [from_partition], value: "{{ stream_partition.region }}"}]"#;
    let m = manifest(&one_stream("/items", "", router, transformations));
    let mut cfg = config_for(&server);
    cfg["regions"] = json!(["eu", "usa", "apac"]);
    let out = m.read(&cfg, &["items"]);
    out.assert_success();
    let mut got: Vec<(String, String)> = out
        .records_of("items")
        .iter()
        .map(|r| {
            (
                r["region"].as_str().unwrap().to_string(),
                r["from_partition"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("apac".into(), "apac".into()),
            ("eu".into(), "eu".into()),
            ("usa".into(), "usa".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_per_partition_state_is_migrated() {
    let (server, _log) = server().await;
    let yaml = MANIFEST.replace(
        "    incremental_sync:\n",
        "    state_migrations:\n      - type: LegacyToPerPartitionStateMigration\n    incremental_sync:\n",
    );
    let m = manifest(&yaml);
    let legacy = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "tasks"},
        "stream_state": {"9": {"updated_at": "2024-01-04T00:00:00Z"}}}}]);
    let out = m.read_incremental(&config(&server), &["tasks"], Some(&legacy));
    out.assert_success();
    let last = states(&out, "tasks").pop().unwrap();
    // The legacy entry became a partition of the low-code shape, kept beside the partitions read.
    let migrated: Vec<&Value> = last["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["partition"] == json!({"project_id": "9"}))
        .collect();
    assert_eq!(
        migrated,
        vec![
            &json!({"partition": {"project_id": "9"}, "cursor": {"updated_at": "2024-01-04T00:00:00Z"}})
        ],
        "{last}"
    );

    let custom = MANIFEST.replace(
        "    incremental_sync:\n",
        "    state_migrations:\n      - {type: CustomStateMigration, class_name: source_x.Migrate}\n    incremental_sync:\n",
    );
    let out = manifest(&custom).read(&config(&server), &["tasks"]);
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("CustomStateMigration at /streams/1/state_migrations/0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn global_substream_cursor_keeps_one_cursor() {
    let (server, log) = server().await;
    let yaml = MANIFEST.replace(
        "      cursor_field: updated_at\n",
        "      cursor_field: updated_at\n      global_substream_cursor: true\n",
    );
    let m = manifest(&yaml);
    let out = m.read_incremental(&config(&server), &["tasks"], None);
    out.assert_success();
    let st = states(&out, "tasks");
    assert_eq!(
        st,
        vec![
            json!({"use_global_cursor": true, "state": {"updated_at": "2024-01-06T00:00:00Z"}, "lookback_window": 0})
        ],
        "{}",
        out.describe()
    );

    // Every partition resumes from the global cursor less the lookback window.
    log.lock().unwrap().clear();
    let state = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "tasks"},
        "stream_state": {"use_global_cursor": true, "state": {"updated_at": "2024-01-04T00:00:00Z"}, "lookback_window": 86400}}}]);
    let again = m.read_incremental(&config(&server), &["tasks"], Some(&state));
    again.assert_success();
    let mut requests = log.lock().unwrap().clone();
    requests.sort();
    assert_eq!(
        requests,
        (1..=5)
            .map(|p| format!("{p}:2024-01-03T00:00:00Z"))
            .collect::<Vec<_>>()
    );
    let mut got = ids(&again, "tasks");
    got.sort();
    assert_eq!(got, vec![22, 31, 32, 41, 42, 51, 52]);
    assert_eq!(
        states(&again, "tasks").last().unwrap()["state"],
        json!({"updated_at": "2024-01-06T00:00:00Z"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_dependency_reads_the_parent_from_its_state() {
    let server = MockServer::start().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    serve(&server, "/projects", move |r: &Request| {
        let since = query(r, "since").unwrap_or_default();
        l.lock().unwrap().push(format!("projects:{since}"));
        let data: Vec<Value> = (1..=3)
            .map(|i| json!({"id": i, "updated_at": format!("2024-01-0{i}T00:00:00Z")}))
            .filter(|p| p["updated_at"].as_str().unwrap() >= since.as_str())
            .collect();
        json_response(json!({ "data": data }))
    })
    .await;
    let l = log.clone();
    Mock::given(matchers::path_regex(r"^/projects/\d+/tasks$"))
        .respond_with(move |r: &Request| {
            let p: i64 = r.url.path().split('/').nth(2).unwrap().parse().unwrap();
            l.lock().unwrap().push(format!("tasks:{p}"));
            json_response(json!({"data": [{"id": p * 10, "updated_at": "2024-01-05T00:00:00Z"}]}))
        })
        .mount(&server)
        .await;
    let cursor = |indent: &str| {
        format!(
            "{indent}incremental_sync:\n{indent}  type: DatetimeBasedCursor\n{indent}  cursor_field: updated_at\n{indent}  datetime_format: \"%Y-%m-%dT%H:%M:%SZ\"\n{indent}  start_datetime: \"{{{{ config['start_date'] }}}}\"\n{indent}  start_time_option: {{type: RequestOption, inject_into: request_parameter, field_name: since}}\n"
        )
    };
    let yaml = format!(
        r##"version: 6.0.0
type: DeclarativeSource
check: {{type: CheckStream, stream_names: [tasks]}}
definitions:
  requester: {{type: HttpRequester, url_base: "{{{{ config['base_url'] }}}}"}}
  projects:
    type: DeclarativeStream
    name: projects
    primary_key: id
    retriever:
      type: SimpleRetriever
      requester: {{$ref: "#/definitions/requester", path: /projects}}
      record_selector: {{type: RecordSelector, extractor: {{type: DpathExtractor, field_path: [data]}}}}
{parent_cursor}streams:
  - type: DeclarativeStream
    name: tasks
    primary_key: id
    retriever:
      type: SimpleRetriever
      requester: {{$ref: "#/definitions/requester", path: "/projects/{{{{ stream_partition.project_id }}}}/tasks"}}
      record_selector: {{type: RecordSelector, extractor: {{type: DpathExtractor, field_path: [data]}}}}
      partition_router:
        type: SubstreamPartitionRouter
        parent_stream_configs:
          - type: ParentStreamConfig
            stream: {{$ref: "#/definitions/projects"}}
            parent_key: id
            partition_field: project_id
            incremental_dependency: true
{child_cursor}"##,
        parent_cursor = cursor("    "),
        child_cursor = cursor("    "),
    );
    let m = manifest(&yaml);
    let out = m.read_incremental(&config(&server), &["tasks"], None);
    out.assert_success();
    let last = states(&out, "tasks").pop().unwrap();
    assert_eq!(
        last["parent_state"],
        json!({"projects": {"updated_at": "2024-01-03T00:00:00Z"}}),
        "{last}"
    );
    assert_eq!(ids(&out, "tasks").len(), 3);

    // The next sync reads the parent from its state: only project 3 gives a partition.
    log.lock().unwrap().clear();
    let again = m.read_incremental(&config(&server), &["tasks"], Some(&out.final_state()));
    again.assert_success();
    assert_eq!(
        *log.lock().unwrap(),
        vec!["projects:2024-01-03T00:00:00Z", "tasks:3"]
    );
    assert_eq!(ids(&again, "tasks"), vec![30]);
    assert_eq!(
        states(&again, "tasks").pop().unwrap()["parent_state"],
        json!({"projects": {"updated_at": "2024-01-03T00:00:00Z"}})
    );
}
