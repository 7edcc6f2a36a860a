//! Catalogs: what a source offers (`AirbyteCatalog`) and what a sync asks for (configured).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StreamDescriptor;

/// How a source reads a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Everything, every time.
    FullRefresh,
    /// Only what changed since the state's cursor.
    Incremental,
}

/// How a destination writes a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationSyncMode {
    /// Add to what is there.
    Append,
    /// Replace what is there.
    Overwrite,
    /// Add, then keep one row per primary key (the latest by cursor).
    AppendDedup,
    /// Upsert by primary key.
    Update,
    /// Delete by primary key.
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

/// `CATALOG`: the streams a source offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AirbyteCatalog {
    /// The streams.
    pub streams: Vec<AirbyteStream>,
}

/// A stream as a source describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteStream {
    /// The stream's name.
    pub name: String,
    /// Its namespace (schema, database), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The JSON Schema of a record.
    pub json_schema: Value,
    /// The sync modes it can be read in.
    pub supported_sync_modes: Vec<SyncMode>,
    /// True when the source decides the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_cursor: Option<bool>,
    /// The cursor an incremental read uses by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cursor_field: Option<Vec<String>>,
    /// The primary key the source knows, as paths of field names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_defined_primary_key: Option<Vec<Vec<String>>>,
    /// True when a full refresh can resume from a state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_resumable: Option<bool>,
    /// True when records carry files.
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

    /// The stream's name and namespace.
    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor::new(self.name.clone(), self.namespace.clone())
    }
}

/// What a sync reads or writes: the configured streams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteCatalog {
    /// The configured streams.
    pub streams: Vec<ConfiguredAirbyteStream>,
}

impl ConfiguredAirbyteCatalog {
    /// The configured stream with this name and namespace.
    pub fn find(&self, descriptor: &StreamDescriptor) -> Option<&ConfiguredAirbyteStream> {
        self.streams.iter().find(|s| {
            s.stream.name == descriptor.name && s.stream.namespace == descriptor.namespace
        })
    }
}

/// A stream as a sync configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfiguredAirbyteStream {
    /// The stream as discovered.
    pub stream: AirbyteStream,
    /// How the source reads it.
    #[serde(default = "default_sync_mode")]
    pub sync_mode: SyncMode,
    /// How the destination writes it.
    #[serde(default = "default_destination_sync_mode")]
    pub destination_sync_mode: DestinationSyncMode,
    /// The cursor the user picked (see [`Self::resolved_cursor_field`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<Vec<String>>,
    /// The primary key the user picked (see [`Self::resolved_primary_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Vec<Vec<String>>>,
    /// This sync's generation of the stream's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<i64>,
    /// Data of generations below this may be removed (truncate refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_generation_id: Option<i64>,
    /// The sync's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<i64>,
    /// The name the destination gives the stream's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_object_name: Option<String>,
    /// True when files are copied along with records.
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

    /// The stream's name and namespace.
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

/// `DESTINATION_CATALOG`: the operations a destination supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationCatalog {
    /// The operations.
    pub operations: Vec<DestinationOperation>,
}

/// One object a destination can write, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationOperation {
    /// The object's name.
    pub object_name: String,
    /// How it is written.
    pub sync_mode: DestinationSyncMode,
    /// The JSON Schema of its records.
    pub json_schema: Value,
    /// The keys an upsert or delete matches on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching_keys: Option<Vec<Vec<String>>>,
}
