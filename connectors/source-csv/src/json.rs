//! JSON Lines (one object a line) and JSON (a top-level array of objects, or one object per
//! file) files: each object is a record, passed through as it is (nested values kept), with the
//! `_ab_source_file_*` columns added when selected. The schema is the union of the sampled
//! objects' keys, each with the JSON types seen.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::infer::{SAMPLE_BYTES_PER_FILE, stream_schema};
use crate::storage::ByteReader;
use cdk::json::write_utf8;
use cdk::{Error, RecordWriter, Result};

/// Calls `each` with every object of the file, as raw JSON text; stops after about `limit`
/// bytes of JSON Lines.
fn objects(
    input: ByteReader,
    uri: &str,
    lines: bool,
    limit: Option<u64>,
    mut each: impl FnMut(&RawValue) -> Result<()>,
) -> Result<()> {
    let bad = |what: String| Error::config(format!("'{uri}': {what}"));
    if lines {
        let mut input = BufReader::with_capacity(256 << 10, input);
        let (mut line, mut number, mut read) = (Vec::new(), 0u64, 0u64);
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| bad(format!("cannot read: {e}")))?;
            if n == 0 || limit.is_some_and(|l| read >= l) {
                return Ok(());
            }
            read += n as u64;
            number += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let value: &RawValue = serde_json::from_slice(text)
                .map_err(|e| bad(format!("line {number}: invalid JSON: {e}")))?;
            each(object(value, &bad, number)?)?;
        }
    }
    let mut text = Vec::new();
    let mut input = input;
    input
        .read_to_end(&mut text)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
    if text.trim_ascii_start().starts_with(b"[") {
        let items: Vec<&RawValue> =
            serde_json::from_slice(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        for (i, item) in items.into_iter().enumerate() {
            each(object(item, &bad, i as u64 + 1)?)?;
        }
        Ok(())
    } else {
        let value: &RawValue =
            serde_json::from_slice(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        each(object(value, &bad, 1)?)
    }
}

fn object<'v>(
    value: &'v RawValue,
    bad: &impl Fn(String) -> Error,
    number: u64,
) -> Result<&'v RawValue> {
    if value.get().starts_with('{') {
        Ok(value)
    } else {
        Err(bad(format!(
            "record {number} is not a JSON object: {}",
            value.get().chars().take(40).collect::<String>()
        )))
    }
}

/// The keys seen so far and the JSON types of their values.
#[derive(Debug, Default)]
pub struct JsonInference {
    columns: Vec<(String, BTreeSet<&'static str>)>,
}

impl JsonInference {
    /// Samples the objects of one file (the first 1 MB of JSON Lines; a whole JSON file).
    pub fn sample(&mut self, input: ByteReader, uri: &str, lines: bool) -> Result<()> {
        objects(input, uri, lines, Some(SAMPLE_BYTES_PER_FILE), |raw| {
            let map: Map<String, Value> = serde_json::from_str(raw.get())
                .map_err(|e| Error::config(format!("'{uri}': invalid JSON: {e}")))?;
            for (key, value) in map {
                let t = match value {
                    Value::Null => "null",
                    Value::Bool(_) => "boolean",
                    Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                };
                match self.columns.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, types)) => {
                        types.insert(t);
                    }
                    None => self.columns.push((key, BTreeSet::from([t]))),
                }
            }
            Ok(())
        })
    }

    /// The stream's JSON Schema: every key nullable, with the types seen (an integer key that
    /// also holds fractions is a number).
    pub fn schema(&self) -> Value {
        let mut properties = Map::new();
        for (name, types) in &self.columns {
            let mut types: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
            if types.contains(&"number") {
                types.retain(|t| *t != "integer");
            }
            let mut list = vec!["null"];
            list.extend(types);
            properties.insert(name.clone(), json!({ "type": list }));
        }
        stream_schema(properties)
    }
}

/// Writes every object of the file as a record, with `file_columns` added.
pub fn read(
    input: ByteReader,
    uri: &str,
    lines: bool,
    file_columns: &[(&str, &str)],
    out: &mut RecordWriter,
) -> Result<()> {
    let mut suffix = Vec::new();
    for (name, value) in file_columns {
        suffix.push(b',');
        write_utf8(&mut suffix, name.as_bytes());
        suffix.push(b':');
        write_utf8(&mut suffix, value.as_bytes());
    }
    let mut record = Vec::with_capacity(1024);
    objects(input, uri, lines, None, |raw| {
        let text = raw.get().as_bytes();
        let body = text[..text.len() - 1].trim_ascii_end();
        record.clear();
        record.extend_from_slice(body);
        if body.len() == 1 {
            // `{}`: the suffix's leading comma has nothing before it.
            record.extend_from_slice(suffix.get(1..).unwrap_or_default());
        } else {
            record.extend_from_slice(&suffix);
        }
        record.push(b'}');
        out.record_json(cdk::TrustedJson::new(&record), &[])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, lines: bool) -> Value {
        let mut inference = JsonInference::default();
        inference
            .sample(
                Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
                "t",
                lines,
            )
            .unwrap();
        inference.schema()["properties"].clone()
    }

    #[test]
    fn schemas_of_lines_arrays_and_single_objects() {
        let p = sample(
            "{\"a\":1,\"b\":{\"c\":2}}\n\n{\"a\":2.5,\"d\":null}\n",
            true,
        );
        assert_eq!(p["a"], json!({"type": ["null", "number"]}));
        assert_eq!(p["b"], json!({"type": ["null", "object"]}));
        assert_eq!(p["d"], json!({"type": ["null"]}));
        let p = sample("[{\"a\": \"x\"}, {\"a\": 1}]", false);
        assert_eq!(p["a"], json!({"type": ["null", "integer", "string"]}));
        let p = sample(" {\"a\": true}", false);
        assert_eq!(p["a"], json!({"type": ["null", "boolean"]}));
    }

    #[test]
    fn a_non_object_is_an_error_naming_the_file() {
        let mut inference = JsonInference::default();
        let err = inference
            .sample(
                Box::new(std::io::Cursor::new(b"[1]".to_vec())),
                "f.json",
                false,
            )
            .unwrap_err();
        assert!(err.message.contains("'f.json'"), "{}", err.message);
    }
}
