//! RECORD messages and their `meta.changes`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessage {
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub data: Value,
    /// Epoch milliseconds (an integer, unlike TRACE's `emitted_at`).
    pub emitted_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<AirbyteRecordMessageMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_reference: Option<AirbyteRecordMessageFileReference>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageMeta {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<AirbyteRecordMessageMetaChange>,
}

/// One field of a record that was nulled or truncated, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageMetaChange {
    pub field: String,
    pub change: Change,
    pub reason: ChangeReason,
}

impl AirbyteRecordMessageMetaChange {
    pub fn nulled(field: impl Into<String>, reason: ChangeReason) -> Self {
        Self {
            field: field.into(),
            change: Change::Nulled,
            reason,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Change {
    Nulled,
    Truncated,
}

/// The closed set of reasons the protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeReason {
    SourceRecordSizeLimitation,
    DestinationRecordSizeLimitation,
    PlatformRecordSizeLimitation,
    SourceFieldSizeLimitation,
    DestinationFieldSizeLimitation,
    PlatformFieldSizeLimitation,
    SourceSerializationError,
    DestinationSerializationError,
    PlatformSerializationError,
    SourceRetrievalError,
    DestinationTypecastError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageFileReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_file_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file_relative_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<i64>,
}
