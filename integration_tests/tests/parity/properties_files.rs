//! Parity cases of `QueryProperties` (`query_properties.yaml`) and of a stream's
//! `file_uploader` (`files.yaml`), on the endpoints of `properties_files_api.rs` (a server of
//! their own, its address given to the manifests as `base_url`). The first goes through
//! `reads::parity_with`; a selection from the catalog and the files need a catalog with
//! properties and a staging directory per engine, so they run both engines here and compare the
//! records, and for files their `file_reference`s and the files written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cdk::testing::http::MockServer;
use serde_json::{Value, json};

use crate::api::Variant;
use crate::engines::{self, run, write_json};
use crate::properties_files_api::{self, FILES_KEY, file_body};
use crate::reads::{count, parity_with};

async fn server() -> MockServer {
    let server = MockServer::start().await;
    properties_files_api::mount(&server).await;
    server
}

/// A record's data as airbyte-cdk writes it (no top-level nulls), numbers as floats.
fn normal(data: &Value) -> Value {
    fn numbers(v: &Value) -> Value {
        match v {
            Value::Number(n) => json!(n.as_f64()),
            Value::Array(items) => Value::Array(items.iter().map(numbers).collect()),
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), numbers(v))).collect())
            }
            other => other.clone(),
        }
    }
    match data {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), numbers(v)))
                .collect(),
        ),
        other => numbers(other),
    }
}

/// The RECORD messages of a read.
fn records(messages: &[Value]) -> Vec<&Value> {
    messages
        .iter()
        .filter(|m| m["type"] == "RECORD")
        .map(|m| &m["record"])
        .collect()
}

/// The records' data per stream, normalized and sorted.
fn data_by_stream(messages: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records(messages) {
        out.entry(r["stream"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(normal(&r["data"]).to_string());
    }
    out.values_mut().for_each(|v| v.sort());
    out
}

/// `read` of `manifest` (in `parity/manifests`) by both engines at once, each with its own
/// staging directory under `dir` (`ours/`, `theirs/`, created); their messages (ours, theirs).
async fn read_both(
    manifest: &str,
    config: &Value,
    catalog: &Value,
    dir: &Path,
) -> (Vec<Value>, Vec<Value>) {
    let venv = engines::venv();
    let manifest = engines::fixtures().join("manifests").join(manifest);
    let config = write_json(dir, "config.json", config);
    let catalog = write_json(dir, "catalog.json", catalog);
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let read = |program: PathBuf, who: &str| {
            let staging = dir.join(who);
            std::fs::create_dir_all(&staging).expect("staging directory");
            let mut cmd = Command::new(&program);
            cmd.arg("read").arg("--config").arg(&config);
            cmd.arg("--catalog").arg(&catalog);
            cmd.arg("--manifest-path").arg(&manifest);
            cmd.env("AIRBYTE_STAGING_DIRECTORY", &staging);
            run(cmd).unwrap_or_else(|e| panic!("{who} failed to read {}: {e}", manifest.display()))
        };
        std::thread::scope(|s| {
            let theirs = s.spawn(|| read(venv.join("bin/source-declarative-manifest"), "theirs"));
            let ours = read(engines::ours(), "ours");
            (ours, theirs.join().expect("their read"))
        })
    })
    .await
    .expect("the reads")
}

fn full_refresh(streams: &[(&str, Value)]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, schema)| {
            json!({"stream": {"name": name, "json_schema": schema, "supported_sync_modes": ["full_refresh"]},
                   "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"})
        })
        .collect();
    json!({ "streams": streams })
}

/// QueryProperties: PropertiesFromEndpoint, PropertyChunking by count and by characters with
/// GroupByKeyMergeStrategy, a static list. (`deals_selected` is left out: over the harness's
/// catalog, whose schemas have no properties, only `id` is asked for, the deal without an id
/// comes back as `{}`, and airbyte-cdk's read of the stream then stops without a record, a
/// status or a state, where ours reads the five records.)
#[tokio::test(flavor = "multi_thread")]
async fn query_properties_endpoint_chunking_merging() {
    let api = server().await;
    let records = parity_with(
        "query_properties.yaml",
        Variant::Standard,
        &[
            ("deals", None),
            ("deals_by_characters", None),
            ("deals_static", None),
        ],
        json!({"base_url": api.uri()}),
        None,
    )
    .await;
    // Four deals merged from their chunks, and the deal without an id once per chunk of the
    // first page: 3 chunks of two properties; 4 of at most nine characters.
    assert_eq!(count(&records, "deals"), 4 + 3, "{records:#?}");
    assert_eq!(
        count(&records, "deals_by_characters"),
        4 + 4,
        "{records:#?}"
    );
    assert_eq!(count(&records, "deals_static"), 5, "{records:#?}");
    let merged =
        r#"{"a":10.0,"b":11.0,"c":12.0,"d":13.0,"e":14.0,"id":"1","nested":{"x":1.0,"y":-1.0}}"#;
    assert!(records["deals"].iter().any(|r| r == merged), "{records:#?}");
}

/// JsonSchemaPropertySelector with a catalog that has properties: `KeysToLower` turns `A` and
/// `C` into properties of the list; only those are asked for, one a request.
#[tokio::test(flavor = "multi_thread")]
async fn query_properties_selected_from_the_catalog() {
    let api = server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let schema =
        json!({"type": "object", "properties": {"ID": {}, "A": {}, "C": {}, "Nested": {}}});
    let catalog = full_refresh(&[("deals_selected", schema)]);
    let config = json!({"base_url": api.uri()});
    let (ours, theirs) = read_both("query_properties.yaml", &config, &catalog, dir.path()).await;
    let (ours, theirs) = (data_by_stream(&ours), data_by_stream(&theirs));
    assert_eq!(ours, theirs, "ours / theirs");
    let selected = &ours["deals_selected"];
    // Two deals per page merged from [id, a] and [id, c]; the keyless one twice.
    assert_eq!(selected.len(), 4 + 2, "{selected:#?}");
    assert!(
        selected
            .iter()
            .any(|r| r == r#"{"a":10.0,"c":12.0,"id":"1","nested":{"x":1.0}}"#),
        "{selected:#?}"
    );
    assert!(
        !selected.iter().any(|r| r.contains(r#""b""#)),
        "{selected:#?}"
    );
}

/// What a read says of each record's file: (stream, id) → the relative path (a UUID file name
/// shown as `<uuid>`), the size, and the content of the file at `staging_file_url`, which must
/// be the relative path under `staging`.
fn files(messages: &[Value], staging: &Path) -> BTreeMap<(String, i64), (String, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for r in records(messages) {
        let stream = r["stream"].as_str().unwrap_or_default().to_string();
        let id = r["data"]["id"].as_i64().expect("an id");
        let file = &r["file_reference"];
        let relative = file["source_file_relative_path"]
            .as_str()
            .unwrap_or_else(|| panic!("no file_reference: {r}"));
        let url = file["staging_file_url"].as_str().expect("staging_file_url");
        assert_eq!(
            Path::new(url),
            staging.join(relative),
            "the staging URL is the relative path in the staging directory"
        );
        let content = std::fs::read(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let size = file["file_size_bytes"].as_i64().expect("file_size_bytes");
        let shown = match relative.rsplit_once('/') {
            Some((dir, name)) if uuid_like(name) => format!("{dir}/<uuid>"),
            _ => relative.to_string(),
        };
        out.insert((stream, id), (shown, size, content));
    }
    out
}

fn uuid_like(name: &str) -> bool {
    name.len() == 36
        && name.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && name.matches('-').count() == 4
}

/// FileUploader: the records, and for each its file (relative path, size, content) the same
/// from both engines, each writing into its own staging directory.
#[tokio::test(flavor = "multi_thread")]
async fn file_uploader_downloads_the_same_files() {
    let api = server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let open = json!({"type": "object"});
    let catalog = full_refresh(&[("documents", open.clone()), ("attachments", open)]);
    let config = json!({"base_url": api.uri(), "api_key": FILES_KEY});
    let (ours, theirs) = read_both("files.yaml", &config, &catalog, dir.path()).await;
    assert_eq!(data_by_stream(&ours), data_by_stream(&theirs), "records");
    let ours = files(&ours, &dir.path().join("ours"));
    let theirs = files(&theirs, &dir.path().join("theirs"));
    assert_eq!(ours, theirs, "files (ours / theirs)");
    let expected: Vec<((String, i64), String)> = vec![
        (("attachments".into(), 4), "attachments/<uuid>".into()),
        (("attachments".into(), 5), "attachments/<uuid>".into()),
        (("documents".into(), 1), "documents/1/doc-1.txt".into()),
        (("documents".into(), 2), "documents/2/doc-2.bin".into()),
        (("documents".into(), 3), "documents/3/doc-3.txt".into()),
    ];
    assert_eq!(ours.len(), expected.len(), "{ours:#?}");
    for ((key, path), (got_key, (got_path, size, content))) in expected.iter().zip(&ours) {
        assert_eq!((key, path), (got_key, got_path));
        assert_eq!(content, &file_body(key.1), "{path}");
        assert_eq!(*size, content.len() as i64, "{path}");
    }
}

/// Discover marks both streams of `files.yaml` `is_file_based`, in both engines.
#[tokio::test(flavor = "multi_thread")]
async fn file_based_streams_discover_as_airbyte() {
    let venv = engines::venv();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_json(
        dir.path(),
        "config.json",
        &json!({"base_url": "http://127.0.0.1:9", "api_key": FILES_KEY}),
    );
    let manifest = engines::fixtures().join("manifests/files.yaml");
    let file_based = tokio::task::spawn_blocking(move || {
        [
            engines::ours(),
            venv.join("bin/source-declarative-manifest"),
        ]
        .map(|program| {
            let mut cmd = Command::new(&program);
            cmd.arg("discover").arg("--config").arg(&config);
            cmd.arg("--manifest-path").arg(&manifest);
            let msgs = run(cmd).unwrap_or_else(|e| panic!("{} discover: {e}", program.display()));
            let catalog = msgs
                .iter()
                .find(|m| m["type"] == "CATALOG")
                .expect("a catalog");
            catalog["catalog"]["streams"]
                .as_array()
                .expect("streams")
                .iter()
                .map(|s| (s["name"].clone(), s["is_file_based"].clone()))
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("the discovers");
    let [ours, theirs] = file_based;
    assert_eq!(ours, theirs);
    assert_eq!(
        ours,
        vec![
            (json!("documents"), json!(true)),
            (json!("attachments"), json!(true))
        ]
    );
}
