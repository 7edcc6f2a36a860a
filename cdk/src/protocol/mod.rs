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
mod scan;
mod spec;
mod state;
mod trace;

pub use airbyte_type::{AirbyteType, Properties};
pub use catalog::*;
pub use fast::*;
pub use record::*;
pub(crate) use scan::{Prefix, special};
pub use spec::*;
pub use state::*;
pub use trace::*;

use serde::{Deserialize, Serialize};

/// One line of the protocol: a `type` and the payload field named after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AirbyteMessage {
    /// `RECORD`: one record of a stream.
    #[serde(rename = "RECORD")]
    Record {
        /// The record.
        record: AirbyteRecordMessage,
    },
    /// `STATE`: a checkpoint; everything before it may be committed.
    #[serde(rename = "STATE")]
    State {
        /// The state.
        state: AirbyteStateMessage,
    },
    /// `LOG`: a log line for the platform's logs.
    #[serde(rename = "LOG")]
    Log {
        /// The log line.
        log: AirbyteLogMessage,
    },
    /// `SPEC`: the answer to `spec`.
    #[serde(rename = "SPEC")]
    Spec {
        /// The connector's specification.
        spec: ConnectorSpecification,
    },
    /// `CONNECTION_STATUS`: the answer to `check`.
    #[serde(rename = "CONNECTION_STATUS")]
    ConnectionStatus {
        /// Whether the config works, and why not.
        #[serde(rename = "connectionStatus")]
        connection_status: AirbyteConnectionStatus,
    },
    /// `CATALOG`: the answer to `discover`.
    #[serde(rename = "CATALOG")]
    Catalog {
        /// The streams found.
        catalog: AirbyteCatalog,
    },
    /// `TRACE`: an error, estimate, stream status or analytics event.
    #[serde(rename = "TRACE")]
    Trace {
        /// The trace.
        trace: AirbyteTraceMessage,
    },
    /// `CONTROL`: a request to the platform (store an updated config).
    #[serde(rename = "CONTROL")]
    Control {
        /// The request.
        control: AirbyteControlMessage,
    },
    /// `DESTINATION_CATALOG`: the operations a destination supports.
    #[serde(rename = "DESTINATION_CATALOG")]
    DestinationCatalog {
        /// The operations.
        destination_catalog: DestinationCatalog,
    },
    /// A message type this version does not know; kept so readers can skip it.
    #[serde(other)]
    Unknown,
}

/// `AirbyteLogMessage.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Unrecoverable: the connector stops.
    Fatal,
    /// An error.
    Error,
    /// A warning.
    Warn,
    /// Information.
    Info,
    /// Debugging detail.
    Debug,
    /// Finer debugging detail.
    Trace,
}

/// `LOG`: a line for the platform's logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteLogMessage {
    /// How severe.
    pub level: LogLevel,
    /// The text (already masked).
    pub message: String,
    /// A stack trace, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
}

/// `AirbyteConnectionStatus.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectionStatus {
    /// The config works.
    Succeeded,
    /// The config does not work; `message` says why.
    Failed,
}

/// `CONNECTION_STATUS`: the answer to `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteConnectionStatus {
    /// Whether the config works.
    pub status: ConnectionStatus,
    /// Why it does not, for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `CONTROL`: the connector asks the platform to store an updated config (e.g. a rotated token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlMessage {
    /// Always `CONNECTOR_CONFIG`.
    #[serde(rename = "type")]
    pub control_type: ControlType,
    /// When it was emitted (ms since the epoch).
    pub emitted_at: f64,
    /// The config to store.
    #[serde(
        rename = "connectorConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_config: Option<AirbyteControlConnectorConfigMessage>,
}

/// `AirbyteControlMessage.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlType {
    /// Store an updated connector config.
    #[serde(rename = "CONNECTOR_CONFIG")]
    ConnectorConfig,
}

/// The config a CONTROL message asks the platform to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirbyteControlConnectorConfigMessage {
    /// The whole updated config.
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// Milliseconds since the Unix epoch, as RECORD `emitted_at` wants it.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
