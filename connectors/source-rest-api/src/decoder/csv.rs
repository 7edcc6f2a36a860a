//! `CsvDecoder` (Airbyte's `CsvParser`): the first row names the columns, every other row is a
//! record of text values, as Python's `csv.DictReader` reads it — missing trailing cells are
//! null, blank lines are skipped, values listed in `set_values_to_none` become null.

use cdk::{Error, Result};
use serde_json::{Map, Value};

/// How a CSV body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    pub encoding: TextEncoding,
    pub delimiter: u8,
    pub none_values: Vec<String>,
}

/// The encodings a text body may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    /// `utf-8-sig`: UTF-8 with an optional byte-order mark.
    Utf8Sig,
    /// `latin-1` / `iso-8859-1`: each byte is the character of that code.
    Latin1,
}

impl TextEncoding {
    /// Python's codec names for the encodings supported.
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        match n.as_str() {
            "utf-8" | "utf8" | "u8" => Ok(TextEncoding::Utf8),
            "utf-8-sig" | "utf8-sig" => Ok(TextEncoding::Utf8Sig),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Ok(TextEncoding::Latin1),
            _ => Err(format!(
                "the encoding '{name}' is not supported (utf-8, utf-8-sig, latin-1)"
            )),
        }
    }

    /// The text of `body`.
    pub fn decode(self, body: &[u8]) -> Result<String> {
        match self {
            TextEncoding::Utf8 => String::from_utf8(body.to_vec())
                .map_err(|e| Error::system(format!("the response is not valid UTF-8: {e}"))),
            TextEncoding::Utf8Sig => {
                TextEncoding::Utf8.decode(body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body))
            }
            TextEncoding::Latin1 => Ok(body.iter().map(|b| char::from(*b)).collect()),
        }
    }
}

impl CsvOptions {
    /// The options of a `CsvDecoder`; `delimiter` may be an escape such as `\t`.
    pub fn new(
        encoding: &str,
        delimiter: &str,
        none_values: Vec<String>,
    ) -> std::result::Result<Self, String> {
        let encoding = TextEncoding::parse(encoding)?;
        let d = unescape(delimiter);
        let mut chars = d.chars();
        let delimiter = match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii() => c as u8,
            _ => {
                return Err(format!(
                    "the delimiter must be one ASCII character, got {delimiter:?}"
                ));
            }
        };
        Ok(Self {
            encoding,
            delimiter,
            none_values,
        })
    }

    /// The records of a CSV body.
    pub fn parse(&self, body: &[u8]) -> Result<Vec<Value>> {
        let text = self.encoding.decode(body)?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(text.as_bytes());
        let mut rows = reader.records();
        let header = loop {
            match rows.next() {
                None => return Ok(Vec::new()),
                Some(row) => {
                    let row = row.map_err(csv_error)?;
                    if !is_blank(&row) {
                        break row;
                    }
                }
            }
        };
        let names: Vec<String> = header.iter().map(str::to_string).collect();
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(csv_error)?;
            if is_blank(&row) {
                continue;
            }
            let mut record = Map::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get(i) {
                    Some(cell) if self.none_values.iter().any(|n| n == cell) => Value::Null,
                    Some(cell) => Value::String(cell.to_string()),
                    None => Value::Null,
                };
                record.insert(name.clone(), v);
            }
            if row.len() > names.len() {
                let rest: Vec<Value> = row
                    .iter()
                    .skip(names.len())
                    .map(|c| Value::String(c.to_string()))
                    .collect();
                record.insert("null".into(), Value::Array(rest));
            }
            out.push(Value::Object(record));
        }
        Ok(out)
    }
}

/// `csv.DictReader` skips rows without any cell.
fn is_blank(row: &csv::StringRecord) -> bool {
    row.is_empty() || (row.len() == 1 && row.get(0) == Some(""))
}

fn csv_error(e: csv::Error) -> Error {
    Error::system(format!("the response is not valid CSV: {e}"))
}

/// Python's `unicode_escape` of a delimiter written with a backslash (`\t`, `\x1f`).
fn unescape(d: &str) -> String {
    if !d.starts_with('\\') {
        return d.to_string();
    }
    match d {
        "\\t" => "\t".into(),
        "\\n" => "\n".into(),
        "\\r" => "\r".into(),
        "\\\\" => "\\".into(),
        _ => d
            .strip_prefix("\\x")
            .or_else(|| d.strip_prefix("\\u"))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_else(|| d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_like_dict_reader() {
        let o = CsvOptions::new("utf-8", ",", vec!["NA".into()]).unwrap();
        let body = b"id,name,note\r\n1,\"a, b\",NA\r\n\r\n2,c\r\n3,d,e,extra\r\n";
        assert_eq!(
            o.parse(body).unwrap(),
            vec![
                json!({"id": "1", "name": "a, b", "note": null}),
                json!({"id": "2", "name": "c", "note": null}),
                json!({"id": "3", "name": "d", "note": "e", "null": ["extra"]}),
            ]
        );
        let tabs = CsvOptions::new("latin-1", "\\t", vec![]).unwrap();
        assert_eq!(
            tabs.parse(b"k\tv\n1\t\xe9\n").unwrap(),
            vec![json!({"k": "1", "v": "é"})]
        );
        assert!(CsvOptions::new("utf-8", ";;", vec![]).is_err());
        assert!(CsvOptions::new("cp1252", ",", vec![]).is_err());
        assert_eq!(o.parse(b"").unwrap(), Vec::<Value>::new());
    }
}
