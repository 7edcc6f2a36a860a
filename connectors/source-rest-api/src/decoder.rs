//! Response decoders: a decoder turns a response body into the documents records are
//! extracted from. `JsonDecoder` (one JSON document), `JsonlDecoder` (one document per line),
//! `IterableDecoder` (each line as `{"record": line}`), `JsonItemsDecoder` (the items of a
//! nested array), `XmlDecoder` ([`xml`]), `CsvDecoder` ([`csv`]), and `GzipDecoder` /
//! `ZipfileDecoder` ([`archive`]) around another decoder.

pub mod archive;
pub mod csv;
pub mod xml;

use cdk::{Error, Result};
use serde_json::Value;

use crate::manifest::{Node, unsupported_type};
use csv::CsvOptions;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Decoder {
    #[default]
    Json,
    Jsonl,
    Iterable,
    /// The items of the array at a dotted path (`data.users`; `item` steps into arrays).
    JsonItems(Vec<String>),
    Xml,
    Csv(CsvOptions),
    Gzip(Box<Decoder>),
    Zip(Box<Decoder>),
}

const SUPPORTED: [&str; 8] = [
    "JsonDecoder",
    "JsonlDecoder",
    "IterableDecoder",
    "JsonItemsDecoder",
    "XmlDecoder",
    "CsvDecoder",
    "GzipDecoder",
    "ZipfileDecoder",
];

/// The decoders a `GzipDecoder` or `ZipfileDecoder` may hold.
const INNER: [&str; 5] = [
    "CsvDecoder",
    "GzipDecoder",
    "JsonDecoder",
    "JsonItemsDecoder",
    "JsonlDecoder",
];

impl Decoder {
    pub fn decode_node(node: Option<Node<'_>>) -> Result<Self> {
        match node {
            None => Ok(Decoder::Json),
            Some(node) => Self::decode_of(node, &SUPPORTED),
        }
    }

    fn decode_of(node: Node<'_>, allowed: &[&str]) -> Result<Self> {
        let mut c = node.component(Some("JsonDecoder"))?;
        if c.type_name == "CustomDecoder" {
            let class = c.opt_str("class_name")?.unwrap_or_default();
            return Err(c.error(format!(
                "custom decoders are Python code ('{class}') and cannot run here"
            )));
        }
        if !allowed.contains(&c.type_name.as_str()) {
            return Err(unsupported_type(&c.type_name, c.at(), allowed));
        }
        let d = match c.type_name.as_str() {
            "JsonDecoder" => Decoder::Json,
            "JsonlDecoder" => Decoder::Jsonl,
            "IterableDecoder" => Decoder::Iterable,
            "XmlDecoder" => Decoder::Xml,
            "JsonItemsDecoder" => {
                let path = c.str("items_path")?;
                if path.is_empty() {
                    return Err(c.error("items_path must not be empty"));
                }
                if let Some(enc) = c.opt_str("encoding")? {
                    csv::TextEncoding::parse(&enc).map_err(|e| c.error(e))?;
                }
                Decoder::JsonItems(path.split('.').map(str::to_string).collect())
            }
            "CsvDecoder" => {
                let encoding = c.opt_str("encoding")?.unwrap_or_else(|| "utf-8".into());
                let delimiter = c.opt_str("delimiter")?.unwrap_or_else(|| ",".into());
                let none = c.string_list("set_values_to_none")?.unwrap_or_default();
                Decoder::Csv(CsvOptions::new(&encoding, &delimiter, none).map_err(|e| c.error(e))?)
            }
            "GzipDecoder" => Decoder::Gzip(Box::new(Self::decode_of(
                c.required_child("decoder")?,
                &INNER,
            )?)),
            "ZipfileDecoder" => Decoder::Zip(Box::new(Self::decode_of(
                c.required_child("decoder")?,
                &INNER,
            )?)),
            other => return Err(unsupported_type(other, c.at(), allowed)),
        };
        c.finish()?;
        Ok(d)
    }

    /// The documents in `body`. An empty body is one empty document.
    pub fn decode(&self, body: &[u8]) -> Result<Vec<Value>> {
        match self {
            Decoder::Json => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(vec![Value::Object(Default::default())]);
                }
                serde_json::from_slice(body).map(|v| vec![v]).map_err(|e| {
                    Error::system(format!(
                        "the response is not valid JSON: {e}: {}",
                        snippet(body)
                    ))
                })
            }
            Decoder::Jsonl => body
                .split(|b| *b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .map(|line| {
                    serde_json::from_slice(line).map_err(|e| {
                        Error::system(format!(
                            "a response line is not valid JSON: {e}: {}",
                            snippet(line)
                        ))
                    })
                })
                .collect(),
            Decoder::Iterable => Ok(String::from_utf8_lossy(body)
                .lines()
                .map(|l| serde_json::json!({ "record": l }))
                .collect()),
            Decoder::JsonItems(path) => {
                let doc: Value = serde_json::from_slice(body).map_err(|e| {
                    Error::system(format!(
                        "the response is not valid JSON: {e}: {}",
                        snippet(body)
                    ))
                })?;
                let mut out = Vec::new();
                json_items(&doc, path, &mut out);
                Ok(out)
            }
            Decoder::Xml => {
                let text = String::from_utf8_lossy(body);
                match xml::to_json(&text) {
                    Ok(doc) => Ok(vec![doc]),
                    Err(e) => {
                        tracing::warn!(
                            "the response cannot be parsed as XML ({e}): {}",
                            snippet(body)
                        );
                        Ok(vec![Value::Object(Default::default())])
                    }
                }
            }
            Decoder::Csv(o) => o.parse(body),
            Decoder::Gzip(inner) => inner.decode_inner(&archive::gunzip(body)?),
            Decoder::Zip(inner) => {
                let mut out = Vec::new();
                for (name, content) in archive::unzip(body)? {
                    out.extend(inner.decode_inner(&content).map_err(|e| {
                        e.context(format!("failed to parse file '{name}' from the zip file"))
                    })?);
                }
                Ok(out)
            }
        }
    }

    /// As a parser inside gzip or zip: a JSON list is one document per item (Airbyte's
    /// `JsonParser`).
    fn decode_inner(&self, body: &[u8]) -> Result<Vec<Value>> {
        match self {
            Decoder::Json => {
                let doc: Value = serde_json::from_slice(body).map_err(|e| {
                    Error::system(format!(
                        "the response is not valid JSON: {e}: {}",
                        snippet(body)
                    ))
                })?;
                Ok(match doc {
                    Value::Array(items) => items,
                    other => vec![other],
                })
            }
            other => other.decode(body),
        }
    }
}

/// ijson's `items(path + ".item")`: the elements of the arrays at `path`.
fn json_items(v: &Value, path: &[String], out: &mut Vec<Value>) {
    match path.split_first() {
        None => {
            if let Value::Array(items) = v {
                out.extend(items.iter().cloned());
            }
        }
        Some((head, rest)) => match v {
            Value::Object(m) => {
                if let Some(c) = m.get(head) {
                    json_items(c, rest, out);
                }
            }
            Value::Array(items) if head == "item" => {
                items.iter().for_each(|c| json_items(c, rest, out));
            }
            _ => {}
        },
    }
}

/// The most of a body an error message shows, in characters.
pub const SNIPPET_CHARS: usize = 500;

/// The start of a body, for error messages: at most [`SNIPPET_CHARS`] characters, whitespace
/// runs collapsed, and an HTML page reduced to its text (its title and headings, not its markup).
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let head = text
        .trim_start()
        .get(..15)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let text = if head.starts_with("<!doctype html") || head.starts_with("<html") {
        html_text(&text)
    } else {
        text.into_owned()
    };
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = collapsed.chars().take(SNIPPET_CHARS).collect();
    if collapsed.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s
}

/// The text of an HTML page: tags, scripts and styles dropped.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(4096));
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag = rest[open + 1..].to_ascii_lowercase();
        let skip_to = ["script", "style"]
            .iter()
            .find(|t| tag.starts_with(*t))
            .and_then(|t| tag.find(&format!("</{t}")).map(|i| open + 1 + i));
        let from = skip_to.unwrap_or(open);
        match rest[from..].find('>') {
            Some(close) => rest = &rest[from + close + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snippets_are_short_and_html_becomes_text() {
        let page = format!(
            "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body {{ color: red }}</style></head>\n<body><h1>Bad Gateway</h1>{}</body></html>",
            "<p>filler text</p>".repeat(100)
        );
        let s = snippet(page.as_bytes());
        assert!(
            s.starts_with("502 Bad Gateway Bad Gateway filler text"),
            "{s}"
        );
        assert!(!s.contains('<') && !s.contains("color"), "{s}");
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
        assert_eq!(snippet(b"{\"error\": \"nope\"}"), "{\"error\": \"nope\"}");
    }

    #[test]
    fn decodes_json_and_jsonl() {
        assert_eq!(
            Decoder::Json.decode(b"{\"a\":1}").unwrap(),
            vec![json!({"a": 1})]
        );
        assert_eq!(Decoder::Json.decode(b" ").unwrap(), vec![json!({})]);
        assert!(Decoder::Json.decode(b"<html>").is_err());
        assert_eq!(
            Decoder::Jsonl.decode(b"{\"a\":1}\n\n{\"a\":2}\n").unwrap(),
            vec![json!({"a": 1}), json!({"a": 2})]
        );
    }

    #[test]
    fn iterable_json_items_gzip_zip() {
        assert_eq!(
            Decoder::Iterable.decode(b"a\r\nb\n").unwrap(),
            vec![json!({"record": "a"}), json!({"record": "b"})]
        );
        let items = Decoder::JsonItems(vec!["data".into(), "users".into()]);
        assert_eq!(
            items
                .decode(br#"{"data": {"users": [{"id": 1}, {"id": 2}]}}"#)
                .unwrap(),
            vec![json!({"id": 1}), json!({"id": 2})]
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"[{\"id\": 1}, {\"id\": 2}]").unwrap();
        let gz = gz.finish().unwrap();
        let d = Decoder::Gzip(Box::new(Decoder::Json));
        assert_eq!(
            d.decode(&gz).unwrap(),
            vec![json!({"id": 1}), json!({"id": 2})]
        );
        assert_eq!(d.decode(b"{\"id\": 3}").unwrap(), vec![json!({"id": 3})]);
        assert!(
            Decoder::Zip(Box::new(Decoder::Json))
                .decode(b"nope")
                .is_err()
        );
    }

    use proptest::prelude::*;

    proptest! {
        /// Any body, to any decoder: documents or an error, never a panic.
        #[test]
        fn any_body_never_panics(body in prop::collection::vec(any::<u8>(), 0..200), text in "\\PC{0,80}") {
            let csv = Decoder::Csv(CsvOptions::new("utf-8", ",", vec![]).unwrap());
            let decoders = [
                Decoder::Json, Decoder::Jsonl, Decoder::Iterable, Decoder::Xml, csv.clone(),
                Decoder::JsonItems(vec!["a".into(), "item".into()]),
                Decoder::Gzip(Box::new(csv)), Decoder::Zip(Box::new(Decoder::Jsonl)),
            ];
            for d in &decoders {
                let _ = d.decode(&body);
                let _ = d.decode(text.as_bytes());
                let _ = d.decode(format!("<a x='{text}'>{text}</a>").as_bytes());
            }
        }
    }
}
