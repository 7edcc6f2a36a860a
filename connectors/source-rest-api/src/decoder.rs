//! Response decoders: `JsonDecoder` (one JSON document) and `JsonlDecoder` (one document per
//! line). A decoder turns a response body into the documents records are extracted from.

use cdk::{Error, Result};
use serde_json::Value;

use crate::manifest::{Node, unsupported_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decoder {
    #[default]
    Json,
    Jsonl,
}

const SUPPORTED: [&str; 2] = ["JsonDecoder", "JsonlDecoder"];

impl Decoder {
    pub fn decode_node(node: Option<Node<'_>>) -> Result<Self> {
        let Some(node) = node else {
            return Ok(Decoder::Json);
        };
        let c = node.component(Some("JsonDecoder"))?;
        let d = match c.type_name.as_str() {
            "JsonDecoder" => Decoder::Json,
            "JsonlDecoder" => Decoder::Jsonl,
            other => return Err(unsupported_type(other, c.at(), &SUPPORTED)),
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
        }
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
}
