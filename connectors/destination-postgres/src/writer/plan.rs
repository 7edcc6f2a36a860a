//! Opening a stream, step 1: the plan of its tables, made without touching the database —
//! where each table lives and with which columns, where its rows are loaded (the table itself,
//! an overwrite's tmp table, a dedup stage) and which indexes the load needs first.

use cdk::destination::{StreamId, StreamPlan};
use cdk::protocol::{ConfiguredAirbyteStream, StreamDescriptor};
use cdk::{Error, Result};

use crate::config::{CdcDeletionMode, PostgresConfig};
use crate::names::{TableName, compatible, raw_table_name};
use crate::schema::{self, CDC_DELETED_AT, META_COLUMNS, PgType, StreamLayout};
use crate::sql::{ColumnDef, Dedup};

/// Every table of a stream and how it is loaded.
pub(super) struct StreamTables {
    pub descriptor: StreamDescriptor,
    /// This sync's generation: an overwrite resumes a tmp table holding only its rows.
    pub generation_id: Option<i64>,
    /// The schema of the tables readers see.
    pub schema: String,
    /// The schema of tmp tables (and of raw tables), created when the stream uses it.
    pub internal: Option<String>,
    /// `None` for raw tables (`disable_type_dedupe`).
    pub layout: Option<StreamLayout>,
    pub dedup: Option<Dedup>,
    /// The main table first, then the child tables of the flattened layout, then the kept raw
    /// table (basic normalization with `keep_raw_tables`).
    pub tables: Vec<TablePlan>,
    /// How many child tables follow the main table.
    pub children: usize,
    /// The index of the kept raw table in `tables`.
    pub raw_table: Option<usize>,
}

/// One table of a stream.
pub(super) struct TablePlan {
    /// The table readers see.
    pub target: TableName,
    pub columns: Vec<ColumnDef>,
    /// Overwrite: the table loaded, swapped in for `target` when the sync succeeds.
    pub tmp: Option<TableName>,
    /// Dedup: the session's staging table, merged into the loaded table on commit.
    pub stage: Option<String>,
    /// Indexes the merge needs on the loaded table, made before loading: (suffix, columns).
    pub merge_indexes: Vec<(&'static str, Vec<String>)>,
    /// Indexes of a dedup table the merge does not use (the cursor's), made at close so the
    /// load does not maintain them row by row.
    pub late_indexes: Vec<(&'static str, Vec<String>)>,
}

impl TablePlan {
    /// The table rows end up in during this sync: `tmp` when overwriting, else `target`.
    pub fn load_into(&self) -> &TableName {
        self.tmp.as_ref().unwrap_or(&self.target)
    }
}

/// Plans the tables of stream `id` as `plan` (the loader's write mode) and `config` say.
/// Dedup needs a primary key of scalar fields; raw tables are appended, never deduplicated.
pub(super) fn plan_tables(
    config: &PostgresConfig,
    id: StreamId,
    stream: &ConfiguredAirbyteStream,
    plan: StreamPlan,
) -> Result<StreamTables> {
    let descriptor = stream.descriptor();
    let raw = config.disable_type_dedupe;
    let namespace = stream.stream.namespace.as_deref().unwrap_or(&config.schema);
    let (schema, name) = if raw {
        (
            compatible(&config.raw_data_schema.to_lowercase()),
            compatible(&raw_table_name(namespace, &stream.stream.name).to_lowercase()),
        )
    } else {
        (compatible(namespace), compatible(&stream.stream.name))
    };
    let layout = (!raw).then(|| {
        let mut layout = schema::layout(&name, &stream.stream.json_schema, config.flattened());
        if config.basic() {
            schema::add_normalized_at(&mut layout);
        }
        layout
    });
    let dedup = match &layout {
        Some(layout) if plan.mode.dedups() => Some(dedup(config, stream, layout)?),
        _ => None,
    };
    let replace = plan.mode.replaces();
    let internal = compatible(&config.raw_data_schema);
    let mut columns = table_columns(&name, layout.as_ref());
    let children = columns.len() - 1;
    let flattened_children = children > 0;
    let raw_table = (!raw && config.keep_raw_tables()).then(|| {
        columns.push((compatible(&format!("_airbyte_raw_{name}")), raw_defs()));
        columns.len() - 1
    });
    let tables = columns
        .into_iter()
        .enumerate()
        .map(|(t, (table, columns))| {
            let kept_raw = Some(t) == raw_table;
            let tmp = replace.then(|| {
                TableName::new(
                    &internal,
                    compatible(&format!("{schema}_{table}_airbyte_tmp")),
                )
            });
            let merge_indexes = match &dedup {
                Some(dedup) if !kept_raw => merge_indexes(dedup, t == 0, flattened_children),
                _ => Vec::new(),
            };
            let late_indexes = match &dedup {
                Some(Dedup {
                    cursor: Some(cursor),
                    ..
                }) if t == 0 => vec![("cursor", vec![cursor.clone()])],
                _ => Vec::new(),
            };
            TablePlan {
                target: TableName::new(&schema, table),
                columns,
                tmp,
                stage: (dedup.is_some() && !kept_raw).then(|| format!("_airbyte_stage_{id}_{t}")),
                merge_indexes,
                late_indexes,
            }
        })
        .collect();
    Ok(StreamTables {
        descriptor,
        generation_id: plan.generation_id,
        schema,
        internal: (replace || raw).then_some(internal),
        layout,
        dedup,
        tables,
        children,
        raw_table,
    })
}

/// What the dedup upsert of `stream` needs: its key and cursor columns, and the CDC column
/// whose rows delete their key (hard delete mode).
fn dedup(
    config: &PostgresConfig,
    stream: &ConfiguredAirbyteStream,
    layout: &StreamLayout,
) -> Result<Dedup> {
    let name = stream.descriptor().to_string();
    let keys = stream.resolved_primary_key();
    if keys.is_empty() {
        return Err(Error::config(format!(
            "stream '{name}': append_dedup needs a primary key"
        )));
    }
    let primary_key = keys
        .iter()
        .map(|k| column_for(layout, k, "primary key", &name))
        .collect::<Result<Vec<_>>>()?;
    let cursor = stream
        .resolved_cursor_field()
        .map(|c| column_for(layout, c, "cursor", &name))
        .transpose()?;
    let cdc_delete = match config.cdc_deletion_mode {
        CdcDeletionMode::HardDelete => layout
            .main
            .column_of(&[CDC_DELETED_AT.to_string()])
            .map(|c| layout.main.columns[c].name.clone()),
        CdcDeletionMode::SoftDelete => None,
    };
    Ok(Dedup {
        primary_key,
        cursor,
        cdc_delete,
    })
}

/// The column a field path lands in, or a config error naming `what`.
fn column_for(layout: &StreamLayout, path: &[String], what: &str, stream: &str) -> Result<String> {
    layout
        .main
        .column_of(path)
        .map(|c| layout.main.columns[c].name.clone())
        .ok_or_else(|| {
            Error::config(format!(
                "stream '{stream}': the {what} field '{}' is not a scalar field of the stream's schema",
                path.join(".")
            ))
        })
}

/// Every table of a stream (`name` is the main table's) with its columns: the meta columns,
/// then the user columns of the layout, or the raw table's `_airbyte_loaded_at` and
/// `_airbyte_data`.
fn table_columns(name: &str, layout: Option<&StreamLayout>) -> Vec<(String, Vec<ColumnDef>)> {
    let Some(layout) = layout else {
        return vec![(name.to_string(), raw_defs())];
    };
    let user = |l: &schema::Layout| {
        let mut defs = meta_defs();
        defs.extend(
            l.columns
                .iter()
                .map(|c| ColumnDef::new(&c.name, c.ty, false)),
        );
        defs
    };
    let mut tables = vec![(name.to_string(), user(&layout.main))];
    for child in &layout.children {
        tables.push((child.name.clone(), user(&child.layout)));
    }
    tables
}

/// The columns of a raw table: the meta columns, `_airbyte_loaded_at` and `_airbyte_data`.
fn raw_defs() -> Vec<ColumnDef> {
    let mut defs = meta_defs();
    defs.push(ColumnDef::new(
        "_airbyte_loaded_at",
        PgType::TimestampTz,
        false,
    ));
    defs.push(ColumnDef::new("_airbyte_data", PgType::Jsonb, true));
    defs
}

fn meta_defs() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(META_COLUMNS[0], PgType::Varchar, true),
        ColumnDef::new(META_COLUMNS[1], PgType::TimestampTz, true),
        ColumnDef::new(META_COLUMNS[2], PgType::Jsonb, true),
        ColumnDef::new(META_COLUMNS[3], PgType::Bigint, false),
    ]
}

/// The indexes the merge of a dedup stream uses: the key on the main table, the raw id (which
/// links child rows to their parent) when there are child tables.
fn merge_indexes(
    dedup: &Dedup,
    main: bool,
    flattened_children: bool,
) -> Vec<(&'static str, Vec<String>)> {
    let mut needed = Vec::new();
    if main {
        needed.push(("pk", dedup.primary_key.clone()));
    }
    if flattened_children {
        needed.push(("raw_id", vec!["_airbyte_raw_id".to_string()]));
    }
    needed
}

#[cfg(test)]
mod tests {
    use cdk::destination::WriteMode;
    use serde_json::{Value, json};

    use super::*;

    fn config(extra: Value) -> PostgresConfig {
        let mut config = json!({"host": "h", "database": "d", "username": "u"});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(config).unwrap()
    }

    fn stream(primary_key: Value) -> ConfiguredAirbyteStream {
        serde_json::from_value(json!({
            "stream": {"name": "people", "namespace": "crm", "supported_sync_modes": ["incremental"],
                "json_schema": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "updated": {"type": "string"},
                    "tags": {"type": "array"}}}},
            "destination_sync_mode": "append_dedup", "primary_key": primary_key,
            "cursor_field": ["updated"], "generation_id": 4, "minimum_generation_id": 4
        }))
        .unwrap()
    }

    fn plan(mode: WriteMode) -> StreamPlan {
        StreamPlan::new(mode, Some(4))
    }

    #[test]
    fn append_loads_into_the_final_table() {
        let planned = plan_tables(
            &config(json!({})),
            0,
            &stream(json!([["id"]])),
            plan(WriteMode::Append),
        )
        .unwrap();
        assert_eq!(planned.schema, "crm");
        assert_eq!(planned.internal, None);
        assert!(planned.dedup.is_none());
        let [main] = &planned.tables[..] else {
            panic!("one table")
        };
        assert_eq!(main.load_into(), &TableName::new("crm", "people"));
        assert_eq!((main.tmp.as_ref(), main.stage.as_ref()), (None, None));
        let columns: Vec<&str> = main.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns[..4], META_COLUMNS);
        assert_eq!(columns[4..], ["id", "tags", "updated"]);
    }

    #[test]
    fn overwrite_dedup_loads_into_a_tmp_table_through_a_stage() {
        let config = config(json!({"raw_data_schema": "internal"}));
        let planned = plan_tables(
            &config,
            3,
            &stream(json!([["id"]])),
            plan(WriteMode::OverwriteDedup),
        )
        .unwrap();
        assert_eq!(planned.internal.as_deref(), Some("internal"));
        assert_eq!(planned.generation_id, Some(4));
        let dedup = planned.dedup.as_ref().unwrap();
        assert_eq!(dedup.primary_key, ["id"]);
        assert_eq!(dedup.cursor.as_deref(), Some("updated"));
        let main = &planned.tables[0];
        assert_eq!(main.target, TableName::new("crm", "people"));
        assert_eq!(
            main.load_into(),
            &TableName::new("internal", "crm_people_airbyte_tmp")
        );
        assert_eq!(main.stage.as_deref(), Some("_airbyte_stage_3_0"));
        assert_eq!(main.merge_indexes, [("pk", vec!["id".to_string()])]);
        assert_eq!(main.late_indexes, [("cursor", vec!["updated".to_string()])]);
    }

    #[test]
    fn dedup_needs_a_primary_key_of_scalar_fields() {
        let config = config(json!({}));
        let dedup = plan(WriteMode::AppendDedup);
        let none = plan_tables(&config, 0, &stream(json!([])), dedup)
            .err()
            .unwrap();
        assert_eq!(
            none.message,
            "stream 'crm.people': append_dedup needs a primary key"
        );
        let nested = plan_tables(&config, 0, &stream(json!([["missing"]])), dedup)
            .err()
            .unwrap();
        assert!(
            nested
                .message
                .contains("the primary key field 'missing' is not a scalar field"),
            "{}",
            nested.message
        );
    }

    #[test]
    fn raw_tables_are_appended_even_for_dedup() {
        let config = config(json!({"disable_type_dedupe": true}));
        let planned =
            plan_tables(&config, 0, &stream(json!([])), plan(WriteMode::AppendDedup)).unwrap();
        assert!(planned.dedup.is_none() && planned.layout.is_none());
        assert_eq!(planned.internal.as_deref(), Some("airbyte_internal"));
        let [main] = &planned.tables[..] else {
            panic!("one table")
        };
        assert_eq!(main.target.schema, "airbyte_internal");
        assert_eq!(main.stage, None);
        let columns: Vec<&str> = main.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns[4..], ["_airbyte_loaded_at", "_airbyte_data"]);
    }
}
