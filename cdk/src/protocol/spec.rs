//! SPEC: what a connector accepts as config.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DestinationSyncMode;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorSpecification {
    #[serde(
        rename = "documentationUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub documentation_url: Option<String>,
    #[serde(
        rename = "changelogUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub changelog_url: Option<String>,
    #[serde(rename = "connectionSpecification")]
    pub connection_specification: Value,
    #[serde(
        rename = "supportsIncremental",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_incremental: Option<bool>,
    #[serde(
        rename = "supportsNormalization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_normalization: Option<bool>,
    #[serde(
        rename = "supportsDBT",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub supports_dbt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_destination_sync_modes: Option<Vec<DestinationSyncMode>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_auth: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

impl ConnectorSpecification {
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
