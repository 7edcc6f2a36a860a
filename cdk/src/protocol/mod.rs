//! Airbyte protocol messages (protocol package 0.18) as serde types.
//!
//! Names follow `airbyte_protocol.yaml` so they can be grepped against it. Reading is tolerant
//! (unknown fields are ignored, unknown message types decode to [`AirbyteMessage::Unknown`], a
//! state without `type` is LEGACY); writing is strict (we only produce what the schema allows).
//! No I/O lives here.

mod airbyte_type;
mod catalog;
mod fast;
mod record;
mod spec;
mod state;
mod trace;

pub use airbyte_type::{AirbyteType, Properties};
pub use catalog::*;
pub use fast::*;
pub use record::*;
pub use spec::*;
pub use state::*;
pub use trace::*;

use serde::{Deserialize, Serialize};

/// One line of the protocol: a `type` and the payload field named after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AirbyteMessage {
    #[serde(rename = "RECORD")]
    Record { record: AirbyteRecordMessage },
    #[serde(rename = "STATE")]
    State { state: AirbyteStateMessage },
    #[serde(rename = "LOG")]
    Log { log: AirbyteLogMessage },
    #[serde(rename = "SPEC")]
    Spec { spec: ConnectorSpecification },
    #[serde(rename = "CONNECTION_STATUS")]
    ConnectionStatus {
        #[serde(rename = "connectionStatus")]
        connection_status: AirbyteConnectionStatus,
    },
    #[serde(rename = "CATALOG")]
    Catalog { catalog: AirbyteCatalog },
    #[serde(rename = "TRACE")]
    Trace { trace: AirbyteTraceMessage },
    #[serde(rename = "CONTROL")]
    Control { control: AirbyteControlMessage },
    #[serde(rename = "DESTINATION_CATALOG")]
    DestinationCatalog {
        destination_catalog: DestinationCatalog,
    },
    /// A message type this version does not know; kept so readers can skip it.
    #[serde(other)]
    Unknown,
}

impl AirbyteMessage {
    /// Serialises the message as one JSON line (without the newline).
    pub fn to_line(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one line, tolerating unknown fields and types.
    pub fn from_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// `AirbyteLogMessage.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteLogMessage {
    pub level: LogLevel,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectionStatus {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteConnectionStatus {
    pub status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `CONTROL`: the connector asks the platform to store an updated config (e.g. a rotated token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlMessage {
    #[serde(rename = "type")]
    pub control_type: ControlType,
    pub emitted_at: f64,
    #[serde(
        rename = "connectorConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_config: Option<AirbyteControlConnectorConfigMessage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlType {
    #[serde(rename = "CONNECTOR_CONFIG")]
    ConnectorConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlConnectorConfigMessage {
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// Milliseconds since the Unix epoch, as RECORD `emitted_at` wants it.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
