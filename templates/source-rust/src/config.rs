//! The config of {{name}}: its JSON Schema is the connector's spec.

use cdk::{Error, JsonSchema, Result, Secret};
use serde::Deserialize;

/// {{title}} source.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(title = "{{title}} Source Spec")]
pub struct Config {
    /// How many items to read.
    #[serde(default = "default_count")]
    pub count: u64,
    /// The API token (masked in every output).
    #[serde(default)]
    pub api_token: Option<Secret>,
}

fn default_count() -> u64 {
    100
}

/// Rules the JSON Schema cannot express, checked by the kit for every command.
impl cdk::config::Validate for Config {
    fn validate(&self) -> Result<()> {
        if self.count > 1_000_000_000 {
            return Err(Error::config(format!("'count' is too large: {}", self.count)));
        }
        Ok(())
    }
}
