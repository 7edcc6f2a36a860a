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

/// The start of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
