//! SPEC: what a connector accepts as config.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DestinationSyncMode;

/// `SPEC`: what a connector accepts as config, and what it supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorSpecification {
    /// The connector's documentation.
    #[serde(
        rename = "documentationUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub documentation_url: Option<String>,
    /// The connector's changelog.
    #[serde(
        rename = "changelogUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub changelog_url: Option<String>,
    /// The JSON Schema of the config.
    #[serde(rename = "connectionSpecification")]
    pub connection_specification: Value,
    /// Whether the source supports incremental reads (deprecated in the protocol).
    #[serde(
        rename = "supportsIncremental",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_incremental: Option<bool>,
    /// Whether the destination supports normalization (deprecated).
    #[serde(
        rename = "supportsNormalization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_normalization: Option<bool>,
    /// Whether the destination supports dbt (deprecated).
    #[serde(
        rename = "supportsDBT",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_dbt: Option<bool>,
    /// The destination sync modes the destination supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_destination_sync_modes: Option<Vec<DestinationSyncMode>>,
    /// OAuth settings, when the connector supports OAuth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_auth: Option<Value>,
    /// The protocol version the connector speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

impl ConnectorSpecification {
    /// A spec with this config schema and nothing else set.
    pub fn new(connection_specification: Value) -> Self {
        Self {
            documentation_url: None,
            changelog_url: None,
            connection_specification,
            supports_incremental: None,
            supports_normalization: None,
            supports_dbt: None,
            supported_destination_sync_modes: None,
            advanced_auth: None,
            protocol_version: None,
        }
    }
}
