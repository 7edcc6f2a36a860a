//! Manifest handling and the remaining components: `$ref`/`$parameters`, extractors with
//! wildcards, filters, transformations, decoders, schema loaders, request bodies, `url`,
//! timeouts, concurrency, unsupported components, and spec/discover output.

use std::time::Duration;

use cdk::protocol::{ConnectionStatus, FailureType};
use cdk::testing::http::{Mock, MockServer, Request, ResponseTemplate, matchers};
use serde_json::json;

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn refs_and_parameters_fill_fields() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v2/widgets",
        json_response(json!({"results": [{"id": 7}]})),
    )
    .await;
    let yaml = r##"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [widgets]}
definitions:
  base:
    type: DeclarativeStream
    retriever:
      type: SimpleRetriever
      requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}/{{ parameters['api_version'] }}"
      record_selector:
        type: RecordSelector
        extractor: {type: DpathExtractor, field_path: ["{{ parameters['records_key'] }}"]}
streams:
  - $ref: "#/definitions/base"
    $parameters: {name: widgets, path: /widgets, api_version: v2, records_key: results}
"##;
    let out = manifest(yaml).read(&config_for(&server), &["widgets"]);
    out.assert_success();
    assert_eq!(ids(&out, "widgets"), vec![7]);
}

#[tokio::test(flavor = "multi_thread")]
async fn extractor_wildcards_root_lists_and_filters() {
    let server = MockServer::start().await;
    serve(&server, "/by_key", json_response(json!({"data": {"a": {"id": 1, "status": "active"}, "b": {"id": 2, "status": "closed"}}}))).await;
    serve(
        &server,
        "/root",
        json_response(json!([{"id": 3, "status": "active"}, {"id": 4, "status": "active"}])),
    )
    .await;
    let filtered = |path: &str, field_path: &str| {
        one_stream(path, "", "", "")
            .replace("field_path: [data]", &format!("field_path: {field_path}\n        record_filter: {{type: RecordFilter, condition: \"{{{{ record['status'] == 'active' }}}}\"}}"))
    };
    let out =
        manifest(&filtered("/by_key", "[data, \"*\"]")).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
    let out = manifest(&filtered("/root", "[]")).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn add_and_remove_fields() {
    let server = MockServer::start().await;
    serve(&server, "/items", json_response(json!({"data": [
            {"id": 1, "kind": "a", "secret": {"token": "x", "keep": 1}, "meta": {"a": 1, "b": null}},
            {"id": 2, "kind": "b", "secret": {"token": "y", "keep": 2}, "meta": {"a": 2, "b": 3}}
        ]}))).await;
    let transformations = r#"transformations:
  - type: AddFields
    fields:
      - {type: AddedFieldDefinition, path: [big_id], value: "{{ record['id'] + 1000000 }}"}
      - {type: AddedFieldDefinition, path: [id_text], value: "{{ record['id'] }}", value_type: string}
      - {type: AddedFieldDefinition, path: [source, region], value: "{{ config['region'] }}"}
      - {type: AddedFieldDefinition, path: [from_previous], value: "{{ record['big_id'] * 2 }}"}
      - {type: AddedFieldDefinition, path: [constant], value: 5}
  - type: AddFields
    condition: "{{ record['kind'] == 'b' }}"
    fields: [{type: AddedFieldDefinition, path: [is_b], value: "{{ True }}"}]
  - type: RemoveFields
    field_pointers: [[secret, token], [kind]]
  - type: RemoveFields
    condition: "{{ property is none }}"
    field_pointers: [[meta, "*"]]"#;
    let m = manifest(&one_stream("/items", "", "", transformations));
    let mut cfg = config_for(&server);
    cfg["region"] = json!("eu");
    let out = m.read(&cfg, &["items"]);
    out.assert_success();
    let recs = out.records_of("items");
    assert_eq!(
        *recs[0],
        json!({"id": 1, "big_id": 1000001, "id_text": "1", "source": {"region": "eu"}, "from_previous": 2000002,
               "constant": 5, "secret": {"keep": 1}, "meta": {"a": 1}})
    );
    assert_eq!(recs[1]["is_b"], true);
    assert_eq!(recs[1]["meta"], json!({"a": 2, "b": 3}));
    assert!(recs[0].get("is_b").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn jsonl_decoder_form_bodies_headers_and_url() {
    let server = MockServer::start().await;
    Mock::given(matchers::path("/export"))
        .and(matchers::method("POST"))
        .and(matchers::header("X-Client", "rest-api-eu"))
        .and(matchers::header(
            "Content-Type",
            "application/x-www-form-urlencoded",
        ))
        .respond_with(|r: &Request| {
            let body = String::from_utf8_lossy(&r.body).to_string();
            assert_eq!(body, "format=jsonl&region=eu");
            ResponseTemplate::new(200).set_body_string("{\"id\": 1}\n{\"id\": 2}\n\n{\"id\": 3}\n")
        })
        .mount(&server)
        .await;
    let yaml = r#"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [export]}
streams:
  - type: DeclarativeStream
    name: export
    retriever:
      type: SimpleRetriever
      decoder: {type: JsonlDecoder}
      requester:
        type: HttpRequester
        url: "{{ config['base_url'] }}/export"
        http_method: POST
        request_headers: {X-Client: "rest-api-{{ config['region'] }}"}
        request_body_data: {format: jsonl, region: "{{ config['region'] }}"}
      record_selector: {type: RecordSelector, extractor: {type: DpathExtractor, field_path: []}}
"#;
    let mut cfg = config_for(&server);
    cfg["region"] = json!("eu");
    let out = manifest(yaml).read(&cfg, &["export"]);
    out.assert_success();
    assert_eq!(ids(&out, "export"), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_timeout_is_retried_then_transient() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/items",
        json_response(json!({"data": []})).set_delay(Duration::from_secs(3)),
    )
    .await;
    let extra = "read_timeout_in_seconds: 0.2\nerror_handler:\n  type: DefaultErrorHandler\n  max_retries: 1\n  backoff_strategies: [{type: ConstantBackoffStrategy, backoff_time_in_seconds: 0.01}]";
    let out = manifest(&one_stream("/items", extra, "", "")).read(&config_for(&server), &["items"]);
    out.assert_failure();
    let (message, kind) = trace_error(&out);
    assert_eq!(kind, Some(FailureType::TransientError));
    assert!(message.contains("gave up after 2 attempts"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_level_from_the_config() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        json_response(json!({"data": [{"id": query(r, "n").unwrap().parse::<i64>().unwrap()}]}))
            .set_delay(Duration::from_millis(400))
    })
    .await;
    let router = "partition_router:\n  type: ListPartitionRouter\n  cursor_field: n\n  values: [\"1\", \"2\", \"3\", \"4\"]\n  request_option: {type: RequestOption, inject_into: request_parameter, field_name: n}";
    let yaml = format!(
        "{}\nconcurrency_level:\n  type: ConcurrencyLevel\n  default_concurrency: \"{{{{ config['workers'] }}}}\"\n  max_concurrency: 8\n",
        one_stream("/items", "", router, "")
    );
    let mut cfg = config_for(&server);
    cfg["workers"] = json!(4);
    let started = std::time::Instant::now();
    let out = manifest(&yaml).read(&cfg, &["items"]);
    out.assert_success();
    let mut got = ids(&out, "items");
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "4 partitions read at once: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_components_and_fields_are_named() {
    let server = MockServer::start().await;
    let custom = one_stream("/items", "", "", "").replace(
        "type: HttpRequester",
        "type: CustomRequester\n        class_name: x.Y",
    );
    let out = manifest(&custom).run().check(&config_for(&server));
    out.assert_success();
    let status = out.connection_status();
    assert_eq!(status.status, ConnectionStatus::Failed);
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains(
            "unsupported component type 'CustomRequester' at /streams/0/retriever/requester"
        ),
        "{message}"
    );

    let dynamic = format!(
        "{}\ndynamic_streams: []\n",
        one_stream("/items", "", "", "")
    );
    // An empty `dynamic_streams` adds no stream (the request fails on the server without mock).
    let out = manifest(&dynamic).read(&config_for(&server), &["items"]);
    assert!(!trace_error(&out).0.contains("dynamic_streams"));

    let custom_decoder = one_stream(
        "/items",
        "",
        "decoder: {type: CustomDecoder, class_name: source_x.Dec}",
        "",
    );
    let out = manifest(&custom_decoder).read(&config_for(&server), &["items"]);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("CustomDecoder at /streams/0/retriever/decoder: custom decoders are Python code ('source_x.Dec')"),
        "{message}"
    );
}

const SPEC: &str = r#"spec:
  type: Spec
  documentation_url: https://example.com/docs
  connection_specification:
    $schema: http://json-schema.org/draft-07/schema#
    type: object
    required: [base_url, api_key]
    properties:
      base_url: {type: string}
      api_key: {type: string, airbyte_secret: true}"#;

#[tokio::test(flavor = "multi_thread")]
async fn spec_discover_and_schema_files() {
    let yaml = format!(
        "{}\n{SPEC}\n",
        one_stream(
            "/items",
            "",
            "",
            "incremental_sync:\n  type: DatetimeBasedCursor\n  cursor_field: updated_at\n  datetime_format: \"%Y-%m-%d\"\n  start_datetime: \"2024-01-01\""
        )
    );
    let m = manifest(&yaml);
    std::fs::create_dir(m.dir.path().join("schemas")).unwrap();
    std::fs::write(
        m.dir.path().join("schemas/items.json"),
        json!({"type": "object", "properties": {"id": {"type": "integer"}, "updated_at": {"type": "string"}}}).to_string(),
    )
    .unwrap();
    let spec = m.run().spec();
    spec.assert_success().assert_protocol();
    insta::assert_json_snapshot!("manifest_spec", spec.spec());
    let server = MockServer::start().await;
    let discovered = m.run().discover(&config_for(&server));
    discovered.assert_success().assert_protocol();
    insta::assert_json_snapshot!("discover", discovered.catalog());

    // An inline schema wins over the file.
    let inline = yaml.replace(
        "incremental_sync:",
        "schema_loader: {type: InlineSchemaLoader, schema: {type: object, properties: {id: {type: string}}}}\n    incremental_sync:",
    );
    let m2 = manifest(&inline);
    let catalog = m2.run().discover(&config_for(&server));
    catalog.assert_success();
    assert_eq!(
        catalog.catalog().streams[0].json_schema["properties"]["id"]["type"],
        "string"
    );

    // The config is validated against the manifest's spec.
    let bad = m.run().check(&json!({"base_url": server.uri()}));
    bad.assert_success();
    assert_eq!(bad.connection_status().status, ConnectionStatus::Failed);
}

#[test]
fn generic_spec_without_a_manifest() {
    let out = Run::new(BIN).spec();
    out.assert_success().assert_protocol();
    let spec = out.spec();
    let props = &spec.connection_specification["properties"];
    assert!(props.get("__injected_declarative_manifest").is_some());
    assert!(props.get("url_base").is_some() && props.get("endpoints").is_some());
    insta::assert_json_snapshot!("generic_spec", spec);
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_no_auth_and_schema_file_path() {
    let server = MockServer::start().await;
    serve(&server, "/items", |r: &Request| {
        assert!(r.headers.get("authorization").is_none());
        json_response(json!({"data": [{"id": 1}]}))
    })
    .await;
    let yaml = one_stream(
        "/items",
        "authenticator: {type: NoAuth}",
        "",
        "schema_loader: {type: JsonFileSchemaLoader, file_path: \"./shapes/{{ parameters['schema_name'] }}.json\"}\n$parameters: {schema_name: item}",
    );
    let m = manifest(&yaml);
    std::fs::create_dir(m.dir.path().join("shapes")).unwrap();
    std::fs::write(
        m.dir.path().join("shapes/item.json"),
        json!({"type": "object", "properties": {"id": {"type": "number"}}}).to_string(),
    )
    .unwrap();
    let discovered = m.run().discover(&config_for(&server));
    discovered.assert_success();
    assert_eq!(
        discovered.catalog().streams[0].json_schema["properties"]["id"]["type"],
        "number"
    );
    let out = m.read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
}

/// The manifest `cdk new --kind declarative` generates runs here.
#[tokio::test(flavor = "multi_thread")]
async fn the_declarative_template_runs() {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../templates/source-declarative/manifest.yaml"
    ))
    .expect("the template manifest");
    let yaml = template
        .replace("{{title}}", "Shop")
        .replace("{{name}}", "source-shop");
    let server = MockServer::start().await;
    Mock::given(matchers::path("/items"))
        .and(matchers::header("Authorization", "Bearer t"))
        .respond_with(|r: &Request| {
            assert_eq!(
                query(r, "updated_since").as_deref(),
                Some("2024-01-01T00:00:00Z")
            );
            json_response(
                json!({"data": [{"id": 1, "name": "a", "updated_at": "2024-02-01T00:00:00Z"}]}),
            )
        })
        .mount(&server)
        .await;
    let config =
        json!({"base_url": server.uri(), "api_token": "t", "start_date": "2024-01-01T00:00:00Z"});
    let m = manifest(&yaml);
    let check = m.run().check(&config);
    assert_eq!(
        check.connection_status().status,
        ConnectionStatus::Succeeded,
        "{}",
        check.describe()
    );
    let out = m.read_incremental(&config, &["items"], None);
    out.assert_success();
    assert_eq!(ids(&out, "items"), vec![1]);
    assert_eq!(
        states(&out, "items").last(),
        Some(&json!({"updated_at": "2024-02-01T00:00:00Z"}))
    );
}
