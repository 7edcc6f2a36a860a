//! The destination side: the [`Destination`] trait, and the batching [`load`] helper that
//! resolves each stream's write mode ([`StreamPlan`]), turns stdin into per-stream batches for a
//! [`BatchWriter`] and acknowledges states only after the records before them are committed.

mod batch;
mod decode;
pub mod fields;
mod loader;
mod plan;
mod stop;

pub use batch::{Batch, RecordRef};
pub use loader::{BatchWriter, LoaderOptions, Outcome, StreamId, load};
pub use plan::{StreamPlan, WriteMode};

use std::io::Read;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::Result;
use crate::output::Output;
use crate::protocol::*;

/// A destination connector: `spec`, `check` and `write`. Most destinations implement `write`
/// as a call to [`load`] with their [`BatchWriter`] and
/// `&self.supported_sync_modes()`.
#[async_trait]
pub trait Destination: Send + Sync + Sized + 'static {
    /// The typed config; its JSON Schema is the spec's `connectionSpecification`, and its
    /// [`Validate`](crate::config::Validate) hook runs for every command.
    type Config: DeserializeOwned + JsonSchema + crate::config::Validate + Send + Sync + 'static;

    /// The sync modes this destination handles: written into the spec, and the list
    /// [`load`] checks each configured stream against ([`StreamPlan::resolve`]). The loader
    /// plans `append`, `overwrite` and `append_dedup`; a truncate refresh (any mode with
    /// `minimum_generation_id == generation_id`) needs `overwrite` here. The default is
    /// `append` and `overwrite`.
    fn supported_sync_modes(&self) -> Vec<DestinationSyncMode> {
        vec![DestinationSyncMode::Append, DestinationSyncMode::Overwrite]
    }

    /// The spec: the config type's JSON Schema and the supported sync modes.
    fn spec(&self) -> ConnectorSpecification {
        let mut spec =
            ConnectorSpecification::new(crate::spec::connection_specification::<Self::Config>());
        spec.supported_destination_sync_modes = Some(self.supported_sync_modes());
        spec.supports_incremental = Some(true);
        spec
    }

    /// Verifies the destination can be written with this config.
    async fn check(&self, config: &Self::Config) -> Result<()>;

    /// Consumes the messages of `input` and writes their records.
    async fn write(
        &self,
        config: &Self::Config,
        catalog: &ConfiguredAirbyteCatalog,
        input: Input,
        output: &Output,
    ) -> Result<()>;
}

/// The message stream a destination reads (stdin in production, anything in tests).
pub struct Input(Box<dyn Read + Send>);

impl Input {
    /// Reads the process's stdin.
    pub fn stdin() -> Self {
        Self(Box::new(std::io::stdin()))
    }

    /// Reads from `reader`.
    pub fn new(reader: impl Read + Send + 'static) -> Self {
        Self(Box::new(reader))
    }

    pub(crate) fn into_inner(self) -> Box<dyn Read + Send> {
        self.0
    }
}
