//! Dedup merges: the staged rows of a stream go into its table by one set-based upsert
//! ([`sql::upsert`]). A stream merges every [`merge_every`] staged records on its own, in the
//! background (the server merges while the next rows are encoded), and once more at commit;
//! all of it inside the commit's transaction of the connection that staged the rows (the
//! first one, or the [dedup lane](super::dedup_lane) for its half of the keys).

use std::collections::HashSet;

use cdk::{Error, Result};

use super::PgWriter;
use crate::sql;

/// Staged records of a stream that start a background merge:
/// `DESTINATION_POSTGRES_MERGE_EVERY`, else 50,000.
pub(super) fn merge_every() -> u64 {
    std::env::var("DESTINATION_POSTGRES_MERGE_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// Key hashes a [`KeyWindow`] keeps at most; past them it assumes repeated keys.
const WINDOW_KEYS: usize = 1 << 20;

/// The key hashes of a split stream's rows staged on one lane since its last merge: when no
/// hash repeats, no two staged rows share a key (equal keys hash alike), and the merge skips
/// picking the latest row per key (a sort of the whole stage).
#[derive(Default)]
pub(super) struct KeyWindow {
    keys: HashSet<u64>,
    repeated: bool,
}

impl KeyWindow {
    /// Notes staged rows' key hashes.
    pub fn add(&mut self, hashes: &[u64]) {
        if self.repeated {
            return;
        }
        for &hash in hashes {
            if !self.keys.insert(hash) || self.keys.len() > WINDOW_KEYS {
                self.repeated = true;
                self.keys = HashSet::new();
                return;
            }
        }
    }

    /// Whether the staged rows have distinct keys (known only for split streams, whose
    /// `split` is true); empties the window for the next merge.
    pub fn take_distinct(&mut self, split: bool) -> bool {
        let distinct = split && !self.repeated;
        self.keys.clear();
        self.repeated = false;
        distinct
    }
}

impl PgWriter {
    /// The script merging stream `id`'s stages on `lane` into its tables; `empty_stages`
    /// also empties them for more rows in the same transaction.
    pub(super) fn merge_script(
        &mut self,
        id: usize,
        lane: usize,
        empty_stages: bool,
    ) -> Option<String> {
        let stream = &mut self.streams[id];
        let distinct = stream.windows[lane].take_distinct(stream.split);
        let stream = &self.streams[id];
        let dedup = stream.dedup.as_ref()?;
        let main = &stream.tables[0];
        let stage = main.stage.as_deref().unwrap_or_default();
        let mut script = vec![sql::MERGE_SETTINGS.to_string()];
        let children = &stream.tables[1..1 + stream.children];
        if !children.is_empty() {
            script.push(sql::touched_rows(
                &main.load_into,
                stage,
                &dedup.primary_key,
            ));
        }
        script.push(sql::upsert(
            &main.load_into,
            stage,
            &main.columns,
            dedup,
            distinct,
        ));
        for child in children {
            script.push(sql::replace_children(
                &main.load_into,
                &child.load_into,
                child.stage.as_deref().unwrap_or_default(),
                &child.columns,
            ));
        }
        if empty_stages {
            let stages: Vec<&str> = stream.tables[..1 + stream.children]
                .iter()
                .filter_map(|t| t.stage.as_deref())
                .collect();
            script.push(sql::truncate_stages(&stages));
        }
        Some(script.join(";\n"))
    }

    /// Merges staged rows of stream `id` into its table (inside the open transaction).
    pub(super) async fn merge(&mut self, id: usize) -> Result<()> {
        let Some(script) = self.merge_script(id, 0, false) else {
            return Ok(());
        };
        let descriptor = self.streams[id].descriptor.clone();
        self.execute(&script)
            .await
            .map_err(|e| e.context(format!("cannot deduplicate stream '{descriptor}'")))
    }

    /// After `records` more records of stream `id` went into COPY: starts a background merge
    /// when the stream staged [`merge_every`] records since its last one.
    pub(super) async fn merge_if_due(&mut self, id: usize, records: u64) -> Result<()> {
        let stream = &mut self.streams[id];
        if stream.dedup.is_none() {
            return Ok(());
        }
        stream.since_merge += records;
        if stream.since_merge < self.merge_every || self.merging.is_some() {
            return Ok(());
        }
        self.streams[id].since_merge = 0;
        self.finish_copy().await?;
        let Some(script) = self.merge_script(id, 0, true) else {
            return Ok(());
        };
        let descriptor = self.streams[id].descriptor.clone();
        tracing::debug!(stream = %descriptor, "merging staged rows");
        let client = self.client.clone();
        self.merging = Some(tokio::spawn(async move {
            client.batch_execute(&script).await.map_err(|e| {
                crate::connect::pg_error(e)
                    .context(format!("cannot deduplicate stream '{descriptor}'"))
            })
        }));
        Ok(())
    }

    /// Waits for the background merge, if any, then sends the rows held meanwhile.
    pub(super) async fn wait_merge(&mut self) -> Result<()> {
        let Some(merging) = self.merging.take() else {
            return Ok(());
        };
        merging
            .await
            .map_err(|e| Error::system(format!("the merge task stopped: {e}")))??;
        self.held_bytes = 0;
        for (id, t, plain, data) in std::mem::take(&mut self.held) {
            self.copy_rows(id, t, plain, data).await?;
        }
        Ok(())
    }
}
