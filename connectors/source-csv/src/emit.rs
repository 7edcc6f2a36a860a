//! Writes a CSV row as a record's JSON object, typed per the catalog's schema, straight into a
//! byte buffer: keys are pre-encoded once per file, canonical numbers are copied as they are,
//! and a value that doesn't fit its type becomes null with a `meta.changes` entry.

use std::collections::HashMap;

use cdk::protocol::{AirbyteRecordMessageMetaChange, ChangeReason};
use csv::ByteRecord;

use crate::config::Dialect;
use crate::values::{self, Kind};
use cdk::json::write_utf8;

struct Column {
    name: String,
    /// `"name":`
    key: Vec<u8>,
    kind: Kind,
}

/// Turns the rows of one file into JSON objects.
pub struct RowWriter<'a> {
    dialect: &'a Dialect,
    /// By the file's column index; `None` for a column the catalog doesn't select.
    columns: Vec<Option<Column>>,
    /// The file columns, as `,"_ab_source_file_…":"…"}`.
    suffix: Vec<u8>,
    pub json: Vec<u8>,
    pub changes: Vec<AirbyteRecordMessageMetaChange>,
}

impl<'a> RowWriter<'a> {
    /// `kinds`: the selected properties of the catalog's schema and their types; `file_columns`:
    /// the `_ab_source_file_*` properties and their values for this file, when selected.
    pub fn new(
        dialect: &'a Dialect,
        header: &[String],
        kinds: &HashMap<String, Kind>,
        file_columns: &[(&str, &str)],
    ) -> Self {
        let columns = header
            .iter()
            .map(|name| {
                kinds.get(name).map(|kind| Column {
                    name: name.clone(),
                    key: json_key(name),
                    kind: *kind,
                })
            })
            .collect();
        let mut suffix = Vec::new();
        for (name, value) in file_columns {
            suffix.push(b',');
            suffix.extend_from_slice(&json_key(name));
            write_utf8(&mut suffix, value.as_bytes());
        }
        suffix.push(b'}');
        Self {
            dialect,
            columns,
            suffix,
            json: Vec::with_capacity(1024),
            changes: Vec::new(),
        }
    }

    /// Builds the JSON object of `row` in `self.json` (and its changes in `self.changes`).
    pub fn write(&mut self, row: &ByteRecord) {
        self.json.clear();
        self.changes.clear();
        self.json.push(b'{');
        let mut first = true;
        for (column, field) in self.columns.iter().zip(row.iter()) {
            let Some(column) = column else { continue };
            if !first {
                self.json.push(b',');
            }
            first = false;
            self.json.extend_from_slice(&column.key);
            if !write_value(&mut self.json, column.kind, field, self.dialect) {
                self.json.extend_from_slice(b"null");
                self.changes.push(AirbyteRecordMessageMetaChange::nulled(
                    column.name.clone(),
                    ChangeReason::SourceSerializationError,
                ));
            }
        }
        if first {
            // No CSV column selected: the suffix's leading comma has nothing before it.
            self.json
                .extend_from_slice(self.suffix.strip_prefix(b",").unwrap_or(&self.suffix));
        } else {
            self.json.extend_from_slice(&self.suffix);
        }
    }
}

fn json_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 3);
    write_utf8(&mut key, name.as_bytes());
    key.push(b':');
    key
}

/// Writes `field` as `kind`; false when it doesn't fit (the caller writes null and notes it).
/// Null values and, for non-text columns, empty fields are null.
fn write_value(out: &mut Vec<u8>, kind: Kind, field: &[u8], dialect: &Dialect) -> bool {
    let is_null = dialect.is_null(field);
    if kind == Kind::String {
        if is_null && dialect.strings_can_be_null {
            out.extend_from_slice(b"null");
        } else {
            write_utf8(out, field);
        }
        return true;
    }
    if is_null || field.is_empty() {
        out.extend_from_slice(b"null");
        return true;
    }
    match kind {
        Kind::Integer => {
            if values::is_json_integer(field) {
                out.extend_from_slice(field);
            } else if let Some(n) = values::parse_integer(field) {
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            } else {
                return false;
            }
        }
        Kind::Number => {
            if values::is_portable_json_number(field) {
                out.extend_from_slice(field);
            } else if let Some(n) = values::parse_number(field) {
                out.extend_from_slice(ryu::Buffer::new().format_finite(n).as_bytes());
            } else {
                return false;
            }
        }
        Kind::Boolean => {
            match values::parse_bool(field, &dialect.true_values, &dialect.false_values) {
                Some(true) => out.extend_from_slice(b"true"),
                Some(false) => out.extend_from_slice(b"false"),
                None => return false,
            }
        }
        Kind::Date => {
            if !values::is_date(field) {
                return false;
            }
            write_plain(out, field);
        }
        Kind::DateTime { .. } => {
            if values::datetime_offset(field).is_none() {
                return false;
            }
            // ISO 8601 with a `T` between date and time, as JSON Schema's date-time has it.
            out.push(b'"');
            out.extend_from_slice(&field[..10]);
            out.push(b'T');
            out.extend_from_slice(&field[11..]);
            out.push(b'"');
        }
        Kind::String => unreachable!("handled above"),
    }
    true
}

/// A value known to need no escaping (validated dates).
fn write_plain(out: &mut Vec<u8>, field: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(field);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CsvOptions;
    use serde_json::{Value, json};

    fn row(fields: &[&str]) -> ByteRecord {
        ByteRecord::from(fields.to_vec())
    }

    fn written(
        kinds: &[(&str, Kind)],
        fields: &[&str],
        options: CsvOptions,
    ) -> (Value, Vec<String>) {
        let dialect = options.dialect().unwrap();
        let header: Vec<String> = kinds.iter().map(|(n, _)| n.to_string()).collect();
        let map = kinds.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        let mut w = RowWriter::new(&dialect, &header, &map, &[("_ab_source_file_url", "a.csv")]);
        w.write(&row(fields));
        let nulled = w.changes.iter().map(|c| c.field.clone()).collect();
        (serde_json::from_slice(&w.json).expect("valid JSON"), nulled)
    }

    #[test]
    fn typed_values_and_misfits() {
        let kinds = [
            ("i", Kind::Integer),
            ("n", Kind::Number),
            ("b", Kind::Boolean),
            ("d", Kind::Date),
            ("t", Kind::DateTime { tz: false }),
            ("s", Kind::String),
        ];
        let (v, nulled) = written(
            &kinds,
            &[
                "+7",
                "1.",
                "YES",
                "2024-01-02",
                "2024-01-02 03:04:05",
                "say \"hi\"\n",
            ],
            CsvOptions::default(),
        );
        assert_eq!(
            v,
            json!({"i": 7, "n": 1.0, "b": true, "d": "2024-01-02", "t": "2024-01-02T03:04:05",
                   "s": "say \"hi\"\n", "_ab_source_file_url": "a.csv"})
        );
        assert!(nulled.is_empty());

        let (v, nulled) = written(
            &kinds,
            &["x", "NaN", "maybe", "2024-02-30", "noon", ""],
            CsvOptions::default(),
        );
        assert_eq!(v["i"], Value::Null);
        assert_eq!(v["s"], json!(""));
        assert_eq!(nulled, ["i", "n", "b", "d", "t"]);

        let (v, nulled) = written(
            &kinds,
            &["", "", "", "", "", "NA"],
            CsvOptions {
                null_values: vec!["NA".into()],
                ..CsvOptions::default()
            },
        );
        assert!(
            v.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.len() == 1)
                .all(|(_, v)| v.is_null())
        );
        assert!(nulled.is_empty(), "empty and null values are not changes");
    }

    #[test]
    fn strings_stay_text_when_they_cannot_be_null() {
        let options = CsvOptions {
            null_values: vec!["NA".into()],
            strings_can_be_null: false,
            ..CsvOptions::default()
        };
        let (v, _) = written(
            &[("s", Kind::String), ("i", Kind::Integer)],
            &["NA", "NA"],
            options,
        );
        assert_eq!(v["s"], json!("NA"));
        assert_eq!(v["i"], Value::Null);
    }
}
