//! The generator's config.

use cdk::{Error, JsonSchema, Result, Secret};
use serde::Deserialize;

/// Generates records of a few typed columns.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(title = "Generator Source Spec")]
pub struct GeneratorConfig {
    /// Records to generate per stream.
    #[serde(default = "default_count")]
    #[schemars(range(min = 0))]
    pub count: u64,
    /// Names of the streams to generate; every stream has the same columns.
    #[serde(default = "default_streams")]
    pub streams: Vec<String>,
    /// Records between two state messages.
    #[serde(default = "default_checkpoint_interval")]
    #[schemars(range(min = 1))]
    pub checkpoint_interval: u64,
    /// Streams generated at the same time.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1))]
    pub max_concurrent_streams: usize,
    /// An API key. The generator does not use it; it shows that secrets never reach the output.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Make every stream fail after this many records, to try error handling.
    #[serde(default)]
    pub fail_after: Option<u64>,
}

fn default_count() -> u64 {
    1_000
}

fn default_streams() -> Vec<String> {
    vec!["users".into()]
}

fn default_checkpoint_interval() -> u64 {
    10_000
}

fn default_concurrency() -> usize {
    2
}

/// Rules the JSON Schema cannot say.
impl cdk::config::Validate for GeneratorConfig {
    fn validate(&self) -> Result<()> {
        if self.streams.is_empty() {
            return Err(Error::config("'streams' must name at least one stream"));
        }
        if let Some(name) = self.streams.iter().find(|s| s.trim().is_empty()) {
            return Err(Error::config(format!("stream name '{name}' is blank")));
        }
        Ok(())
    }
}
