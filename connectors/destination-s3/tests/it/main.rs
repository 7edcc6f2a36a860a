//! Integration tests of destination-s3: the real binary against the in-process S3 server and a
//! local directory, with every file read back independently (object_store / std::fs, the
//! parquet crate, flate2, csv).

mod acceptance;
mod check;
mod formats;
mod overwrite;
mod spec;
mod threads;

use std::io::Read;
use std::path::{Path, PathBuf};

use cdk::testing::s3::TestS3;
use cdk::testing::{Captured, Run};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_destination-s3");

/// Where a test writes: a fresh bucket of the test S3 server, or a temp directory.
pub enum Place {
    S3 { bucket: String },
    Local { root: tempfile::TempDir },
}

impl Place {
    pub fn s3(name: &str) -> Self {
        Place::S3 {
            bucket: TestS3::shared().fresh_bucket(name),
        }
    }

    pub fn local() -> Self {
        Place::Local {
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A config writing `format` under `bucket_path`.
    pub fn config(&self, bucket_path: &str, format: Value) -> Value {
        match self {
            Place::S3 { bucket } => {
                let s3 = TestS3::shared();
                json!({"s3_bucket_name": bucket, "s3_bucket_path": bucket_path,
                    "s3_bucket_region": s3.region, "s3_endpoint": s3.endpoint,
                    "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
                    "format": format})
            }
            Place::Local { root } => {
                json!({"s3_bucket_name": "lake", "s3_bucket_path": bucket_path,
                    "s3_endpoint": format!("file://{}", root.path().display()),
                    "format": format})
            }
        }
    }

    fn local_bucket(&self) -> Option<PathBuf> {
        match self {
            Place::Local { root } => Some(root.path().join("lake")),
            Place::S3 { .. } => None,
        }
    }

    /// Keys of the objects under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = match self {
            Place::S3 { bucket } => {
                let store = TestS3::shared().store(bucket);
                let prefix = object_store::path::Path::from(prefix);
                store
                    .list(Some(&prefix))
                    .map_ok(|m| m.location.to_string())
                    .try_collect::<Vec<_>>()
                    .await
                    .expect("list")
            }
            Place::Local { .. } => {
                let bucket = self.local_bucket().unwrap_or_default();
                let mut out = Vec::new();
                walk(&bucket.join(prefix), &mut out);
                out.iter()
                    .map(|p| {
                        p.strip_prefix(&bucket)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect()
            }
        };
        keys.sort();
        keys
    }

    pub async fn get(&self, key: &str) -> Vec<u8> {
        match self {
            Place::S3 { bucket } => {
                let store = TestS3::shared().store(bucket);
                let r = store
                    .get(&object_store::path::Path::from(key))
                    .await
                    .expect("get");
                r.bytes().await.expect("body").to_vec()
            }
            Place::Local { .. } => {
                std::fs::read(self.local_bucket().unwrap_or_default().join(key)).expect("read")
            }
        }
    }

    /// Every row stored under `prefix`, whole (with the `_airbyte_*` fields), in key order.
    pub async fn rows(&self, prefix: &str) -> Vec<Map<String, Value>> {
        let mut rows = Vec::new();
        for key in self.keys(prefix).await {
            rows.extend(decode(&key, &self.get(&key).await));
        }
        rows
    }

    /// The record data of every row under `prefix`: `_airbyte_data`, or the row without its
    /// `_airbyte_*` fields.
    pub async fn data(&self, prefix: &str) -> Vec<Value> {
        self.rows(prefix).await.into_iter().map(data_of).collect()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The record data of a decoded row.
pub fn data_of(mut row: Map<String, Value>) -> Value {
    if let Some(data) = row.remove("_airbyte_data") {
        return match data {
            // CSV keeps it as JSON text.
            Value::String(s) => serde_json::from_str(&s).expect("_airbyte_data is JSON"),
            other => other,
        };
    }
    row.retain(|k, _| !k.starts_with("_airbyte_"));
    Value::Object(row)
}

/// Decodes an object by its extension.
pub fn decode(key: &str, bytes: &[u8]) -> Vec<Map<String, Value>> {
    let (name, bytes) = match key.strip_suffix(".gz") {
        Some(name) => {
            let mut text = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut text)
                .expect("valid gzip");
            (name, text)
        }
        None => (key, bytes.to_vec()),
    };
    if name.ends_with(".jsonl") {
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
            .collect()
    } else if name.ends_with(".csv") {
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let header = reader.headers().expect("header").clone();
        reader
            .records()
            .map(|r| {
                let r = r.expect("csv row");
                header
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                    .collect()
            })
            .collect()
    } else if name.ends_with(".parquet") {
        parquet_rows(bytes)
    } else {
        panic!("unexpected object {key}")
    }
}

/// Parquet rows as JSON: integers, floats, booleans and strings as such, dates as
/// `YYYY-MM-DD`, timestamps and times as integers of their unit, structs and lists nested.
pub fn parquet_rows(bytes: Vec<u8>) -> Vec<Map<String, Value>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .expect("a parquet file")
    .build()
    .expect("a reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("a record batch");
        for row in 0..batch.num_rows() {
            let mut map = Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                map.insert(field.name().clone(), cell(column.as_ref(), row));
            }
            rows.push(map);
        }
    }
    rows
}

fn cell(array: &dyn arrow_array::Array, row: usize) -> Value {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::{DataType, TimeUnit};
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(days as i64);
            json!(date.to_string())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            json!(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            json!(array.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            json!(array.as_primitive::<Time64MicrosecondType>().value(row))
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), row)))
                    .collect(),
            )
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            Value::Array(
                (0..values.len())
                    .map(|i| cell(values.as_ref(), i))
                    .collect(),
            )
        }
        other => panic!("unexpected parquet column type {other:?}"),
    }
}

/// A configured catalog of one stream.
pub fn catalog(
    stream: &str,
    schema: Value,
    mode: &str,
    generation: i64,
    min_generation: i64,
) -> Value {
    json!({"streams": [{
        "stream": {"name": stream, "json_schema": schema, "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": "full_refresh", "destination_sync_mode": mode,
        "generation_id": generation, "minimum_generation_id": min_generation, "sync_id": 100 + generation}]})
}

pub fn record(stream: &str, data: Value) -> String {
    json!({"type": "RECORD", "record": {"stream": stream, "emitted_at": 1_700_000_000_000i64, "data": data}})
        .to_string()
}

pub fn state(stream: &str, n: i64) -> String {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": stream}, "stream_state": {"n": n}}}})
    .to_string()
}

pub fn write(config: &Value, catalog: &Value, lines: &[String]) -> Captured {
    Run::new(BIN).stdin_lines(lines).write(config, catalog)
}
