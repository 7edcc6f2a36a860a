//! Stream states in the shapes of Airbyte's source-postgres, so a connection can move between
//! the two without a reset:
//! - initial load: `{"state_type":"ctid","version":2,"ctid":"(page,tuple)",
//!   "relation_filenode":n,"incremental_state":{…}}` (resume with `ctid > page,tuple`);
//! - cursor: `{"state_type":"cursor_based","version":2,"stream_name":…,"stream_namespace":…,
//!   "cursor_field":[…],"cursor":"<text>","cursor_record_count":n}`.
//!
//! A stream state without `state_type` is an older cursor state (read as cursor-based).

use cdk::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtidStatus {
    pub state_type: String,
    pub version: u32,
    pub ctid: String,
    #[serde(default)]
    pub relation_filenode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_state: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorStatus {
    #[serde(default = "cursor_based")]
    pub state_type: String,
    #[serde(default = "version")]
    pub version: u32,
    #[serde(default)]
    pub stream_name: Option<String>,
    #[serde(default)]
    pub stream_namespace: Option<String>,
    #[serde(default)]
    pub cursor_field: Vec<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_record_count: Option<u64>,
}

fn cursor_based() -> String {
    "cursor_based".into()
}

fn version() -> u32 {
    2
}

/// A parsed incoming stream state.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamState {
    Ctid(CtidStatus),
    Cursor(CursorStatus),
    Xmin(crate::xmin::XminStatus),
}

impl StreamState {
    /// Parses a stream state; `None` for no state or Airbyte's full-refresh sentinel.
    pub fn parse(value: Option<&Value>) -> Result<Option<Self>> {
        let Some(value) = value else { return Ok(None) };
        let Some(map) = value.as_object() else {
            return Err(Error::config(format!(
                "stream state must be an object, got {value}"
            )));
        };
        if map.is_empty() || map.contains_key("__ab_no_cursor_state_message") {
            return Ok(None);
        }
        let kind = map.get("state_type").and_then(Value::as_str);
        let invalid = |e: serde_json::Error| {
            Error::config(format!("stream state {value} is not a valid state: {e}"))
        };
        match kind {
            Some("ctid") => Ok(Some(StreamState::Ctid(
                serde_json::from_value(value.clone()).map_err(invalid)?,
            ))),
            Some("cursor_based") | None => {
                // Older states carry the cursor as a JSON number or string.
                let mut v = value.clone();
                if let Some(c) = v.get_mut("cursor")
                    && !c.is_string()
                    && !c.is_null()
                {
                    *c = Value::String(c.to_string());
                }
                Ok(Some(StreamState::Cursor(
                    serde_json::from_value(v).map_err(invalid)?,
                )))
            }
            Some("xmin") => Ok(Some(StreamState::Xmin(
                serde_json::from_value(value.clone()).map_err(invalid)?,
            ))),
            Some(other) => Err(Error::config(format!(
                "stream state type '{other}' is not supported (expected 'ctid', 'cursor_based' or 'xmin')"
            ))),
        }
    }
}

/// `(page,tuple)` of a ctid text.
pub fn parse_ctid(text: &str) -> Result<(u32, u16)> {
    let bad = || Error::config(format!("'{text}' is not a ctid like '(12,3)'"));
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (page, tuple) = inner.split_once(',').ok_or_else(bad)?;
    Ok((
        page.trim().parse().map_err(|_| bad())?,
        tuple.trim().parse().map_err(|_| bad())?,
    ))
}

pub fn ctid_state(
    ctid: (u32, u16),
    filenode: Option<i64>,
    incremental_state: Option<&Value>,
) -> Value {
    let status = CtidStatus {
        state_type: "ctid".into(),
        version: 2,
        ctid: format!("({},{})", ctid.0, ctid.1),
        relation_filenode: filenode,
        incremental_state: incremental_state.cloned(),
    };
    serde_json::to_value(status).unwrap_or_default()
}

impl CursorStatus {
    pub fn new(
        name: &str,
        namespace: &str,
        cursor_field: &str,
        cursor: Option<String>,
        count: u64,
    ) -> Self {
        Self {
            state_type: cursor_based(),
            version: 2,
            stream_name: Some(name.into()),
            stream_namespace: Some(namespace.into()),
            cursor_field: vec![cursor_field.into()],
            cursor,
            cursor_record_count: (count > 0).then_some(count),
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn airbyte_shapes_round_trip() {
        let inc = CursorStatus::new("t", "public", "id", Some("42".into()), 3);
        let v = ctid_state((12, 3), Some(16384), Some(&inc.to_value()));
        assert_eq!(
            v,
            json!({"state_type": "ctid", "version": 2, "ctid": "(12,3)",
                "relation_filenode": 16384, "incremental_state": {"state_type": "cursor_based",
                "version": 2, "stream_name": "t", "stream_namespace": "public",
                "cursor_field": ["id"], "cursor": "42", "cursor_record_count": 3}})
        );
        match StreamState::parse(Some(&v)).unwrap() {
            Some(StreamState::Ctid(c)) => {
                assert_eq!(parse_ctid(&c.ctid).unwrap(), (12, 3));
                assert_eq!(c.relation_filenode, Some(16384));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            StreamState::parse(Some(&inc.to_value())).unwrap(),
            Some(StreamState::Cursor(inc))
        );
    }

    #[test]
    fn legacy_and_sentinel_states() {
        let legacy = json!({"cursor": 5, "cursor_field": ["id"], "stream_name": "t"});
        match StreamState::parse(Some(&legacy)).unwrap() {
            Some(StreamState::Cursor(c)) => assert_eq!(c.cursor.as_deref(), Some("5")),
            other => panic!("{other:?}"),
        }
        let sentinel = json!({"__ab_no_cursor_state_message": true});
        assert_eq!(StreamState::parse(Some(&sentinel)).unwrap(), None);
        assert!(StreamState::parse(Some(&json!({"state_type": "xmin"}))).is_err());
        assert!(parse_ctid("(1;2)").is_err());
    }
}
