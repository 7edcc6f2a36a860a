//! A connector development kit for the Airbyte protocol.
//!
//! A source implements [`Source`] (usually through [`Stream`]s), a destination implements
//! [`Destination`] (usually through [`destination::load`] and a [`destination::BatchWriter`]);
//! `main` calls [`entrypoint::run_source`] or [`entrypoint::run_destination`]. The kit does the
//! protocol, the command line, config validation, state, statuses, errors and secret masking.

#![warn(missing_docs)]

pub mod config;
pub mod destination;
pub mod entrypoint;
mod error;
pub mod json;
pub mod logging;
pub mod output;
pub mod protocol;
pub mod secrets;
pub mod source;
pub mod spec;
pub mod testing;

pub use destination::Destination;
pub use entrypoint::CliOptions;
pub use error::{Error, IoResultExt, Result, RetryPolicy, chain_text, retry};
pub use output::Output;
pub use secrets::Secret;
pub use source::{Estimate, ReadContext, ReadOptions, RecordWriter, Source, Stream, TrustedJson};

/// Re-exports connectors need in their signatures.
pub use async_trait::async_trait;
pub use schemars;
pub use schemars::JsonSchema;
