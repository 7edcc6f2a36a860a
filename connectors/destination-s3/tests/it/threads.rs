//! Decoding and encoding on several threads (the default) store exactly what one thread
//! stores: the same records, byte for byte, in the same order (the random `_airbyte_raw_id`
//! aside), on a file with every Airbyte type, nulls, values of the wrong type, Unicode and
//! 1 MB values — as gzip JSONL and CSV, and as Parquet with the same row groups.

use std::io::Read;

use cdk::testing::Run;
use serde_json::{Map, Value, json};

use super::{Place, catalog, state};

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "string": {"type": ["null", "string"]},
        "integer": {"type": "integer"},
        "big": {"type": "number", "airbyte_type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
        "ts_tz": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        "ts_ntz": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
        "time_tz": {"type": "string", "format": "time", "airbyte_type": "time_with_timezone"},
        "time_ntz": {"type": "string", "format": "time", "airbyte_type": "time_without_timezone"},
        "object": {"type": "object", "properties": {"a": {"type": "string"}}},
        "array": {"type": "array", "items": {"type": "integer"}},
        "union": {"type": ["string", "integer"]},
        "untyped": {}
    }})
}

/// A record of every type; some values null, missing or of the wrong type.
fn data(i: u64) -> Value {
    let null_or = |v: Value| if i % 7 == 3 { Value::Null } else { v };
    let mut data = json!({
        "id": i,
        "string": null_or(json!(format!("naïve café 中文 😀 \"q\" \\ \t\n {i}"))),
        "integer": null_or(json!(-(i as i64) * 7_919)),
        "big": 9_007_199_254_740_993u64,
        "number": null_or(json!(i as f64 / 3.0)),
        "boolean": null_or(json!(i.is_multiple_of(2))),
        "date": null_or(json!(format!("2024-02-{:02}", 1 + i % 29))),
        "ts_tz": format!("2024-01-01T12:{:02}:56.789+05:30", i % 60),
        "ts_ntz": "2024-01-01T12:34:56",
        "time_tz": "12:34:56+01:00",
        "time_ntz": format!("12:34:{:02}.123456", i % 60),
        "object": {"a": "ü", "nested": {"deep": [1, "two", null, {"x": "\u{2028}"}]}},
        "array": [i, i + 1, null],
        "union": if i.is_multiple_of(2) { json!("text") } else { json!(42) },
        "untyped": if i.is_multiple_of(3) { json!([1, {"k": "v"}]) } else { json!(1.5) },
        "not_in_schema": "kept in JSONL",
    });
    if i % 13 == 5 {
        // Values of the wrong type: Parquet nulls them and says so in `_airbyte_meta`.
        data["integer"] = json!("forty-two");
        data["date"] = json!("someday");
        data["boolean"] = json!(1);
    }
    if i.is_multiple_of(17) {
        data.as_object_mut().unwrap().remove("number");
    }
    data
}

fn record_line(data: Value, i: u64) -> String {
    let mut record =
        json!({"stream": "every", "emitted_at": 1_700_000_000_000u64 + i, "data": data});
    if i.is_multiple_of(11) {
        record["meta"] = json!({"changes": [{"field": "string", "change": "TRUNCATED",
            "reason": "SOURCE_FIELD_SIZE_LIMITATION"}]});
    }
    json!({"type": "RECORD", "record": record}).to_string()
}

/// About 1 MiB of varied (barely compressible) UTF-8 text.
fn megabyte() -> String {
    const CHARS: [char; 8] = ['a', 'é', '中', '😀', 'z', '"', '\\', 'ß'];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut text = String::with_capacity(1 << 20);
    while text.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push(CHARS[(x % 8) as usize]);
    }
    text
}

fn lines() -> Vec<String> {
    let mb = megabyte();
    let mut lines = Vec::new();
    for i in 0..8_000u64 {
        lines.push(record_line(data(i), i));
        if i % 2_000 == 1_000 {
            let mut big = data(i);
            big["string"] = json!(mb);
            lines.push(record_line(big, i));
            let mut big = data(i);
            big["array"] = json!(vec![i; 200_000]);
            big["object"] = json!({"a": mb});
            lines.push(record_line(big, i));
        }
        if i.is_multiple_of(1_500) {
            lines.push(state("every", i as i64));
        }
    }
    lines.push(state("every", 8_000));
    lines
}

/// The objects written with the given thread counts, in part order.
async fn objects(format: Value, threads: &str, lines: &[String]) -> Vec<(String, Vec<u8>)> {
    let place = Place::local();
    let config = place.config("t", format);
    let out = Run::new(super::BIN)
        .env("CDK_DECODE_THREADS", threads)
        .env("DESTINATION_S3_ENCODE_THREADS", threads)
        .stdin_lines(lines)
        .write(&config, &catalog("every", schema(), "append", 1, 0));
    out.assert_success().assert_protocol();
    assert_eq!(out.states().len(), 7, "{}", out.describe());
    let mut objects = Vec::new();
    for key in place.keys("t/every").await {
        let bytes = place.get(&key).await;
        objects.push((key, bytes));
    }
    assert!(!objects.is_empty());
    objects
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    // The single-member decoder: a parallel file must be one gzip member, as a plain one is.
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut text)
        .expect("one valid gzip member");
    text
}

/// JSONL text with each `_airbyte_raw_id` (random) blanked, after checking it is a UUID.
fn without_raw_ids(text: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"{\"_airbyte_raw_id\":\"";
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|b| *b == b'\n') {
        assert!(line.starts_with(PREFIX));
        let id = std::str::from_utf8(&line[PREFIX.len()..PREFIX.len() + 36]).unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(&line[PREFIX.len() + 36..]);
    }
    out
}

#[tokio::test]
async fn gzip_jsonl_text_is_the_same_on_one_thread_and_several() {
    let lines = lines();
    let format = json!({"format_type": "JSONL", "compression": {"compression_type": "GZIP"}});
    let text = |objects: Vec<(String, Vec<u8>)>| {
        let texts: Vec<Vec<u8>> = objects.iter().map(|(_, b)| gunzip(b)).collect();
        without_raw_ids(&texts.concat())
    };
    let one = text(objects(format.clone(), "0", &lines).await);
    let several = text(objects(format, "2", &lines).await);
    assert_eq!(one.iter().filter(|b| **b == b'\n').count(), 8_008);
    assert!(
        one.len() > 6 << 20,
        "several gzip blocks: {} bytes",
        one.len()
    );
    assert!(one == several, "the texts differ");
}

#[tokio::test]
async fn gzip_csv_rows_are_the_same_on_one_thread_and_several() {
    let lines = lines();
    let format = json!({"format_type": "CSV", "flattening": "Root level flattening",
        "compression": {"compression_type": "GZIP"}});
    let rows = |objects: Vec<(String, Vec<u8>)>| -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for (_, bytes) in objects {
            let text = gunzip(&bytes);
            let mut reader = csv::Reader::from_reader(&text[..]);
            assert_eq!(&reader.headers().unwrap()[0], "_airbyte_raw_id");
            for row in reader.records() {
                rows.push(row.unwrap().iter().skip(1).map(str::to_string).collect());
            }
        }
        rows
    };
    let one = rows(objects(format.clone(), "0", &lines).await);
    let several = rows(objects(format, "2", &lines).await);
    assert_eq!(one.len(), 8_008);
    assert!(one == several, "the rows differ");
}

#[tokio::test]
async fn parquet_rows_and_row_groups_are_the_same_on_one_thread_and_several() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let lines = lines();
    let format =
        json!({"format_type": "Parquet", "compression_codec": "SNAPPY", "block_size_mb": 1});
    let read = |objects: Vec<(String, Vec<u8>)>| {
        let mut rows: Vec<Map<String, Value>> = Vec::new();
        let mut groups = Vec::new();
        for (_, bytes) in objects {
            let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
            groups.extend(reader.metadata().row_groups().iter().map(|g| g.num_rows()));
            for mut row in super::parquet_rows(bytes) {
                let id = row.remove("_airbyte_raw_id").unwrap();
                assert!(uuid::Uuid::parse_str(id.as_str().unwrap()).is_ok());
                rows.push(row);
            }
        }
        (rows, groups)
    };
    let (one, one_groups) = read(objects(format.clone(), "0", &lines).await);
    let (several, several_groups) = read(objects(format, "2", &lines).await);
    assert_eq!(one.len(), 8_008);
    assert!(one_groups.len() > 2, "{one_groups:?}");
    assert_eq!(several_groups, one_groups);
    // The checks that rows carry what the test means them to.
    let nulled = one
        .iter()
        .filter(|r| r["_airbyte_meta"]["changes"] != json!([]))
        .count();
    assert!(nulled > 600, "{nulled} rows with changes");
    assert!(
        one.iter()
            .any(|r| r["string"].as_str().is_some_and(|s| s.len() >= 1 << 20))
    );
    for (i, (a, b)) in one.iter().zip(&several).enumerate() {
        assert!(a == b, "row {i} differs");
    }
}
