//! A stream's `file_uploader`: each record's file downloaded by the uploader's requester into
//! the staging directory, the record sent with its `file_reference`, discover marking the
//! stream `is_file_based`, and clear errors when a download fails.

use std::path::Path;

use cdk::protocol::{AirbyteRecordMessageFileReference, AirbyteStreamStatus};

use super::*;

/// Bytes that are not UTF-8, to see the body is written as it came.
const BINARY: &[u8] = &[0, 159, 146, 150, b'\n', 255, b'x'];

/// `/docs` lists three documents whose files are at `/files/<n>`; `/files/2` is binary and
/// `/files/3` needs the API key.
async fn document_server() -> MockServer {
    let server = MockServer::start().await;
    let base = server.uri();
    serve(
        &server,
        "/docs",
        json_response(json!({"data": [
            {"id": 1, "name": "a.txt", "url": format!("{base}/files/1"), "path": "/files/1"},
            {"id": 2, "name": "b.bin", "url": format!("{base}/files/2"), "path": "/files/2"},
            {"id": 3, "name": "c.csv", "url": format!("{base}/files/3"), "path": "/files/3"},
        ]})),
    )
    .await;
    serve(
        &server,
        "/files/1",
        ResponseTemplate::new(200).set_body_string("first file\n"),
    )
    .await;
    serve(
        &server,
        "/files/2",
        ResponseTemplate::new(200).set_body_bytes(BINARY.to_vec()),
    )
    .await;
    Mock::given(matchers::path("/files/3"))
        .and(matchers::header("X-Key", "sekrit-key-123"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a,b\n1,2\n"))
        .mount(&server)
        .await;
    Mock::given(matchers::path("/files/3"))
        .respond_with(ResponseTemplate::new(401).set_body_string("no key"))
        .mount(&server)
        .await;
    server
}

/// A manifest with stream `docs` (uploading files with `uploader`) and stream `plain`.
fn docs_manifest(uploader: &str) -> String {
    let indent = |s: &str| {
        s.lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        r##"version: 6.0.0
type: DeclarativeSource
check:
  type: CheckStream
  stream_names: [docs]
definitions:
  requester:
    type: HttpRequester
    url_base: "{{{{ config['base_url'] }}}}"
    http_method: GET
streams:
  - type: DeclarativeStream
    name: docs
    primary_key: [id]
    retriever:
      type: SimpleRetriever
      requester:
        $ref: "#/definitions/requester"
        path: /docs
      record_selector:
        type: RecordSelector
        extractor: {{type: DpathExtractor, field_path: [data]}}
    file_uploader:
{uploader}
  - type: DeclarativeStream
    name: plain
    retriever:
      type: SimpleRetriever
      requester:
        $ref: "#/definitions/requester"
        path: /docs
      record_selector:
        type: RecordSelector
        extractor: {{type: DpathExtractor, field_path: [data]}}
"##,
        uploader = indent(uploader),
    )
}

/// The uploader most tests use: the record's `url`, named `<id>/<name>`, with the API key.
const UPLOADER: &str = r#"type: FileUploader
requester:
  type: HttpRequester
  url: "{{ download_target }}"
  http_method: GET
  authenticator:
    type: ApiKeyAuthenticator
    api_token: "{{ config['api_key'] }}"
    inject_into: {type: RequestOption, inject_into: header, field_name: X-Key}
download_target_extractor: {type: DpathExtractor, field_path: [url]}
filename_extractor: "{{ record.id }}/{{ record.name }}/"
"#;

/// `read` of `streams` with the staging directory at `staging`.
fn read_with_staging(
    yaml: &str,
    server: &MockServer,
    staging: &Path,
    streams: &[&str],
) -> Captured {
    let m = manifest(yaml);
    let out = m
        .run()
        .env("AIRBYTE_STAGING_DIRECTORY", &staging.display().to_string())
        .read(&config_for(server), &catalog(streams, false), None);
    out.assert_protocol();
    out
}

/// The RECORD messages of `stream`.
fn record_messages<'a>(
    out: &'a Captured,
    stream: &str,
) -> Vec<&'a cdk::protocol::AirbyteRecordMessage> {
    out.records().filter(|r| r.stream == stream).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_record_comes_with_its_downloaded_file() {
    let server = document_server().await;
    let staging = tempfile::tempdir().unwrap();
    let out = read_with_staging(
        &docs_manifest(UPLOADER),
        &server,
        staging.path(),
        &["docs", "plain"],
    );
    out.assert_success();
    let records = record_messages(&out, "docs");
    assert_eq!(records.len(), 3, "{}", out.describe());
    let expected: [(&str, &[u8]); 3] = [
        ("docs/1/a.txt", b"first file\n"),
        ("docs/2/b.bin", BINARY),
        ("docs/3/c.csv", b"a,b\n1,2\n"),
    ];
    for (record, (relative, content)) in records.iter().zip(expected) {
        let full = staging.path().join(relative);
        assert_eq!(
            record.file_reference,
            Some(AirbyteRecordMessageFileReference {
                staging_file_url: Some(full.display().to_string()),
                source_file_relative_path: Some(relative.to_string()),
                file_size_bytes: Some(content.len() as i64),
            }),
            "{}",
            out.describe()
        );
        assert_eq!(std::fs::read(&full).unwrap(), content, "{relative}");
        // The record's data is the API's, unchanged.
        assert!(record.data.get("url").is_some() && record.data.get("path").is_some());
        assert!(record.data.get("source_file_relative_path").is_none());
    }
    // The other stream's records carry no file.
    let plain = record_messages(&out, "plain");
    assert_eq!(plain.len(), 3);
    assert!(plain.iter().all(|r| r.file_reference.is_none()));
    // Only the three files were written.
    let count = walk(staging.path());
    assert_eq!(count, 3, "files under the staging directory");
}

/// Files under `dir`, recursively.
fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_marks_file_based_streams() {
    let server = document_server().await;
    let m = manifest(&docs_manifest(UPLOADER));
    let out = m.run().discover(&config_for(&server));
    out.assert_success();
    let streams = &out.catalog().streams;
    let docs = streams.iter().find(|s| s.name == "docs").unwrap();
    let plain = streams.iter().find(|s| s.name == "plain").unwrap();
    assert_eq!(docs.is_file_based, Some(true));
    assert_ne!(plain.is_file_based, Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_target_may_be_a_path_seen_through_stream_slice_and_names_default_to_uuids() {
    let server = document_server().await;
    let staging = tempfile::tempdir().unwrap();
    let uploader = r#"type: FileUploader
requester:
  type: HttpRequester
  url_base: "{{ config['base_url'] }}"
  path: "{{ stream_slice.extra_fields.download_target }}"
  request_headers: {X-Key: "{{ config.api_key }}"}
download_target_extractor: {type: DpathExtractor, field_path: [path]}
file_extractor: {type: DpathExtractor, field_path: [ignored]}
"#;
    let out = read_with_staging(&docs_manifest(uploader), &server, staging.path(), &["docs"]);
    out.assert_success();
    let records = record_messages(&out, "docs");
    assert_eq!(records.len(), 3, "{}", out.describe());
    let mut names = std::collections::HashSet::new();
    for r in records {
        let file = r.file_reference.as_ref().expect("a file reference");
        let relative = file.source_file_relative_path.as_deref().unwrap();
        let name = relative
            .strip_prefix("docs/")
            .expect("under the stream's name");
        assert_eq!(name.len(), 36, "a UUID: {name}");
        assert!(name.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        assert!(names.insert(name.to_string()), "names differ");
        let full = staging.path().join(relative);
        assert_eq!(file.staging_file_url.as_deref(), full.to_str());
        // `file_extractor` has no effect: the whole body is the file, as in airbyte-cdk.
        let len = std::fs::metadata(&full).unwrap().len() as i64;
        assert_eq!(file.file_size_bytes, Some(len));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_staging_directory_files_go_to_the_local_fallback() {
    let server = document_server().await;
    let missing = tempfile::tempdir().unwrap().path().join("not-there");
    let unique = format!("fallback-test-{}-", std::process::id());
    let uploader = UPLOADER.replace(
        "\"{{ record.id }}/{{ record.name }}/\"",
        &format!("\"{unique}{{{{ record.id }}}}\""),
    );
    let out = read_with_staging(&docs_manifest(&uploader), &server, &missing, &["docs"]);
    out.assert_success();
    for r in record_messages(&out, "docs") {
        let file = r.file_reference.as_ref().unwrap();
        let url = file.staging_file_url.as_deref().unwrap();
        assert!(
            url.starts_with(&format!("/tmp/airbyte-file-transfer/docs/{unique}")),
            "{url}"
        );
        assert!(Path::new(url).is_file(), "{url}");
        let _ = std::fs::remove_file(url);
    }
    assert!(!missing.exists(), "the missing directory is not created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_download_fails_the_stream_saying_which_file() {
    let server = document_server().await;
    let staging = tempfile::tempdir().unwrap();
    // Without the API key, /files/3 answers 401.
    let uploader = UPLOADER.replace("  authenticator:", "  unused_authenticator:");
    let out = read_with_staging(
        &docs_manifest(&uploader),
        &server,
        staging.path(),
        &["docs"],
    );
    out.assert_failure();
    let (message, kind) = trace_error(&out);
    assert!(
        message.contains("stream 'docs': the file of a record could not be downloaded from")
            && message.contains("/files/3")
            && message.contains("401"),
        "{message}"
    );
    assert_eq!(kind, Some(FailureType::ConfigError));
    // The records before it came with their files; the failing one was not sent.
    assert_eq!(record_messages(&out, "docs").len(), 2);
    assert_eq!(
        out.statuses_of("docs").last(),
        Some(&AirbyteStreamStatus::Incomplete)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_without_a_download_target_is_an_error() {
    let server = document_server().await;
    let staging = tempfile::tempdir().unwrap();
    let uploader = UPLOADER.replace("field_path: [url]", "field_path: [missing]");
    let out = read_with_staging(
        &docs_manifest(&uploader),
        &server,
        staging.path(),
        &["docs"],
    );
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("download_target_extractor found no download target in the record"),
        "{message}"
    );
    let uploader = UPLOADER.replace("field_path: [url]", "field_path: [id]");
    let out = read_with_staging(
        &docs_manifest(&uploader),
        &server,
        staging.path(),
        &["docs"],
    );
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("download target must be a string, got 1"),
        "{message}"
    );
    let uploader = UPLOADER.replace(
        "\"{{ record.id }}/{{ record.name }}/\"",
        "\"../{{ record.name }}\"",
    );
    let out = read_with_staging(
        &docs_manifest(&uploader),
        &server,
        staging.path(),
        &["docs"],
    );
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(message.contains("'..' is not allowed"), "{message}");
    assert_eq!(walk(staging.path()), 0, "nothing written");
}

#[test]
fn what_airbyte_refuses_with_a_file_uploader_is_refused() {
    let config = json!({"base_url": "http://127.0.0.1:9", "api_key": "k"});
    let with_reduce = UPLOADER.replace(
        "  http_method: GET\n",
        "  http_method: GET\n  error_handler:\n    type: DefaultErrorHandler\n    response_filters:\n      - {type: HttpResponseFilter, action: REDUCE_PAGE_SIZE, http_codes: [413]}\n",
    );
    let out = manifest(&docs_manifest(&with_reduce))
        .run()
        .discover(&config);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains(
            "REDUCE_PAGE_SIZE response action is not supported on the requester of a `file_uploader`"
        ),
        "{message}"
    );
    let missing_requester = "type: FileUploader\ndownload_target_extractor: {type: DpathExtractor, field_path: [url]}\n";
    let out = manifest(&docs_manifest(missing_requester))
        .run()
        .discover(&config);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains("the field 'requester' is required"),
        "{message}"
    );
}

#[test]
fn page_size_reduction_is_refused_with_a_file_uploader() {
    let config = json!({"base_url": "http://127.0.0.1:9", "api_key": "k"});
    let handler = r#"error_handler:
  type: DefaultErrorHandler
  response_filters:
    - {type: HttpResponseFilter, action: REDUCE_PAGE_SIZE, http_codes: [413]}"#;
    let paginator = r#"paginator:
  type: DefaultPaginator
  pagination_strategy: {type: OffsetIncrement, page_size: 40}
  page_token_option: {type: RequestOption, inject_into: request_parameter, field_name: offset}
  page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}
page_size_reduction: {type: PageSizeReduction, backoff_seconds: 0}"#;
    let uploader = UPLOADER
        .lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let with_files = one_stream(
        "/items",
        handler,
        paginator,
        &format!("file_uploader:\n{uploader}"),
    );
    // Without the uploader the same stream loads.
    let without = one_stream("/items", handler, paginator, "");
    manifest(&without).run().discover(&config).assert_success();
    let out = manifest(&with_files).run().discover(&config);
    out.assert_failure();
    let (message, _) = trace_error(&out);
    assert!(
        message.contains(
            "`page_size_reduction` cannot be used together with a `file_uploader` on stream items"
        ),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_downloads_the_first_record_s_file_as_airbyte_does() {
    let server = document_server().await;
    let staging = tempfile::tempdir().unwrap();
    let run = |uploader: &str| {
        manifest(&docs_manifest(uploader))
            .run()
            .env(
                "AIRBYTE_STAGING_DIRECTORY",
                &staging.path().display().to_string(),
            )
            .check(&config_for(&server))
    };
    let out = run(UPLOADER);
    assert_eq!(
        out.connection_status().status,
        cdk::protocol::ConnectionStatus::Succeeded,
        "{}",
        out.describe()
    );
    assert_eq!(walk(staging.path()), 1, "only the first record's file");
    let first = staging.path().join("docs/1/a.txt");
    assert_eq!(std::fs::read(first).unwrap(), b"first file\n");
    // A record without a download target fails the check, saying so.
    let refused = UPLOADER.replace("field_path: [url]", "field_path: [missing_url]");
    let out = run(&refused);
    let status = out.connection_status();
    assert_eq!(status.status, cdk::protocol::ConnectionStatus::Failed);
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains("found no download target"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ignored_error_response_is_written_as_the_file_as_airbyte_does() {
    let server = document_server().await;
    let staging = tempfile::tempdir().unwrap();
    // Without the API key /files/3 answers 401, which this error handler ignores.
    let uploader = UPLOADER.replace(
        "  authenticator:",
        "  error_handler:\n    type: DefaultErrorHandler\n    response_filters:\n      - {type: HttpResponseFilter, action: IGNORE, http_codes: [401]}\n  unused_authenticator:",
    );
    let out = read_with_staging(
        &docs_manifest(&uploader),
        &server,
        staging.path(),
        &["docs"],
    );
    out.assert_success();
    let records = record_messages(&out, "docs");
    assert_eq!(records.len(), 3, "{}", out.describe());
    let third = staging.path().join("docs/3/c.csv");
    assert_eq!(std::fs::read(&third).unwrap(), b"no key");
    assert_eq!(
        records[2]
            .file_reference
            .as_ref()
            .and_then(|f| f.file_size_bytes),
        Some(6)
    );
}
