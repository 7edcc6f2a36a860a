//! What a connection keeps between runs: the latest acknowledged state per stream (a `--state`
//! file for the next read) and the generation and sync ids, as the platform keeps them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cdk::protocol::*;

/// The latest acknowledged state per stream (and the global one), as a `--state` file.
pub struct SavedState {
    pub streams: BTreeMap<String, AirbyteStateMessage>,
    pub global: Option<AirbyteStateMessage>,
    path: PathBuf,
}

impl SavedState {
    pub fn load(path: &Path) -> Result<Self> {
        let mut saved = Self {
            streams: Default::default(),
            global: None,
            path: path.to_path_buf(),
        };
        if path.is_file() {
            let text = std::fs::read_to_string(path)?;
            let input =
                InputState::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            input.messages.into_iter().for_each(|m| saved.apply(m));
        }
        Ok(saved)
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.global.is_none()
    }

    pub fn apply(&mut self, mut state: AirbyteStateMessage) {
        state.source_stats = None;
        state.destination_stats = None;
        match state.kind() {
            AirbyteStateType::Stream => {
                if let Some(s) = &state.stream {
                    self.streams.insert(s.stream_descriptor.to_string(), state);
                }
            }
            _ => self.global = Some(state),
        }
    }

    pub fn forget(&mut self, stream: &StreamDescriptor) {
        self.streams.remove(&stream.to_string());
    }

    /// Writes the file atomically (temp file + rename).
    pub fn save(&self) -> Result<()> {
        self.save_to(&self.path)
    }

    pub fn save_to(&self, path: &Path) -> Result<()> {
        let all: Vec<&AirbyteStateMessage> = self.streams.values().chain(&self.global).collect();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&all)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Generation and sync ids across runs, kept beside the state.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Generations {
    sync_id: i64,
    streams: BTreeMap<String, i64>,
}

/// Fills in `sync_id`, `generation_id` and `minimum_generation_id` where the catalog leaves
/// them out: an overwrite stream starts a new generation (and asks for older ones to be
/// replaced) unless it is resuming a sync that failed, whose generation it keeps so the
/// destination keeps what that attempt wrote; other streams keep theirs, minimum 0.
pub fn assign_generations(
    configured: &mut ConfiguredAirbyteCatalog,
    path: &Path,
    state: &SavedState,
) -> Result<()> {
    let mut ids: Generations = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("cannot read {}", path.display()))?,
        Err(_) => Generations::default(),
    };
    ids.sync_id += 1;
    for stream in &mut configured.streams {
        let key = stream.descriptor().to_string();
        let replaces = stream.destination_sync_mode == DestinationSyncMode::Overwrite;
        let resuming = state.streams.contains_key(&key);
        let current = ids.streams.get(&key).copied().unwrap_or(0);
        let generation = stream.generation_id.unwrap_or(if replaces && !resuming {
            current + 1
        } else {
            current
        });
        stream.generation_id = Some(generation);
        stream
            .minimum_generation_id
            .get_or_insert(if replaces { generation } else { 0 });
        stream.sync_id.get_or_insert(ids.sync_id);
        ids.streams.insert(key, generation);
    }
    std::fs::write(path, serde_json::to_vec_pretty(&ids)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
