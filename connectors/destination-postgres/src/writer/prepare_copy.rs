//! Opening a stream, step 3: the COPY statements of each table, and the `_airbyte_meta`
//! default that lets rows without changes skip that column (PostgreSQL then parses no JSON for
//! most rows).

use cdk::Result;

use super::plan::TablePlan;
use super::{PgWriter, Table};
use crate::names::quote;
use crate::schema::META_COLUMNS;
use crate::sql;

impl PgWriter {
    /// Readies the COPY into `table` (`created`: this sync created the table it loads into);
    /// `plain_meta` is the `_airbyte_meta` of a row without changes in this sync, `generation`
    /// its generation id.
    pub(super) async fn prepare_copy(
        &self,
        table: TablePlan,
        created: bool,
        plain_meta: &str,
        generation: i64,
    ) -> Result<Table> {
        let load_into = table.load_into().clone();
        let copy_into = match &table.stage {
            Some(stage) => quote(stage),
            None => load_into.sql(),
        };
        // Rows may leave `_airbyte_meta` to a default only in tables nobody else reads yet:
        // a stage, or a table this sync created.
        let meta_default = table.stage.is_some() || created;
        if meta_default {
            self.execute(&sql::set_meta_default(&copy_into, plain_meta, generation))
                .await?;
        }
        let columns: Vec<String> = table.columns.iter().map(|d| d.name.clone()).collect();
        let plain_columns: Vec<String> = columns
            .iter()
            .filter(|c| !META_COLUMNS[2..].contains(&c.as_str()))
            .cloned()
            .collect();
        let mut indexes = vec![("extracted_at", vec!["_airbyte_extracted_at".to_string()])];
        let open_indexes = table.merge_indexes.iter().map(|(s, _)| *s).collect();
        indexes.extend(table.merge_indexes);
        indexes.extend(table.late_indexes);
        Ok(Table {
            copy_plain_sql: meta_default
                .then(|| sql::copy(&copy_into, &plain_columns, self.format)),
            drop_default: (table.stage.is_none() && created && table.tmp.is_none())
                .then(|| load_into.clone()),
            copy_sql: sql::copy(&copy_into, &columns, self.format),
            target: table.target,
            tmp: table.tmp,
            stage: table.stage,
            load_into,
            stage_columns: table.columns,
            columns,
            indexes,
            open_indexes,
        })
    }
}
