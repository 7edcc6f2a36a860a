//! Manifests load as Airbyte's engine loads them: fields a component does not define are
//! ignored, `stream_state` is a template variable (the state the read started from), and a
//! config's `format` is an annotation while its `pattern` is checked.

use std::sync::{Arc, Mutex};

use cdk::protocol::ConnectionStatus;
use cdk::testing::http::{MockServer, Request};
use serde_json::json;

use crate::*;

/// Fields seen in published manifests that their components do not define.
const EXTRA_FIELDS: &str = r#"version: 6.0.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [items]}
streams:
  - type: DeclarativeStream
    name: items
    primary_key: [id]
    retriever:
      type: SimpleRetriever
      requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}"
        path: /items
        reqest_parameters: {typo: ignored}
        authenticator:
          type: ApiKeyAuthenticator
          api_token: "{{ config['api_key'] }}"
          header: X-Key
          path: /items
          request_parameters: {a: b}
      record_selector:
        type: RecordSelector
        extractor: {type: DpathExtractor, field_path: [data]}
    incremental_sync:
      type: DatetimeBasedCursor
      name: items
      path: /items
      primary_key: id
      incremental_cursor: updated_at
      cursor_field: updated_at
      datetime_format: "%Y-%m-%dT%H:%M:%SZ"
      start_datetime: "2024-01-01T00:00:00Z"
      end_datetime: "2024-01-10T00:00:00Z"
      start_time_option:
        type: RequestOption
        inject_into: request_parameter
        field_name: since
        field_path: null
"#;

async fn logged_items(server: &MockServer) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    serve(server, "/items", move |r: &Request| {
        let key = r
            .headers
            .get("x-key")
            .map(|v| v.to_str().unwrap().to_string());
        l.lock().unwrap().push(format!(
            "{}|{}",
            key.unwrap_or_default(),
            r.url.query().unwrap_or("")
        ));
        json_response(json!({"data": [{"id": 1, "updated_at": "2024-01-02T00:00:00Z"}]}))
    })
    .await;
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_components_do_not_define_are_ignored() {
    let server = MockServer::start().await;
    let log = logged_items(&server).await;
    let out = manifest(EXTRA_FIELDS).read(&config_for(&server), &["items"]);
    out.assert_success();
    assert_eq!(ids(&out, "items"), [1]);
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with("sekrit-key-123|since=2024-01-01T00"),
        "the key goes in its header, the start in `since`: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_a_field_name_and_a_field_path_are_refused() {
    let server = MockServer::start().await;
    let yaml = EXTRA_FIELDS.replace("field_path: null", "field_path: [since]");
    let out = manifest(&yaml).read(&config_for(&server), &["items"]);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("only one of field_name or field_path"),
        "{message}"
    );
}

/// `stream_state` is the state the read started from (`{}` in a full refresh).
#[tokio::test(flavor = "multi_thread")]
async fn stream_state_in_templates() {
    let server = MockServer::start().await;
    let log = logged_items(&server).await;
    let yaml = one_stream(
        "/items",
        "request_parameters:\n  after: \"{{ stream_state.get('updated_at', 'none') }}\"",
        "",
        r#"incremental_sync:
  type: DatetimeBasedCursor
  cursor_field: updated_at
  datetime_format: "%Y-%m-%dT%H:%M:%SZ"
  start_datetime: "2024-01-01T00:00:00Z"
  end_datetime: "2024-01-10T00:00:00Z""#,
    );
    let m = manifest(&yaml);
    let config = config_for(&server);
    m.read(&config, &["items"]).assert_success();
    let state = json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "items"},
        "stream_state": {"updated_at": "2024-01-05T00:00:00Z"}}}]);
    m.read_incremental(&config, &["items"], Some(&state))
        .assert_success();
    let log = log.lock().unwrap().clone();
    assert_eq!(log, ["|after=none", "|after=2024-01-05T00%3A00%3A00Z"]);
}

/// `format: date` on a value whose `pattern` wants another layout: Airbyte validates config
/// without asserting formats.
#[tokio::test(flavor = "multi_thread")]
async fn config_formats_are_annotations() {
    let server = MockServer::start().await;
    logged_items(&server).await;
    let spec = r#"spec:
  type: Spec
  connection_specification:
    type: object
    required: [base_url, start]
    properties:
      base_url: {type: string}
      start: {type: string, format: date, pattern: "^[0-9]{2}/[0-9]{2}/[0-9]{4}$"}
"#;
    let yaml = format!("{}{spec}", one_stream("/items", "", "", ""));
    let m = manifest(&yaml);
    let mut config = config_for(&server);
    config["start"] = json!("01/31/2024");
    let out = m.run().check(&config);
    out.assert_success();
    assert_eq!(out.connection_status().status, ConnectionStatus::Succeeded);
    config["start"] = json!("2024-01-31");
    let out = m.run().check(&config);
    let status = out.connection_status();
    assert_eq!(status.status, ConnectionStatus::Failed);
    assert!(
        status.message.clone().unwrap_or_default().contains("start"),
        "{status:?}"
    );
}
