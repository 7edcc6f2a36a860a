//! Integration tests of source-csv: the binary against files on disk, the test HTTP server
//! and the test S3 server.

mod acceptance;
mod errors;
mod formats;
mod https;
mod incremental;
mod local;
mod options;
mod parity;
mod s3;
mod spec;
mod threads;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cdk::protocol::{ConfiguredAirbyteStream, ConnectionStatus, DestinationSyncMode, SyncMode};
use cdk::testing::{Captured, Run};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_source-csv");

/// Writes `bytes` to `dir/name` (creating directories) with a last-modified time of
/// `2024-01-01 + minutes`.
pub fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>, minutes: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    touch(&path, minutes);
    path
}

/// Sets a file's last-modified time to `2024-01-01 + minutes`.
pub fn touch(path: &Path, minutes: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200 + minutes * 60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

pub fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

pub fn zstd(text: &str) -> Vec<u8> {
    zstd::encode_all(text.as_bytes(), 3).unwrap()
}

/// A local config for `url` with `csv_options` merged in.
pub fn config(url: impl AsRef<Path>, csv_options: Value) -> Value {
    json!({
        "dataset_name": "items",
        "url": url.as_ref().display().to_string(),
        "provider": {"storage": "local"},
        "csv_options": csv_options,
    })
}

/// The discovered stream's JSON schema.
pub fn discover(config: &Value) -> Value {
    let run = Run::new(BIN).discover(config);
    run.assert_success().assert_protocol();
    let catalog = run.catalog();
    run.ensure(catalog.streams.len() == 1, "one stream");
    serde_json::to_value(&catalog.streams[0]).unwrap()
}

/// A configured catalog of the discovered stream.
pub fn catalog(config: &Value, mode: SyncMode) -> Value {
    let stream = serde_json::from_value(discover(config)).unwrap();
    let dest = match mode {
        SyncMode::FullRefresh => DestinationSyncMode::Overwrite,
        SyncMode::Incremental => DestinationSyncMode::Append,
    };
    json!({"streams": [ConfiguredAirbyteStream::new(stream, mode, dest)]})
}

/// A successful full-refresh read of `config`.
pub fn read(config: &Value) -> Captured {
    let run = Run::new(BIN).read(config, &catalog(config, SyncMode::FullRefresh), None);
    run.assert_success().assert_protocol();
    run
}

/// The records' data without the `_ab_source_file_*` columns.
pub fn rows(run: &Captured) -> Vec<Value> {
    run.records_of("items")
        .into_iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.retain(|k, _| !k.starts_with("_ab_source_file_"));
            r
        })
        .collect()
}

/// Runs `check` and returns the FAILED message (panics on SUCCEEDED).
pub fn check_fails(config: &Value) -> String {
    let run = Run::new(BIN).check(config);
    run.assert_success().assert_protocol();
    let status = run.connection_status();
    run.ensure(
        status.status == ConnectionStatus::Failed,
        "check should fail",
    );
    status.message.clone().unwrap_or_default()
}

pub fn check_succeeds(config: &Value) {
    let run = Run::new(BIN).check(config);
    run.assert_success().assert_protocol();
    run.ensure(
        run.connection_status().status == ConnectionStatus::Succeeded,
        "check should succeed",
    );
}

/// A read that must fail: its TRACE error messages, joined.
pub fn read_fails(config: &Value, catalog: &Value) -> String {
    let run = Run::new(BIN).read(config, catalog, None);
    run.assert_failure().assert_protocol();
    let errors: Vec<String> = run
        .trace_errors()
        .iter()
        .map(|e| e.message.clone())
        .collect();
    run.ensure(!errors.is_empty(), "a failed read names its error");
    errors.join("\n")
}
