//! The fast path for reading message lines: RECORD data stays raw JSON bytes.
//!
//! Most lines a destination reads are records, and most destinations only need the record's
//! data as bytes (or parse it their own way). Serde's tagged enums buffer their content, which
//! rules out `RawValue`, so we read the envelope's `type` with a plain struct first and decode the
//! full message only for the rare non-record lines.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

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
    pub data: &'a RawValue,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "millis")]
    pub emitted_at: i64,
    /// Changes the source made to the record.
    #[serde(default)]
    pub meta: Option<AirbyteRecordMessageMeta>,
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
