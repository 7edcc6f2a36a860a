//! Closing a stream: the overwrite swap, the indexes made after loading, and removing the
//! `_airbyte_meta` defaults the load used.

use cdk::Result;

use super::PgWriter;
use crate::connect::pg_error;
use crate::sql;

impl PgWriter {
    /// Removes the `_airbyte_meta` defaults set on final tables this sync created. Not worth
    /// failing a sync for (or waiting long on a reader's lock).
    pub(super) async fn drop_defaults(&self, id: usize) {
        for table in &self.streams[id].tables {
            if let Some(name) = &table.drop_default {
                let script = format!(
                    "SET lock_timeout = '5s'; {}; RESET lock_timeout",
                    sql::drop_meta_default(name)
                );
                if let Err(e) = self.execute(&script).await {
                    tracing::warn!(table = %name, "cannot remove the _airbyte_meta default: {e}");
                }
            }
        }
    }

    /// Makes the stream's indexes; with a second connection (its transaction committed by
    /// now), every other one is built there at the same time.
    pub(super) async fn create_indexes(&self, id: usize) -> Result<()> {
        let mut statements: Vec<String> = Vec::new();
        for table in &self.streams[id].tables {
            // Those made at open exist by now (renamed with a swapped-in table).
            for (suffix, columns) in &table.indexes {
                if !table.open_indexes.contains(suffix) {
                    statements.push(sql::create_index(&table.target, suffix, columns));
                }
            }
        }
        let other_connection = self.dedup_lane.is_some() || self.second.is_some();
        let theirs: Vec<String> = match other_connection {
            true => (1..statements.len())
                .step_by(2)
                .map(|i| statements[i].clone())
                .collect(),
            false => Vec::new(),
        };
        let mine: Vec<&String> = match other_connection {
            true => statements.iter().step_by(2).collect(),
            false => statements.iter().collect(),
        };
        let first = async {
            if let Err(e) = self.execute(sql::INDEX_SETTINGS).await {
                tracing::debug!("cannot size the index builds' memory: {e}");
            }
            for statement in mine {
                self.execute(statement).await?;
            }
            Ok(())
        };
        let other = async {
            if theirs.is_empty() {
                return Ok(());
            }
            let script = format!("{};\n{}", sql::INDEX_SETTINGS, theirs.join(";\n"));
            tracing::debug!(sql = script, "executing on the second connection");
            match (&self.dedup_lane, &self.second) {
                (Some(lane), _) => lane.execute(script, "cannot create an index").await,
                (None, Some(second)) => {
                    second.client.batch_execute(&script).await.map_err(pg_error)
                }
                (None, None) => Ok(()),
            }
        };
        tokio::try_join!(first, other).map(|_| ())
    }

    /// Replaces each target table with its loaded tmp table, in one transaction.
    pub(super) async fn swap(&mut self, id: usize) -> Result<()> {
        let stream = &self.streams[id];
        let mut script = vec!["BEGIN".to_string()];
        for table in &stream.tables {
            let Some(tmp) = &table.tmp else { continue };
            script.push(sql::drop_meta_default(tmp));
            script.extend(sql::swap(tmp, &table.target, self.config.drop_cascade));
            for suffix in &table.open_indexes {
                script.push(sql::rename_index(&table.target, tmp, suffix));
            }
        }
        script.push("COMMIT".into());
        let descriptor = stream.descriptor.clone();
        tracing::info!(stream = %descriptor, "swapping in the overwritten tables");
        self.execute(&script.join(";\n")).await.map_err(|e| {
            e.context(format!(
                "cannot replace the tables of stream '{descriptor}'"
            ))
        })
    }
}
