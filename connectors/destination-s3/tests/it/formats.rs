//! Every format read back and compared with what was sent: JSONL and CSV in both flattening
//! modes with and without gzip, Parquet with every codec and typed columns, file rolling and
//! multipart uploads, the object layout and its metadata.

use std::io::Read;

use cdk::testing::Run;
use cdk::testing::s3::TestS3;
use object_store::{Attribute, GetOptions, ObjectStore};
use serde_json::{Map, Value, json};

use super::{Place, catalog, record, state, write};

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "score": {"type": ["null", "number"]},
        "active": {"type": "boolean"},
        "contact": {"type": "object", "properties": {"email": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "nothing": {"type": ["null", "string"]}
    }})
}

fn nested_records() -> Vec<Value> {
    vec![
        json!({"id": 1, "name": "Ann \"quoted\", with a comma\nand a newline", "score": 1.5, "active": true,
               "contact": {"email": "a@example.com", "phones": ["1", "2"], "deep": {"x": [1, {"y": null}]}},
               "tags": ["a", "b"], "nothing": null}),
        json!({"id": 2, "name": "Bø ünïcode ✓", "score": null, "active": false, "contact": {}, "tags": []}),
        json!({"id": 3}),
    ]
}

fn sync(config: &Value, stream: &str, records: &[Value]) {
    let mut lines: Vec<String> = records.iter().map(|r| record(stream, r.clone())).collect();
    lines.push(state(stream, records.len() as i64));
    let out = write(config, &catalog(stream, schema(), "append", 1, 0), &lines);
    out.assert_success().assert_protocol();
    assert_eq!(out.states().len(), 1, "{}", out.describe());
}

/// A value as root-level-flattened CSV stores it.
fn csv_text(v: Option<&Value>) -> Value {
    Value::String(match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    })
}

fn check_airbyte_fields(row: &Map<String, Value>) {
    let id = row["_airbyte_raw_id"].as_str().expect("raw id");
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert_eq!(text(&row["_airbyte_extracted_at"]), "1700000000000");
    assert_eq!(text(&row["_airbyte_generation_id"]), "1");
    let meta = match &row["_airbyte_meta"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(meta, json!({"sync_id": 101, "changes": []}));
}

#[tokio::test]
async fn jsonl_and_csv_in_every_mode_read_back_equal() {
    let sent = nested_records();
    for format_type in ["JSONL", "CSV"] {
        for flattening in ["No flattening", "Root level flattening"] {
            for compression in ["No Compression", "GZIP"] {
                let place = Place::s3("text-formats");
                let format = json!({"format_type": format_type, "flattening": flattening,
                    "compression": {"compression_type": compression}});
                let config = place.config("out", format);
                sync(&config, "people", &sent);
                let keys = place.keys("out/people").await;
                let ext = match (format_type, compression) {
                    ("JSONL", "GZIP") => ".jsonl.gz",
                    ("JSONL", _) => ".jsonl",
                    (_, "GZIP") => ".csv.gz",
                    _ => ".csv",
                };
                assert_eq!(keys.len(), 1, "{keys:?}");
                assert!(keys[0].ends_with(&format!("_0{ext}")), "{keys:?}");
                let rows = place.rows("out/people").await;
                assert_eq!(rows.len(), sent.len());
                rows.iter().for_each(check_airbyte_fields);
                let what = format!("{format_type} / {flattening} / {compression}");
                match (format_type, flattening) {
                    ("CSV", "Root level flattening") => {
                        // Schema order (serde_json keeps properties sorted by name).
                        let columns = [
                            "active", "contact", "id", "name", "nothing", "score", "tags",
                        ];
                        let key = &place.keys("out/people").await[0];
                        let mut text = String::new();
                        let bytes = place.get(key).await;
                        if key.ends_with(".gz") {
                            flate2::read::GzDecoder::new(&bytes[..])
                                .read_to_string(&mut text)
                                .unwrap();
                        } else {
                            text = String::from_utf8(bytes).unwrap();
                        }
                        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
                        assert_eq!(
                            header.iter().collect::<Vec<_>>(),
                            [
                                "_airbyte_raw_id",
                                "_airbyte_extracted_at",
                                "_airbyte_generation_id",
                                "_airbyte_meta"
                            ]
                            .iter()
                            .chain(&columns)
                            .collect::<Vec<_>>(),
                            "{what}"
                        );
                        for (row, data) in rows.iter().zip(&sent) {
                            for c in columns {
                                assert_eq!(row[c], csv_text(data.get(c)), "{what}: column {c}");
                            }
                        }
                    }
                    _ => {
                        let got: Vec<Value> = rows.into_iter().map(super::data_of).collect();
                        assert_eq!(got, sent, "{what}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn jsonl_keeps_the_record_bytes_as_sent() {
    let place = Place::local();
    let config = place.config(
        "raw",
        json!({"format_type": "JSONL", "compression": {"compression_type": "No Compression"}}),
    );
    // Key order, spacing and number spelling survive untouched.
    let data = r#"{"z": 1.50, "a":  [1e3, {"k": "\u00e9"}]}"#;
    let line =
        format!(r#"{{"type":"RECORD","record":{{"stream":"s","emitted_at":5,"data":{data}}}}}"#);
    let out = write(&config, &catalog("s", json!({}), "append", 1, 0), &[line]);
    out.assert_success();
    let keys = place.keys("raw/s").await;
    let text = String::from_utf8(place.get(&keys[0]).await).unwrap();
    assert!(
        text.ends_with(&format!(",\"_airbyte_data\":{data}}}\n")),
        "{text}"
    );
}

fn typed_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "big": {"type": "number", "airbyte_type": "integer"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "name": {"type": "string"},
        "day": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
        "local": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
        "t": {"type": "string", "format": "time", "airbyte_type": "time_without_timezone"},
        "contact": {"type": "object", "properties": {"email": {"type": "string"}}},
        "tags": {"type": "array"}
    }})
}

fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_micros()
}

#[tokio::test]
async fn parquet_with_every_codec_reads_back_typed() {
    let good = json!({"id": 1, "big": 9007199254740993i64, "score": 1.5, "active": true, "name": "Ann",
        "day": "2024-02-29", "at": "2024-02-29T12:34:56.789+02:00", "local": "2024-02-29T12:34:56",
        "t": "12:00:01.5", "contact": {"email": "a@example.com", "n": [1, 2]}, "tags": ["a", "b"],
        "not_in_schema": 7});
    let bad = json!({"id": "x", "big": 1.5, "score": "high", "active": "yes", "name": 42,
        "day": "someday", "at": 12, "local": "noon", "t": true, "contact": "text", "tags": {"a": 1}});
    let sparse = json!({"name": null});
    let source_change =
        json!({"field": "name", "change": "TRUNCATED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"});
    let lines = vec![
        record("typed", good),
        record("typed", bad),
        json!({"type": "RECORD", "record": {"stream": "typed", "emitted_at": 1_700_000_000_002i64,
            "data": sparse, "meta": {"changes": [source_change]}}})
        .to_string(),
        state("typed", 3),
    ];
    let expected_good = json!({"id": 1, "big": 9007199254740993i64, "score": 1.5, "active": true, "name": "Ann",
        "day": "2024-02-29", "at": micros("2024-02-29T12:34:56.789+02:00"),
        "local": micros("2024-02-29T12:34:56Z"), "t": 43_201_500_000i64,
        "contact": r#"{"email":"a@example.com","n":[1,2]}"#, "tags": r#"["a","b"]"#});
    // Strings keep any JSON value as text; nested columns keep any JSON value.
    let expected_bad = json!({"id": null, "big": null, "score": null, "active": null, "name": "42",
        "day": null, "at": null, "local": null, "t": null, "contact": "\"text\"", "tags": r#"{"a":1}"#});
    let nulled = ["id", "big", "score", "active", "day", "at", "local", "t"];
    for codec in ["UNCOMPRESSED", "snappy", "Gzip", "ZSTD", "lz4", "BROTLI"] {
        let place = Place::s3("parquet-codecs");
        let config = place.config(
            "p",
            json!({"format_type": "Parquet", "compression_codec": codec}),
        );
        let out = write(
            &config,
            &catalog("typed", typed_schema(), "append", 1, 0),
            &lines,
        );
        out.assert_success().assert_protocol();
        let keys = place.keys("p/typed").await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].ends_with("_0.parquet"), "{keys:?}");
        let bytes = place.get(&keys[0]).await;
        let reader =
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes.clone()))
                .unwrap();
        use parquet::file::reader::FileReader;
        let compression = reader.metadata().row_group(0).column(4).compression();
        let want = match codec.to_ascii_uppercase().as_str() {
            "LZ4" => "LZ4_RAW".to_string(),
            other => other.to_string(),
        };
        assert!(
            format!("{compression:?}").starts_with(&want),
            "{codec}: {compression:?}"
        );
        let rows = super::parquet_rows(bytes);
        assert_eq!(rows.len(), 3);
        let data = |row: &Map<String, Value>| {
            let mut row = row.clone();
            row.retain(|k, _| !k.starts_with("_airbyte_"));
            Value::Object(row)
        };
        assert_eq!(data(&rows[0]), expected_good, "{codec}");
        assert_eq!(data(&rows[1]), expected_bad, "{codec}");
        let all_null: Map<String, Value> = typed_schema()["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), Value::Null))
            .collect();
        assert_eq!(data(&rows[2]), Value::Object(all_null), "{codec}");

        assert_eq!(
            rows[0]["_airbyte_meta"],
            json!({"sync_id": 101, "changes": []})
        );
        let changes = rows[1]["_airbyte_meta"]["changes"].as_array().unwrap();
        let mut fields: Vec<&str> = changes
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        fields.sort();
        let mut want_nulled = nulled.to_vec();
        want_nulled.sort();
        assert_eq!(fields, want_nulled, "{codec}");
        assert!(
            changes.iter().all(
                |c| c["change"] == "NULLED" && c["reason"] == "DESTINATION_SERIALIZATION_ERROR"
            )
        );
        assert_eq!(rows[2]["_airbyte_meta"]["changes"], json!([source_change]));
        assert_eq!(
            rows[2]["_airbyte_extracted_at"],
            json!(1_700_000_000_002i64)
        );
        assert_eq!(rows[0]["_airbyte_generation_id"], json!(1));
        assert!(uuid::Uuid::parse_str(rows[0]["_airbyte_raw_id"].as_str().unwrap()).is_ok());
    }
}

#[tokio::test]
async fn files_roll_at_the_size_limit_through_multipart_uploads() {
    let place = Place::s3("rolling");
    let config = place.config(
        "big",
        json!({"format_type": "JSONL", "compression": {"compression_type": "No Compression"}}),
    );
    // A loader batch (8 MB of data, ~9.4 MB of JSONL) fills a file past the 9 MB limit, and
    // each file goes up in two parts of the 8 MiB part size.
    let limit: usize = 9 << 20;
    let filler = "x".repeat(1000);
    let n = 30_000;
    let mut lines: Vec<String> = (0..n)
        .map(|i| record("wide", json!({"id": i, "filler": filler})))
        .collect();
    lines.push(state("wide", n));
    let out = Run::new(super::BIN)
        .env("DESTINATION_S3_MAX_FILE_BYTES", &limit.to_string())
        .stdin_lines(&lines)
        .write(&config, &catalog("wide", json!({}), "append", 4, 0));
    out.assert_success().assert_protocol();
    let keys = place.keys("big/wide").await;
    assert!(keys.len() >= 3, "{keys:?}");
    for (i, key) in keys.iter().enumerate() {
        assert!(key.ends_with(&format!("_{i}.jsonl")), "{keys:?}");
    }
    let mut ids = Vec::new();
    for key in &keys {
        let size = place.get(key).await.len();
        if key != keys.last().unwrap() {
            assert!(
                size >= limit && size < limit + (4 << 20),
                "{key}: {size} bytes"
            );
        }
        for row in super::decode(key, &place.get(key).await) {
            ids.push(row["_airbyte_data"]["id"].as_i64().unwrap());
        }
    }
    assert_eq!(ids, (0..n).collect::<Vec<_>>());

    // Every object carries the generation as S3 user metadata.
    let Place::S3 { bucket } = &place else {
        unreachable!()
    };
    let store = TestS3::shared().store(bucket);
    for key in &keys {
        let head = store
            .get_opts(
                &object_store::path::Path::from(key.as_str()),
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            )
            .await
            .unwrap();
        let generation = head
            .attributes
            .get(&Attribute::Metadata("ab-generation-id".into()))
            .map(|v| v.as_ref().to_string());
        assert_eq!(generation.as_deref(), Some("4"), "{key}");
    }
}

#[tokio::test]
async fn object_layout_follows_the_path_format() {
    let place = Place::local();
    let mut config = place.config(
        "airbyte-data/${NAMESPACE}/${STREAM_NAME}",
        json!({"format_type": "JSONL"}),
    );
    let line = json!({"type": "RECORD", "record": {"stream": "orders", "namespace": "shop",
        "emitted_at": 1, "data": {"id": 1}}})
    .to_string();
    let mut cat = catalog("orders", json!({}), "append", 1, 0);
    cat["streams"][0]["stream"]["namespace"] = json!("shop");
    let before = chrono::Utc::now();
    write(&config, &cat, std::slice::from_ref(&line)).assert_success();
    let keys = place.keys("airbyte-data").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0]
        .strip_prefix("airbyte-data/shop/orders/shop/orders/")
        .unwrap_or_else(|| panic!("{keys:?}"));
    let parts: Vec<&str> = name.split('_').collect();
    assert_eq!(parts.len(), 5, "{name}");
    assert_eq!(
        format!("{}-{}-{}", parts[0], parts[1], parts[2]),
        before.format("%Y-%m-%d").to_string()
    );
    let epoch: i64 = parts[3].parse().unwrap();
    assert!((epoch - before.timestamp_millis()).abs() < 60_000, "{name}");
    assert_eq!(parts[4], "0.jsonl.gz");

    config["s3_path_format"] = json!("${STREAM_NAME}/${YEAR}/");
    config["file_name_pattern"] = json!("{sync_id}-{part_number}{format_extension}");
    config["s3_bucket_path"] = json!("custom");
    write(&config, &cat, &[line]).assert_success();
    let keys = place.keys("custom").await;
    assert_eq!(
        keys,
        [format!(
            "custom/orders/{}/101-0.jsonl.gz",
            before.format("%Y")
        )]
    );
}

/// The schemas whose Parquet type used to differ from destination-postgres' column type: an
/// `airbyte_type` without `format`, and a bare `format: time`.
#[tokio::test]
async fn parquet_column_types_follow_the_airbyte_type() {
    use arrow_schema::{DataType, TimeUnit};
    let schema = json!({"type": "object", "properties": {
        "tz": {"type": "string", "airbyte_type": "timestamp_with_timezone"},
        "t": {"type": "string", "airbyte_type": "time_without_timezone"},
        "bare_time": {"type": "string", "format": "time"},
        "maybe_day": {"oneOf": [{"type": "null"}, {"type": "string", "format": "date"}]}
    }});
    let lines = vec![
        record(
            "types",
            json!({"tz": "2024-02-29T12:00:00+02:00", "t": "12:00:01", "bare_time": "12:00:01+01:00",
                   "maybe_day": "2024-02-29"}),
        ),
        state("types", 1),
    ];
    let place = Place::s3("parquet-types");
    let config = place.config("p", json!({"format_type": "Parquet"}));
    write(&config, &catalog("types", schema, "append", 1, 0), &lines)
        .assert_success()
        .assert_protocol();
    let keys = place.keys("p/types").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let bytes = bytes::Bytes::from(place.get(&keys[0]).await);
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap();
    let arrow = builder.schema();
    let ty = |name: &str| arrow.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(
        ty("tz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ty("t"), DataType::Time64(TimeUnit::Microsecond));
    // A time with an offset has no Parquet type: its text is kept.
    assert_eq!(ty("bare_time"), DataType::Utf8);
    assert_eq!(ty("maybe_day"), DataType::Date32);
    let rows = super::parquet_rows(bytes.to_vec());
    assert_eq!(rows[0]["tz"], json!(micros("2024-02-29T12:00:00+02:00")));
    assert_eq!(rows[0]["t"], json!(43_201_000_000i64));
    assert_eq!(rows[0]["bare_time"], json!("12:00:01+01:00"));
    assert_eq!(rows[0]["_airbyte_meta"]["changes"], json!([]));
}

/// `DESTINATION_S3_GZIP_LEVEL` sets the level (the rows read back the same; level 1 makes a
/// larger file than the default) and a level out of 0–9 is refused by name.
#[tokio::test]
async fn the_gzip_level_knob_is_honoured_and_checked() {
    let lines: Vec<String> = (0..5_000)
        .map(|i| {
            record(
                "users",
                json!({"id": i, "name": format!("user {i}"), "city": "Lisbon"}),
            )
        })
        .chain([state("users", 5_000)])
        .collect();
    let mut sizes = Vec::new();
    for level in [None, Some("1")] {
        let place = Place::local();
        let config = place.config(
            "gz",
            json!({"format_type": "JSONL", "compression": {"compression_type": "GZIP"}}),
        );
        let mut run = Run::new(super::BIN);
        if let Some(level) = level {
            run = run.env("DESTINATION_S3_GZIP_LEVEL", level);
        }
        let out = run
            .stdin_lines(&lines)
            .write(&config, &catalog("users", json!({}), "append", 1, 0));
        out.assert_success().assert_protocol();
        let keys = place.keys("gz/users").await;
        let bytes = place.get(&keys[0]).await;
        let rows = super::decode(&keys[0], &bytes);
        assert_eq!(rows.len(), 5_000);
        assert_eq!(rows[4_999]["_airbyte_data"]["name"], "user 4999");
        sizes.push(bytes.len());
    }
    assert!(
        sizes[1] > sizes[0],
        "level 1 {} vs default {}",
        sizes[1],
        sizes[0]
    );

    let place = Place::local();
    let config = place.config(
        "gz",
        json!({"format_type": "JSONL", "compression": {"compression_type": "GZIP"}}),
    );
    let out = Run::new(super::BIN)
        .env("DESTINATION_S3_GZIP_LEVEL", "11")
        .stdin_lines(&lines)
        .write(&config, &catalog("users", json!({}), "append", 1, 0));
    out.assert_failure();
    assert!(
        out.describe()
            .contains("DESTINATION_S3_GZIP_LEVEL '11' is not a gzip level"),
        "{}",
        out.describe()
    );
}
