//! RECORD messages and their `meta.changes`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `RECORD`: one record of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessage {
    /// The stream's name.
    pub stream: String,
    /// The stream's namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The record: a JSON object.
    pub data: Value,
    /// Epoch milliseconds (an integer, unlike TRACE's `emitted_at`).
    pub emitted_at: i64,
    /// Changes made to the record on the way (nulled or truncated fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<AirbyteRecordMessageMeta>,
    /// The file that comes with the record, for file-based streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_reference: Option<AirbyteRecordMessageFileReference>,
}

/// `RECORD.meta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageMeta {
    /// Fields nulled or truncated, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<AirbyteRecordMessageMetaChange>,
}

/// One field of a record that was nulled or truncated, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageMetaChange {
    /// The field's path (dot-separated).
    pub field: String,
    /// What was done to it.
    pub change: Change,
    /// Why.
    pub reason: ChangeReason,
}

impl AirbyteRecordMessageMetaChange {
    /// The change "`field` was nulled because of `reason`".
    pub fn nulled(field: impl Into<String>, reason: ChangeReason) -> Self {
        Self {
            field: field.into(),
            change: Change::Nulled,
            reason,
        }
    }
}

/// What was done to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Change {
    /// Replaced by null.
    Nulled,
    /// Shortened.
    Truncated,
}

/// The closed set of reasons the protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeReason {
    /// The record was too large for the source.
    SourceRecordSizeLimitation,
    /// The record was too large for the destination.
    DestinationRecordSizeLimitation,
    /// The record was too large for the platform.
    PlatformRecordSizeLimitation,
    /// The field was too large for the source.
    SourceFieldSizeLimitation,
    /// The field was too large for the destination.
    DestinationFieldSizeLimitation,
    /// The field was too large for the platform.
    PlatformFieldSizeLimitation,
    /// The source could not serialise the value.
    SourceSerializationError,
    /// The destination could not serialise the value.
    DestinationSerializationError,
    /// The platform could not serialise the value.
    PlatformSerializationError,
    /// The source could not fetch the value.
    SourceRetrievalError,
    /// The value does not fit the destination's column type.
    DestinationTypecastError,
}

/// Where the file that comes with a record is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteRecordMessageFileReference {
    /// Where the platform staged the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_file_url: Option<String>,
    /// The file's path relative to the source's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file_relative_path: Option<String>,
    /// The file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<i64>,
}
