//! The source half of the acceptance suite: [`SourceSuite`] names a source binary and its
//! fixtures; its runner (`runner.rs`) drives spec, check, discover, basic read, full refresh
//! twice, incremental (second read, resume from the middle, future state) and bad catalogs,
//! and hands what the source printed to the [`checks`].

pub mod checks;
mod runner;

use std::path::PathBuf;

use serde_json::Value;

use crate::protocol::*;
use crate::testing::capture::Captured;

/// A source and its fixtures (Airbyte's `integration_tests/` files, as JSON values).
#[derive(Debug, Clone, Default)]
pub struct SourceSuite {
    /// The source's binary.
    pub bin: PathBuf,
    /// A config every command must succeed with.
    pub config: Value,
    /// A config that `check` must answer with FAILED (exit 0).
    pub invalid_config: Value,
    /// The configured catalog for the reads.
    pub catalog: Value,
    /// A state far in the future: reading from it returns no records. `None` skips that check.
    pub future_state: Option<Value>,
    /// Extra arguments for every command (e.g. `--manifest-path`).
    pub extra_args: Vec<String>,
    /// Environment variables for every command.
    pub env: Vec<(String, String)>,
    /// Streams allowed to have no records.
    pub empty_streams: Vec<String>,
}

/// True when `state` is a STREAM state of `stream` or a GLOBAL state holding it.
fn covers(state: &AirbyteStateMessage, stream: &StreamDescriptor) -> bool {
    match (&state.stream, &state.global) {
        (Some(st), _) => st.stream_descriptor == *stream,
        (None, Some(g)) => g
            .stream_states
            .iter()
            .any(|st| st.stream_descriptor == *stream),
        _ => false,
    }
}

impl Captured {
    /// STREAM states of one stream (or GLOBAL states holding it), in order.
    pub fn states_of_descriptor(&self, stream: &StreamDescriptor) -> Vec<&AirbyteStateMessage> {
        self.states()
            .into_iter()
            .filter(|s| covers(s, stream))
            .collect()
    }
}
