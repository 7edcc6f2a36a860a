//! Catalogs: what a source offers (`AirbyteCatalog`) and what a sync asks for (configured).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StreamDescriptor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    FullRefresh,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    Append,
    Overwrite,
    AppendDedup,
    Update,
    SoftDelete,
}

impl DestinationSyncMode {
    /// The protocol's name of the mode (`append`, `append_dedup`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Overwrite => "overwrite",
            Self::AppendDedup => "append_dedup",
            Self::Update => "update",
            Self::SoftDelete => "soft_delete",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AirbyteCatalog {
    pub streams: Vec<AirbyteStream>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStream {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub json_schema: Value,
    pub supported_sync_modes: Vec<SyncMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_cursor: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cursor_field: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_primary_key: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_resumable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_file_based: Option<bool>,
}

impl AirbyteStream {
    /// A stream with a schema and the given sync modes; other fields unset.
    pub fn new(name: impl Into<String>, json_schema: Value, modes: Vec<SyncMode>) -> Self {
        Self {
            name: name.into(),
            namespace: None,
            json_schema,
            supported_sync_modes: modes,
            source_defined_cursor: None,
            default_cursor_field: None,
            source_defined_primary_key: None,
            is_resumable: None,
            is_file_based: None,
        }
    }

    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor::new(self.name.clone(), self.namespace.clone())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteCatalog {
    pub streams: Vec<ConfiguredAirbyteStream>,
}

impl ConfiguredAirbyteCatalog {
    pub fn find(&self, descriptor: &StreamDescriptor) -> Option<&ConfiguredAirbyteStream> {
        self.streams.iter().find(|s| {
            s.stream.name == descriptor.name && s.stream.namespace == descriptor.namespace
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteStream {
    pub stream: AirbyteStream,
    #[serde(default = "default_sync_mode")]
    pub sync_mode: SyncMode,
    #[serde(default = "default_destination_sync_mode")]
    pub destination_sync_mode: DestinationSyncMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_generation_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_object_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_files: Option<bool>,
}

fn default_sync_mode() -> SyncMode {
    SyncMode::FullRefresh
}

fn default_destination_sync_mode() -> DestinationSyncMode {
    DestinationSyncMode::Append
}

impl ConfiguredAirbyteStream {
    /// Configures `stream` with the given modes and nothing else.
    pub fn new(stream: AirbyteStream, sync_mode: SyncMode, dest: DestinationSyncMode) -> Self {
        Self {
            stream,
            sync_mode,
            destination_sync_mode: dest,
            cursor_field: None,
            primary_key: None,
            generation_id: None,
            minimum_generation_id: None,
            sync_id: None,
            destination_object_name: None,
            include_files: None,
        }
    }

    pub fn descriptor(&self) -> StreamDescriptor {
        self.stream.descriptor()
    }

    /// The cursor, resolved as the protocol says: source-defined, then configured, then default.
    pub fn resolved_cursor_field(&self) -> Option<&[String]> {
        let default = self
            .stream
            .default_cursor_field
            .as_deref()
            .filter(|c| !c.is_empty());
        if self.stream.source_defined_cursor == Some(true) {
            return default;
        }
        self.cursor_field
            .as_deref()
            .filter(|c| !c.is_empty())
            .or(default)
    }

    /// The primary key: configured, else source-defined; empty when there is none.
    pub fn resolved_primary_key(&self) -> Vec<Vec<String>> {
        self.primary_key
            .clone()
            .filter(|k| !k.is_empty())
            .or_else(|| self.stream.source_defined_primary_key.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationCatalog {
    pub operations: Vec<DestinationOperation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationOperation {
    pub object_name: String,
    pub sync_mode: DestinationSyncMode,
    pub json_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching_keys: Option<Vec<Vec<String>>>,
}
