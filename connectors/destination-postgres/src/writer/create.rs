//! Opening a stream, step 2: creates what its [`StreamTables`] plan needs in the database —
//! schemas, tables (or brings existing ones up to date), an overwrite's tmp tables, dedup
//! stages and the indexes the merge uses.

use std::collections::HashMap;

use cdk::Result;

use super::PgWriter;
use super::plan::{StreamTables, TablePlan};
use crate::connect::pg_error;
use crate::names::TableName;
use crate::sql::{self, ColumnDef};

impl PgWriter {
    /// Creates the stream's schemas and tables. Returns, per table, whether this sync created
    /// the table it loads into (then nobody else reads it yet).
    pub(super) async fn create(&mut self, stream: &StreamTables) -> Result<Vec<bool>> {
        self.execute(&sql::create_schema(&stream.schema)).await?;
        if let Some(internal) = &stream.internal {
            self.execute(&sql::create_schema(internal)).await?;
        }
        let mut created = Vec::with_capacity(stream.tables.len());
        for table in &stream.tables {
            created.push(self.create_table(table, stream.generation_id).await?);
        }
        Ok(created)
    }

    async fn create_table(&mut self, table: &TablePlan, generation: Option<i64>) -> Result<bool> {
        let created = match &table.tmp {
            Some(tmp) => {
                self.prepare_tmp(tmp, &table.columns, generation).await?;
                true
            }
            None => self.ensure_table(&table.target, &table.columns).await?,
        };
        if let Some(stage) = &table.stage {
            if !std::mem::replace(&mut self.stages_sized, true) {
                // Stages are temporary tables: give them room in memory (possible only before
                // the session's first one; the server allocates as they fill).
                if let Err(e) = self.execute(sql::STAGE_BUFFERS).await {
                    tracing::debug!("cannot size the stages' buffers: {e}");
                }
            }
            self.execute(&sql::create_stage(stage, &table.columns))
                .await?;
        }
        for (suffix, columns) in &table.merge_indexes {
            self.execute(&sql::create_index(table.load_into(), suffix, columns))
                .await?;
        }
        Ok(created)
    }

    /// Creates `table` with `columns`, or brings an existing one up to date: missing columns
    /// are added, columns whose type changed are converted; extra columns are kept.
    /// Returns whether the table was created.
    async fn ensure_table(&mut self, table: &TableName, columns: &[ColumnDef]) -> Result<bool> {
        let existing: Vec<(String, String)> = self
            .client
            .query(sql::TABLE_COLUMNS, &[&table.schema, &table.name])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if existing.is_empty() {
            self.execute(&sql::create_table(table, columns)).await?;
            return Ok(true);
        }
        let types: HashMap<&str, &str> = existing
            .iter()
            .map(|(n, t)| (n.as_str(), t.split('(').next().unwrap_or(t).trim()))
            .collect();
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        for column in columns {
            match types.get(column.name.as_str()) {
                None => missing.push(column.clone()),
                Some(&old) if old != column.ty.catalog_name() => {
                    changed.push((column.name.clone(), old.to_string(), column.ty));
                }
                Some(_) => {}
            }
        }
        if missing.is_empty() && changed.is_empty() {
            return Ok(false);
        }
        if !changed.is_empty() && !self.safe_cast_ready {
            self.execute(sql::SAFE_CAST_FUNCTION).await?;
            self.safe_cast_ready = true;
        }
        for (name, old, new) in &changed {
            tracing::info!(table = %table, column = %name, from = %old, to = new.ddl(), "changing a column's type");
        }
        for c in &missing {
            tracing::info!(table = %table, column = %c.name, "adding a column");
        }
        self.execute(&sql::evolve(table, &missing, &changed))
            .await?;
        Ok(false)
    }

    /// Makes `tmp` ready for an overwrite: kept when it holds only rows of this generation
    /// (a retry resumes), else recreated empty.
    async fn prepare_tmp(
        &mut self,
        tmp: &TableName,
        columns: &[ColumnDef],
        generation: Option<i64>,
    ) -> Result<()> {
        let exists = !self
            .client
            .query(sql::TABLE_COLUMNS, &[&tmp.schema, &tmp.name])
            .await
            .map_err(pg_error)?
            .is_empty();
        let mut keep = false;
        if exists && let Some(generation) = generation {
            let other = format!(
                "SELECT 1 FROM {} WHERE \"_airbyte_generation_id\" IS DISTINCT FROM $1 LIMIT 1",
                tmp.sql()
            );
            keep = self
                .client
                .query_opt(&other, &[&generation])
                .await
                .map_err(pg_error)?
                .is_none();
        }
        if exists && !keep {
            self.execute(&sql::drop_table(tmp, true)).await?;
        }
        if keep {
            tracing::info!(table = %tmp, generation, "resuming an interrupted overwrite");
        }
        self.ensure_table(tmp, columns).await.map(|_| ())
    }
}
