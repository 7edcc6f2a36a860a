//! STATE messages: STREAM and GLOBAL (written), LEGACY (read only).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `AirbyteStateMessage.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AirbyteStateType {
    /// One state for all streams (a shared position, e.g. a CDC log offset).
    Global,
    /// One stream's state.
    Stream,
    /// The deprecated single blob.
    Legacy,
}

/// A name and optional namespace: the identity of a stream everywhere in the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamDescriptor {
    /// The stream's name.
    pub name: String,
    /// Its namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl StreamDescriptor {
    /// The descriptor of `name` in `namespace`.
    pub fn new(name: impl Into<String>, namespace: Option<String>) -> Self {
        Self {
            name: name.into(),
            namespace,
        }
    }
}

impl std::fmt::Display for StreamDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStreamState {
    /// The stream.
    pub stream_descriptor: StreamDescriptor,
    /// `null` (or absent) means the stream was reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_state: Option<Value>,
}

/// A GLOBAL state: the shared position and each stream's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteGlobalState {
    /// The position every stream shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<Value>,
    /// Each stream's own state.
    pub stream_states: Vec<AirbyteStreamState>,
}

/// Counts attached to a state. Both are doubles on the wire (`5.0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStateStats {
    /// Records since the previous state.
    #[serde(
        rename = "recordCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub record_count: Option<f64>,
    /// Records the destination rejected.
    #[serde(
        rename = "rejectedRecordCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rejected_record_count: Option<f64>,
}

impl AirbyteStateStats {
    /// Stats of `count` records.
    pub fn records(count: u64) -> Self {
        Self {
            record_count: Some(count as f64),
            rejected_record_count: None,
        }
    }
}

/// `STATE`: a checkpoint of one stream or of all (GLOBAL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStateMessage {
    /// Absent means LEGACY; use [`AirbyteStateMessage::kind`].
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub state_type: Option<AirbyteStateType>,
    /// The stream's state, for a STREAM state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<AirbyteStreamState>,
    /// The shared and per-stream state, for a GLOBAL state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<AirbyteGlobalState>,
    /// The deprecated LEGACY blob; read, never written by us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Records the source emitted since the previous state.
    #[serde(
        rename = "sourceStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_stats: Option<AirbyteStateStats>,
    /// Records the destination committed since the previous state.
    #[serde(
        rename = "destinationStats",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_stats: Option<AirbyteStateStats>,
}

impl AirbyteStateMessage {
    /// A STREAM state of `descriptor`.
    pub fn stream(descriptor: StreamDescriptor, state: Value) -> Self {
        Self {
            state_type: Some(AirbyteStateType::Stream),
            stream: Some(AirbyteStreamState {
                stream_descriptor: descriptor,
                stream_state: Some(state),
            }),
            ..Self::default()
        }
    }

    /// A GLOBAL state.
    pub fn global(shared_state: Option<Value>, stream_states: Vec<AirbyteStreamState>) -> Self {
        Self {
            state_type: Some(AirbyteStateType::Global),
            global: Some(AirbyteGlobalState {
                shared_state,
                stream_states,
            }),
            ..Self::default()
        }
    }

    /// The state's type, LEGACY when none is given.
    pub fn kind(&self) -> AirbyteStateType {
        self.state_type.unwrap_or(AirbyteStateType::Legacy)
    }
}

/// What a `--state` file holds: an array of state messages or one legacy object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputState {
    /// The state messages, in order.
    pub messages: Vec<AirbyteStateMessage>,
}

impl InputState {
    /// Parses a state file's content. An empty file or `null` means no state.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("state is not valid JSON: {e}"))?;
        let messages = match value {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    serde_json::from_value(item)
                        .map_err(|e| format!("state message at index {i} is invalid: {e}"))
                })
                .collect::<Result<_, _>>()?,
            Value::Object(map) if map.contains_key("type") || map.contains_key("stream") => {
                vec![
                    serde_json::from_value(Value::Object(map))
                        .map_err(|e| format!("state message is invalid: {e}"))?,
                ]
            }
            // A bare legacy blob: `{"users": {...}}`.
            Value::Object(map) => vec![AirbyteStateMessage {
                data: Some(Value::Object(map)),
                ..AirbyteStateMessage::default()
            }],
            other => return Err(format!("state must be a JSON array or object, got {other}")),
        };
        Ok(Self { messages })
    }

    /// The stream state for `descriptor`, from a STREAM message or from a GLOBAL one.
    pub fn stream_state(&self, descriptor: &StreamDescriptor) -> Option<&Value> {
        self.messages.iter().find_map(|m| match m.kind() {
            AirbyteStateType::Stream => m
                .stream
                .as_ref()
                .filter(|s| s.stream_descriptor == *descriptor)
                .and_then(|s| s.stream_state.as_ref()),
            AirbyteStateType::Global => m.global.as_ref().and_then(|g| {
                g.stream_states
                    .iter()
                    .find(|s| s.stream_descriptor == *descriptor)
                    .and_then(|s| s.stream_state.as_ref())
            }),
            AirbyteStateType::Legacy => None,
        })
    }

    /// The GLOBAL message's shared state, if any.
    pub fn shared_state(&self) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m.kind() == AirbyteStateType::Global)
            .and_then(|m| m.global.as_ref())
            .and_then(|g| g.shared_state.as_ref())
    }

    /// The LEGACY blob, if the file held one.
    pub fn legacy(&self) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m.kind() == AirbyteStateType::Legacy)
            .and_then(|m| m.data.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stats_are_written_as_floats() {
        let mut state = AirbyteStateMessage::stream(StreamDescriptor::new("s", None), json!({}));
        state.source_stats = Some(AirbyteStateStats::records(5));
        let line = serde_json::to_string(&state).unwrap();
        assert!(
            line.contains(r#""sourceStats":{"recordCount":5.0}"#),
            "{line}"
        );
    }

    #[test]
    fn missing_type_is_legacy() {
        let s: AirbyteStateMessage = serde_json::from_str(r#"{"data":{"a":1}}"#).unwrap();
        assert_eq!(s.kind(), AirbyteStateType::Legacy);
    }

    #[test]
    fn state_file_forms() {
        let arr = InputState::parse(
            r#"[{"type":"STREAM","stream":{"stream_descriptor":{"name":"a"},"stream_state":{"c":1}}}]"#,
        )
        .unwrap();
        assert_eq!(
            arr.stream_state(&StreamDescriptor::new("a", None)),
            Some(&json!({"c": 1}))
        );
        let legacy = InputState::parse(r#"{"a":{"c":2}}"#).unwrap();
        assert_eq!(legacy.legacy(), Some(&json!({"a": {"c": 2}})));
        let global = InputState::parse(
            r#"[{"type":"GLOBAL","global":{"shared_state":{"lsn":9},"stream_states":[{"stream_descriptor":{"name":"a","namespace":"p"},"stream_state":{"x":1}}]}}]"#,
        )
        .unwrap();
        assert_eq!(global.shared_state(), Some(&json!({"lsn": 9})));
        let d = StreamDescriptor::new("a", Some("p".into()));
        assert_eq!(global.stream_state(&d), Some(&json!({"x": 1})));
        assert!(InputState::parse("").unwrap().messages.is_empty());
        assert!(
            InputState::parse("3")
                .unwrap_err()
                .contains("array or object")
        );
    }
}
