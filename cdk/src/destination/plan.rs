//! Write plans: how each configured stream is written, resolved once by the loader from the
//! stream's `destination_sync_mode` and generation ids and checked against the modes the
//! destination supports, so that no writer derives it again.

use crate::protocol::{ConfiguredAirbyteStream, DestinationSyncMode};
use crate::{Error, Result};

/// How a stream's records land in the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Records are added to what the destination already holds.
    Append,
    /// This sync's records replace the stream's earlier data once the sync succeeds (full
    /// refresh overwrite, or a truncate refresh); a failed sync leaves the earlier data as it
    /// was.
    Overwrite,
    /// Records are merged into the stream's data by primary key: the latest record of a key
    /// (by cursor, then by emission) wins.
    AppendDedup,
    /// A truncate refresh of a deduplicated stream: this sync's records, merged by primary key,
    /// replace the stream's earlier data once the sync succeeds.
    OverwriteDedup,
}

impl WriteMode {
    /// Whether this sync's data replaces the stream's earlier data at a successful end.
    pub fn replaces(self) -> bool {
        matches!(self, Self::Overwrite | Self::OverwriteDedup)
    }

    /// Whether records are merged by primary key.
    pub fn dedups(self) -> bool {
        matches!(self, Self::AppendDedup | Self::OverwriteDedup)
    }
}

/// What the loader resolved for one configured stream, handed to
/// [`BatchWriter::open`](super::BatchWriter::open).
///
/// The rules, in the order they are checked:
/// 1. the stream's `destination_sync_mode` must be one the destination supports;
/// 2. `minimum_generation_id` must be absent, `0` (keep earlier generations: append) or equal
///    to `generation_id` (replace them: a truncate refresh); anything else asks for a hybrid
///    refresh, which is refused;
/// 3. `overwrite`, and any mode with a truncate refresh, replaces the stream's data, which needs
///    `overwrite` among the supported modes.
///
/// `append` + truncate refresh is [`WriteMode::Overwrite`]; `append_dedup` + truncate refresh
/// is [`WriteMode::OverwriteDedup`]. Every violation is a config error naming the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamPlan {
    /// How records are written.
    pub mode: WriteMode,
    /// The stream's generation in this sync, when the catalog gives one. Rows are tagged with
    /// it (`0` when absent); an overwrite may resume a load of this same generation.
    pub generation_id: Option<i64>,
}

impl StreamPlan {
    /// A plan with the given mode and generation (for writers' own tests).
    pub fn new(mode: WriteMode, generation_id: Option<i64>) -> Self {
        Self {
            mode,
            generation_id,
        }
    }

    /// Resolves the plan of `stream` for a destination supporting `supported` (the list its
    /// [`Destination::supported_sync_modes`](super::Destination::supported_sync_modes) gives).
    pub fn resolve(
        stream: &ConfiguredAirbyteStream,
        supported: &[DestinationSyncMode],
    ) -> Result<Self> {
        let requested = stream.destination_sync_mode;
        let refused = |why: String| {
            Error::config(format!("stream '{}': {why}", stream.descriptor()))
                .for_stream(stream.descriptor())
        };
        if !supported.contains(&requested) {
            return Err(refused(format!(
                "destination sync mode '{}' is not supported (this destination supports {})",
                requested.as_str(),
                names(supported)
            )));
        }
        let truncate_refresh = match stream.minimum_generation_id.unwrap_or(0) {
            0 => false,
            minimum if Some(minimum) == stream.generation_id => true,
            minimum => {
                return Err(refused(format!(
                    "minimum_generation_id {minimum} is neither 0 nor the generation_id {}; \
                     hybrid refreshes are not supported",
                    stream
                        .generation_id
                        .map_or_else(|| "(none)".to_string(), |g| g.to_string())
                )));
            }
        };
        let mode = match (requested, truncate_refresh) {
            (DestinationSyncMode::Append, false) => WriteMode::Append,
            (DestinationSyncMode::Append, true) | (DestinationSyncMode::Overwrite, _) => {
                WriteMode::Overwrite
            }
            (DestinationSyncMode::AppendDedup, false) => WriteMode::AppendDedup,
            (DestinationSyncMode::AppendDedup, true) => WriteMode::OverwriteDedup,
            (other @ (DestinationSyncMode::Update | DestinationSyncMode::SoftDelete), _) => {
                return Err(refused(format!(
                    "destination sync mode '{}' is not supported (the loader writes append, \
                     overwrite and append_dedup)",
                    other.as_str()
                )));
            }
        };
        if mode.replaces() && !supported.contains(&DestinationSyncMode::Overwrite) {
            return Err(refused(format!(
                "a truncate refresh (minimum_generation_id equal to generation_id) replaces the \
                 stream's data, which this destination does not support (it supports {})",
                names(supported)
            )));
        }
        Ok(Self {
            mode,
            generation_id: stream.generation_id,
        })
    }
}

fn names(modes: &[DestinationSyncMode]) -> String {
    if modes.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = modes.iter().map(|m| m.as_str()).collect();
    names.join(", ")
}
