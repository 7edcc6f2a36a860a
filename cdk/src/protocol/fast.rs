//! The fast path for reading message lines: RECORD data stays raw JSON bytes.
//!
//! Most lines a destination reads are records, and most destinations only need the record's
//! data as bytes (or parse it their own way). Serde's tagged enums buffer their content, which
//! rules out `RawValue`, so we read the envelope's `type` with a plain struct first and decode the
//! full message only for the rare non-record lines.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::scan::Prefix;
use super::{AirbyteMessage, AirbyteRecordMessageMeta};

/// A RECORD whose `data` was validated but not turned into a tree.
#[derive(Debug, Deserialize)]
pub struct RawRecord<'a> {
    /// The stream's name.
    #[serde(borrow)]
    pub stream: Cow<'a, str>,
    /// The stream's namespace, if any.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    /// The record's data, as it was on the line.
    #[serde(borrow)]
    pub data: RawJson<'a>,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "millis")]
    pub emitted_at: i64,
    /// Changes the source made to the record.
    #[serde(default)]
    pub meta: Option<AirbyteRecordMessageMeta>,
}

/// A JSON value's text exactly as it was on the line, checked as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// `text` must be one whole JSON value (checked by the caller).
    pub(super) fn new(text: &'a str) -> Self {
        Self(text)
    }

    /// The value's text.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|raw| RawJson(raw.get()))
    }
}

/// One decoded input line.
#[derive(Debug)]
pub enum InputLine<'a> {
    /// A RECORD, its data left raw.
    Record(RawRecord<'a>),
    /// Any other message, fully decoded.
    Message(AirbyteMessage),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    record: Option<RawRecord<'a>>,
}

/// Why a line could not be decoded as a protocol message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The line is not JSON, or not a message.
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    /// The line is not UTF-8.
    #[error("not UTF-8 text: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// A RECORD without its `record`.
    #[error("RECORD message without a `record` field")]
    MissingRecord,
}

/// Decodes one line (without its newline). Non-record messages go through the full decoder.
pub fn decode_line(line: &[u8]) -> Result<InputLine<'_>, DecodeError> {
    // One UTF-8 check of the whole line (fast on ASCII) spares serde one per string and one
    // for the raw `data`.
    let line = std::str::from_utf8(line)?;
    if let Some(record) = super::scan::record(line) {
        return Ok(InputLine::Record(record));
    }
    decode_with_serde(line)
}

/// [`decode_line`], also appending to `fields` where the top-level fields of a record's
/// `data` lie (relative to its start: key start and end without quotes, value start and end);
/// true when it appended every one of them (otherwise `fields` is left as it was). `prefix`
/// carries the start of the last record line to the next call (see [`Prefix`]).
pub(crate) fn decode_line_with_fields<'a>(
    line: &'a [u8],
    fields: &mut Vec<[u32; 4]>,
    prefix: &mut Prefix,
) -> Result<(InputLine<'a>, bool), DecodeError> {
    let line = std::str::from_utf8(line)?;
    if let Some((record, complete)) = super::scan::record_with_fields(line, fields, prefix) {
        return Ok((InputLine::Record(record), complete));
    }
    decode_with_serde(line).map(|decoded| (decoded, false))
}

/// [`decode_line`] through serde_json alone.
fn decode_with_serde(line: &str) -> Result<InputLine<'_>, DecodeError> {
    let envelope: Envelope<'_> = serde_json::from_str(line)?;
    if envelope.kind == "RECORD" {
        return envelope
            .record
            .map(InputLine::Record)
            .ok_or(DecodeError::MissingRecord);
    }
    Ok(InputLine::Message(serde_json::from_str(line)?))
}

/// `emitted_at` is an integer by the protocol; tolerate a float from lax writers.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number of milliseconds")
        }
        fn visit_i64<E>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E>(self, v: u64) -> Result<i64, E> {
            Ok(v as i64)
        }
        fn visit_f64<E>(self, v: f64) -> Result<i64, E> {
            Ok(v as i64)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AirbyteMessage;
    use proptest::prelude::*;

    #[test]
    fn record_data_stays_raw() {
        let line = br#"{"type":"RECORD","record":{"stream":"s","data":{"a": [1, 2]},"emitted_at":5,"x":1}}"#;
        match decode_line(line).unwrap() {
            InputLine::Record(r) => {
                assert_eq!(r.stream, "s");
                assert_eq!(r.data.get(), r#"{"a": [1, 2]}"#);
                assert_eq!(r.emitted_at, 5);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A record carrying a `file_reference` (file-based streams): the direct reading takes it
    /// and skips the key, as serde_json does.
    #[test]
    fn records_with_a_file_reference_read_the_same_either_way() {
        let line = r#"{"type":"RECORD","record":{"stream":"docs","data":{"id":1},"emitted_at":7,"file_reference":{"staging_file_url":"/staging/files/docs/a.pdf","source_file_relative_path":"docs/a.pdf","file_size_bytes":12}}}"#;
        let fast = super::super::scan::record(line).expect("the direct reading takes it");
        assert_eq!(fast.data.get(), r#"{"id":1}"#);
        assert_eq!(fast.emitted_at, 7);
        agrees(line).unwrap();
        // With the key first and an unknown key inside: still read.
        let line = r#"{"type":"RECORD","record":{"file_reference":{"x":[1,{"y":null}],"file_size_bytes":1},"stream":"docs","data":{},"emitted_at":1}}"#;
        assert!(super::super::scan::record(line).is_some());
        agrees(line).unwrap();
        // A broken file_reference is left to serde_json, which refuses the line.
        let line = r#"{"type":"RECORD","record":{"stream":"docs","data":{},"emitted_at":1,"file_reference":{"a":}}}"#;
        assert!(super::super::scan::record(line).is_none());
        assert!(decode_line(line.as_bytes()).is_err());
    }

    #[test]
    fn other_types_decode_fully_and_unknown_types_are_kept() {
        let state = br#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"s"}}}}"#;
        assert!(matches!(
            decode_line(state).unwrap(),
            InputLine::Message(AirbyteMessage::State { .. })
        ));
        let future = br#"{"type":"HOLOGRAM","hologram":{}}"#;
        assert!(matches!(
            decode_line(future).unwrap(),
            InputLine::Message(AirbyteMessage::Unknown)
        ));
        assert!(decode_line(b"not json").is_err());
        assert!(decode_line(br#"{"type":"RECORD"}"#).is_err());
    }

    /// A JSON value of any shape, with strings that need escapes.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\\\\\"\u{0}-\u{1f}é\u{10000}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z\"]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A RECORD line in a shape the direct reading takes (or nearly).
    fn record_line() -> impl Strategy<Value = String> {
        (json_value(), any::<i64>(), any::<bool>(), 0..4usize).prop_map(
            |(data, at, pretty, layout)| {
                let data = if pretty {
                    serde_json::to_string_pretty(&data).unwrap()
                } else {
                    data.to_string()
                };
                match layout {
                    0 => format!(
                        r#"{{"type":"RECORD","record":{{"stream":"s","emitted_at":{at},"data":{data}}}}}"#
                    ),
                    1 => format!(
                        r#" {{ "record" : {{ "data" : {data} , "namespace" : null, "stream" : "s", "emitted_at" : {at}, "meta": null, "x": [{data}] }}, "type" : "RECORD" }} "#
                    ),
                    2 => format!(
                        r#"{{"type":"RECORD","extra":{data},"record":{{"namespace":"n","stream":"s","data":{data},"emitted_at":{at}}}}}"#
                    ),
                    _ => format!(
                        r#"{{"type":"STATE","record":{{"stream":"s","data":{data},"emitted_at":{at}}}}}"#
                    ),
                }
            },
        )
    }

    /// What the direct reading answers is what serde_json answers.
    fn agrees(line: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = super::super::scan::record(line) {
            match decode_with_serde(line) {
                Ok(InputLine::Record(slow)) => {
                    prop_assert_eq!(&fast.stream, &slow.stream);
                    prop_assert_eq!(&fast.namespace, &slow.namespace);
                    prop_assert_eq!(fast.data, slow.data);
                    prop_assert_eq!(fast.emitted_at, slow.emitted_at);
                    prop_assert!(slow.meta.is_none());
                }
                other => prop_assert!(false, "{line}: serde_json reads {other:?}"),
            }
            fields_agree(line, fast.data.get())?;
        }
        Ok(())
    }

    /// Where the direct reading says the top-level fields of `data` lie, serde_json finds
    /// each field; it says so for every object whose keys have no escapes.
    fn fields_agree(line: &str, data: &str) -> Result<(), TestCaseError> {
        // Fields are appended to what the vector holds, which stays as it was.
        let mut fields = vec![[9; 4]];
        let mut prefix = Prefix::default();
        let (record, complete) =
            super::super::scan::record_with_fields(line, &mut fields, &mut prefix)
                .ok_or_else(|| TestCaseError::fail("the reading with fields differs"))?;
        prop_assert_eq!(fields.remove(0), [9; 4]);
        prop_assert!(complete || fields.is_empty());
        prop_assert_eq!(record.data.get(), data);
        // Numbers past f64 (`1e400`) are JSON that a `Value` cannot hold.
        let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else {
            return Ok(());
        };
        let Some(object) = value.as_object() else {
            prop_assert!(!complete);
            return Ok(());
        };
        if !complete {
            // A key with an escape (the data has one somewhere, then).
            prop_assert!(data.contains('\\'), "{}", data);
            return Ok(());
        }
        // A repeated key: serde_json keeps its last value.
        let mut found = serde_json::Map::new();
        for [key_start, key_end, start, end] in fields {
            let key = &data[key_start as usize..key_end as usize];
            let field: serde_json::Value =
                serde_json::from_str(&data[start as usize..end as usize]).unwrap();
            found.insert(key.to_string(), field);
        }
        prop_assert_eq!(&found, object);
        Ok(())
    }

    #[test]
    fn the_direct_reading_takes_the_usual_records() {
        let line = r#"{"type":"RECORD","record":{"stream":"users","emitted_at":1700000000001,"data":{"id":1,"name":"user 1","tags":["a","b"]}}}"#;
        let record = super::super::scan::record(line).expect("the usual record");
        assert_eq!(
            record.data.get(),
            r#"{"id":1,"name":"user 1","tags":["a","b"]}"#
        );
        assert_eq!(record.emitted_at, 1_700_000_000_001);
        let line = r#"{"type":"RECORD","record":{"stream":"s","emitted_at":-9223372036854775808,"data":"a \"longer\" string, \\ \u00e9\/ past eight bytes"}}"#;
        let record = super::super::scan::record(line).expect("a record with escapes");
        assert_eq!(record.emitted_at, i64::MIN);
        assert!(record.data.get().ends_with(r#"eight bytes""#));
        for other in [
            r#"{"type":"RECORD","record":{"stream":"a\"b","data":{},"emitted_at":1}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1.5}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1,"meta":{"changes":[]}}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{},"data":{},"emitted_at":1}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":"\ud800","emitted_at":1}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":[01],"emitted_at":1}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{"a":1,},"emitted_at":1}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1}} x"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":9223372036854775808}}"#,
            r#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":-}}"#,
            "{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":\"a long string with a tab\there\",\"emitted_at\":1}}",
        ] {
            assert!(super::super::scan::record(other).is_none(), "{other}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_direct_reading_agrees_with_serde(line in record_line()) {
            if !line.contains("STATE") {
                prop_assert!(super::super::scan::record(&line).is_some(), "{}", line);
            }
            agrees(&line)?;
        }

        // Broken lines: whatever the direct reading takes, serde_json takes the same way.
        #[test]
        fn broken_lines_agree_too(
            line in record_line(),
            cut in any::<prop::sample::Index>(),
            byte in prop::sample::select(&[
                b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'-', b'.', b'e', b' ',
                b'\n', b'\x01', b'u', b'n', b't', b'f',
            ][..]),
            how in 0..3u8,
        ) {
            let mut bytes = line.into_bytes();
            let i = cut.index(bytes.len());
            match how {
                0 => { bytes.remove(i); }
                1 => bytes.insert(i, byte),
                _ => bytes[i] = byte,
            }
            if let Ok(line) = std::str::from_utf8(&bytes) {
                agrees(line)?;
            }
        }
    }

    proptest! {
        // The decoder never panics, whatever the bytes.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_line(&bytes);
        }

        // A record written by the full encoder comes back with the same data.
        #[test]
        fn roundtrips(stream in "[a-z]{1,8}", n in any::<i64>(), s in ".*") {
            let data = serde_json::json!({"n": n, "s": s});
            let line = serde_json::json!({"type": "RECORD", "record": {
                "stream": stream, "data": data, "emitted_at": 1}}).to_string();
            match decode_line(line.as_bytes()).unwrap() {
                InputLine::Record(r) => {
                    prop_assert_eq!(&*r.stream, stream.as_str());
                    let back: serde_json::Value = serde_json::from_str(r.data.get()).unwrap();
                    prop_assert_eq!(back, data);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
