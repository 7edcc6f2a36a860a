//! Integration tests of source-rest-api: the real binary against wiremock HTTP servers on
//! localhost, one file per concern.

mod acceptance;
mod actions;
mod async_retriever;
mod auth;
mod components;
mod errors;
mod file_uploader;
mod filtered_pages;
mod incremental;
mod language;
mod last_components;
mod loading;
mod pagination;
mod schema_gaps;
mod simple;
mod substreams;
mod token_quota;
mod transforms;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cdk::protocol::{AirbyteMessage, FailureType};
use cdk::testing::Captured;
use cdk::testing::Run;
use cdk::testing::http::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_source-rest-api");

/// A manifest written to a temp dir (with room for schema files beside it).
pub struct Manifest {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn manifest(yaml: &str) -> Manifest {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, yaml).expect("write manifest");
    Manifest { dir, path }
}

impl Manifest {
    pub fn run(&self) -> Run {
        Run::new(BIN)
            .arg("--manifest-path")
            .arg(self.path.display().to_string())
    }

    /// `read` of `streams` (full refresh) with `config`; asserts protocol-valid output.
    pub fn read(&self, config: &Value, streams: &[&str]) -> Captured {
        let out = self.run().read(config, &catalog(streams, false), None);
        out.assert_protocol();
        out
    }

    pub fn read_incremental(
        &self,
        config: &Value,
        streams: &[&str],
        state: Option<&Value>,
    ) -> Captured {
        let out = self.run().read(config, &catalog(streams, true), state);
        out.assert_protocol();
        out
    }
}

/// A configured catalog of `streams` (incremental on `updated_at` when asked).
pub fn catalog(streams: &[&str], incremental: bool) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|name| {
            if incremental {
                json!({"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"],
                        "source_defined_cursor": true, "default_cursor_field": ["updated_at"]},
                       "sync_mode": "incremental", "cursor_field": ["updated_at"], "destination_sync_mode": "append"})
            } else {
                json!({"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                       "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"})
            }
        })
        .collect();
    json!({ "streams": streams })
}

/// The server's address as a config.
pub fn config_for(server: &MockServer) -> Value {
    json!({ "base_url": server.uri(), "api_key": "sekrit-key-123" })
}

/// A query parameter of a request.
pub fn query(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A responder that gives `respond` each request's number (0 for the first), and the count of
/// requests answered so far.
pub fn counting(
    respond: impl Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static,
) -> (
    Arc<AtomicUsize>,
    impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    (count, move |req: &Request| {
        respond(c.fetch_add(1, Ordering::SeqCst), req)
    })
}

/// A field of a request's form-encoded body (the first of that name).
pub fn form_field(req: &Request, key: &str) -> Option<String> {
    url::form_urlencoded::parse(&req.body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Answers every request to `path` on `server` with `respond`.
pub async fn serve(server: &MockServer, path: &str, respond: impl Respond + 'static) {
    Mock::given(matchers::path(path))
        .respond_with(respond)
        .mount(server)
        .await;
}

/// Answers every POST to `path` on `server` with `respond`.
pub async fn serve_post(server: &MockServer, path: &str, respond: impl Respond + 'static) {
    Mock::given(matchers::path(path))
        .and(matchers::method("POST"))
        .respond_with(respond)
        .mount(server)
        .await;
}

/// Reads stream `items` of the manifest `yaml` with `config`; asserts success and returns
/// the records' ids.
pub fn read_ids(config: &Value, yaml: &str) -> Vec<i64> {
    let out = manifest(yaml).read(config, &["items"]);
    out.assert_success();
    ids(&out, "items")
}

/// Ids of the records of `stream`, in order.
pub fn ids(out: &Captured, stream: &str) -> Vec<i64> {
    out.records_of(stream)
        .iter()
        .map(|r| {
            r["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("record without id: {r}\n{}", out.describe()))
        })
        .collect()
}

/// The stream states of `stream`, in order.
pub fn states(out: &Captured, stream: &str) -> Vec<Value> {
    out.states_of(stream)
        .iter()
        .map(|s| {
            s.stream
                .as_ref()
                .expect("stream state")
                .stream_state
                .clone()
                .unwrap_or(Value::Null)
        })
        .collect()
}

/// The one TRACE ERROR of a failed run.
pub fn trace_error(out: &Captured) -> (String, Option<FailureType>) {
    let errors = out.trace_errors();
    let e = errors
        .first()
        .unwrap_or_else(|| panic!("no TRACE ERROR\n{}", out.describe()));
    (e.message.clone(), e.failure_type)
}

/// CONTROL messages of a run.
pub fn controls(out: &Captured) -> Vec<Value> {
    out.messages
        .iter()
        .filter_map(|m| match m {
            AirbyteMessage::Control { control } => serde_json::to_value(control).ok(),
            _ => None,
        })
        .collect()
}

/// A simple manifest: one stream `items` reading `path` under `config['base_url']`, with
/// `requester_extra`, `retriever_extra` and `stream_extra` YAML spliced in (indented to fit).
pub fn one_stream(
    path: &str,
    requester_extra: &str,
    retriever_extra: &str,
    stream_extra: &str,
) -> String {
    let indent = |s: &str, n: usize| {
        s.lines()
            .map(|l| format!("{}{l}", " ".repeat(n)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        r#"version: 6.0.0
type: DeclarativeSource
check:
  type: CheckStream
  stream_names: [items]
streams:
  - type: DeclarativeStream
    name: items
    primary_key: [id]
    retriever:
      type: SimpleRetriever
      requester:
        type: HttpRequester
        url_base: "{{{{ config['base_url'] }}}}"
        path: {path}
        http_method: GET
{requester}
      record_selector:
        type: RecordSelector
        extractor:
          type: DpathExtractor
          field_path: [data]
{retriever}
{stream}
"#,
        requester = indent(requester_extra, 8),
        retriever = indent(retriever_extra, 6),
        stream = indent(stream_extra, 4),
    )
}
