//! The SQL the destination runs: table creation and evolution, COPY, the dedup upsert, the
//! overwrite swap and indexes. Every identifier is quoted.

use crate::copy::Format;
use crate::names::{TableName, derived, literal, quote};
use crate::schema::PgType;

/// A column as created: name, type, NOT NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: PgType,
    pub not_null: bool,
}

impl ColumnDef {
    pub fn new(name: impl Into<String>, ty: PgType, not_null: bool) -> Self {
        Self {
            name: name.into(),
            ty,
            not_null,
        }
    }

    fn ddl(&self) -> String {
        let not_null = if self.not_null { " NOT NULL" } else { "" };
        format!("{} {}{not_null}", quote(&self.name), self.ty.ddl())
    }
}

pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema))
}

pub fn create_table(table: &TableName, columns: &[ColumnDef]) -> String {
    let columns: Vec<String> = columns.iter().map(ColumnDef::ddl).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  {}\n)",
        table.sql(),
        columns.join(",\n  ")
    )
}

/// A session-local staging table, emptied at every commit.
pub fn create_stage(stage: &str, columns: &[ColumnDef]) -> String {
    let columns: Vec<String> = columns.iter().map(ColumnDef::ddl).collect();
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS",
        quote(stage),
        columns.join(", ")
    )
}

/// Room for the session's temporary tables (the dedup stages) in server memory.
pub const STAGE_BUFFERS: &str = "SET temp_buffers = '256MB'";

/// Makes `_airbyte_meta` default to `meta` (on a table only this sync uses).
/// The defaults that let a row without changes leave out `_airbyte_meta` and
/// `_airbyte_generation_id` (the same for every such row of a sync).
pub fn set_meta_default(table_sql: &str, meta: &str, generation: i64) -> String {
    format!(
        "ALTER TABLE {table_sql} ALTER COLUMN \"_airbyte_meta\" SET DEFAULT {}::jsonb, \
         ALTER COLUMN \"_airbyte_generation_id\" SET DEFAULT {generation}",
        literal(meta)
    )
}

pub fn drop_meta_default(table: &TableName) -> String {
    format!(
        "ALTER TABLE {} ALTER COLUMN \"_airbyte_meta\" DROP DEFAULT, \
         ALTER COLUMN \"_airbyte_generation_id\" DROP DEFAULT",
        table.sql()
    )
}

pub fn drop_table(table: &TableName, cascade: bool) -> String {
    let cascade = if cascade { " CASCADE" } else { "" };
    format!("DROP TABLE IF EXISTS {}{cascade}", table.sql())
}

/// The columns of an existing table with their `format_type`, in order.
pub const TABLE_COLUMNS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
     FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid \
     JOIN pg_namespace n ON c.relnamespace = n.oid \
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
     AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

/// A cast that never fails: NULL when the text does not convert.
pub const SAFE_CAST_FUNCTION: &str = "CREATE OR REPLACE FUNCTION pg_temp.airbyte_safe_cast(_in text, INOUT _out anyelement) \
     LANGUAGE plpgsql AS $$ BEGIN \
     EXECUTE format('SELECT %L::%s', _in, pg_typeof(_out)) INTO _out; \
     EXCEPTION WHEN others THEN _out := NULL; END $$";

/// `ALTER TABLE` adding `missing` columns and changing the type of `changed` ones
/// (`(column, old catalog type, new type)`), converting values with a safe cast.
pub fn evolve(
    table: &TableName,
    missing: &[ColumnDef],
    changed: &[(String, String, PgType)],
) -> String {
    let mut actions: Vec<String> = missing
        .iter()
        .map(|c| format!("ADD COLUMN IF NOT EXISTS {} {}", quote(&c.name), c.ty.ddl()))
        .collect();
    for (name, old, new) in changed {
        let column = quote(name);
        let using = match (old.as_str(), new) {
            (_, PgType::Jsonb) => format!("to_jsonb({column})"),
            ("jsonb", PgType::Varchar) => format!("{column} #>> '{{}}'"),
            ("jsonb", ty) => format!(
                "pg_temp.airbyte_safe_cast({column} #>> '{{}}', NULL::{})",
                ty.ddl()
            ),
            (_, PgType::Varchar) => format!("{column}::varchar"),
            (_, ty) => format!(
                "pg_temp.airbyte_safe_cast({column}::text, NULL::{})",
                ty.ddl()
            ),
        };
        actions.push(format!(
            "ALTER COLUMN {column} TYPE {} USING {using}",
            new.ddl()
        ));
    }
    format!("ALTER TABLE {} {}", table.sql(), actions.join(", "))
}

pub fn copy(table: &str, columns: &[String], format: Format) -> String {
    let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "COPY {table} ({}) FROM STDIN {}",
        columns.join(", "),
        format.sql_option()
    )
}

/// What the dedup upsert needs to know about a stream.
#[derive(Debug, Clone)]
pub struct Dedup {
    pub primary_key: Vec<String>,
    pub cursor: Option<String>,
    /// Rows whose `_ab_cdc_deleted_at` is set delete their key.
    pub cdc_delete: Option<String>,
}

/// Settings for the merge statements, local to the commit's transaction: sorts stay in
/// memory, no JIT compilation, and the key index is probed for each staged row instead of
/// scanning (or hashing) the whole target table, so a merge costs in proportion to the staged
/// rows, not to the size of the table.
pub const MERGE_SETTINGS: &str = "SET LOCAL work_mem = '256MB'; SET LOCAL jit = off; \
     SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; \
     SET LOCAL enable_bitmapscan = off";

/// One statement merging `stage` into `target`: the latest staged row per key (by cursor, then
/// `_airbyte_extracted_at`) replaces an older target row or is inserted; CDC deletes remove
/// the key. Each latest row looks its key up once, through the key index (a scalar subquery
/// with LIMIT is never planned as a hash of the whole target, which an `EXISTS` can be: a merge
/// then costs in proportion to the staged rows, not to the table); only keys already present
/// are joined with the target again. `distinct`: the staged keys are known to be distinct, so
/// every staged row is the latest of its key (no sort of the stage).
pub fn upsert(
    target: &TableName,
    stage: &str,
    columns: &[String],
    dedup: &Dedup,
    distinct: bool,
) -> String {
    let t = target.sql();
    let s = "deduped_source";
    let present = "_airbyte_merge_present";
    let latest = "_airbyte_latest";
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let pk: Vec<String> = dedup.primary_key.iter().map(|c| quote(c)).collect();
    let pk_match_with = |other: &str| {
        pk.iter()
            .map(|c| format!("{t}.{c} = {other}.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let pk_match = pk_match_with(s);
    let extracted = quote("_airbyte_extracted_at");
    let (order, newer) = match &dedup.cursor {
        Some(cursor) => {
            let c = quote(cursor);
            (
                format!("{c} DESC NULLS LAST, {extracted} DESC"),
                format!(
                    "{t}.{c} < {s}.{c} \
                     OR ({t}.{c} = {s}.{c} AND {t}.{extracted} < {s}.{extracted}) \
                     OR ({t}.{c} IS NULL AND {s}.{c} IS NOT NULL) \
                     OR ({t}.{c} IS NULL AND {s}.{c} IS NULL AND {t}.{extracted} < {s}.{extracted})"
                ),
            )
        }
        None => (
            format!("{extracted} DESC"),
            format!("{t}.{extracted} < {s}.{extracted}"),
        ),
    };
    let (delete_cte, not_deleted) = match &dedup.cdc_delete {
        Some(deleted_at) => {
            let d = quote(deleted_at);
            (
                format!(
                    "deleted AS (DELETE FROM {t} USING {s} WHERE {s}.{present} AND {pk_match} \
                     AND {s}.{d} IS NOT NULL AND ({newer})),\n"
                ),
                format!(" AND {s}.{d} IS NULL"),
            )
        }
        None => (String::new(), String::new()),
    };
    let assignments = cols
        .iter()
        .map(|c| format!("{c} = {s}.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let col_list = cols.join(", ");
    let stage = quote(stage);
    let latest_rows = if distinct {
        stage
    } else {
        format!(
            "(SELECT DISTINCT ON ({}) {col_list} FROM {stage} ORDER BY {}, {order})",
            pk.join(", "),
            pk.join(", ")
        )
    };
    format!(
        "WITH {s} AS MATERIALIZED (\n  SELECT {col_list}, (SELECT true FROM {t} WHERE {latest_match} LIMIT 1) IS NOT NULL AS {present} \
         FROM {latest_rows} AS {latest}\n),\n\
         {delete_cte}\
         updates AS (\n  UPDATE {t} SET {assignments} FROM {s} WHERE {s}.{present} AND {pk_match}{not_deleted} AND ({newer})\n)\n\
         INSERT INTO {t} ({col_list}) SELECT {col_list} FROM {s} WHERE NOT {s}.{present}{not_deleted}",
        latest_match = pk_match_with(latest),
    )
}

/// Empties merged stages for more rows in the same transaction.
pub fn truncate_stages(stages: &[&str]) -> String {
    let stages: Vec<String> = stages.iter().map(|s| quote(s)).collect();
    format!("TRUNCATE {}", stages.join(", "))
}

/// Before an upsert of a flattened stream: remember which target rows the stage touches, so
/// their child rows can be replaced.
pub fn touched_rows(target: &TableName, stage: &str, primary_key: &[String]) -> String {
    let t = target.sql();
    let st = quote(stage);
    let pk_match = primary_key
        .iter()
        .map(|c| format!("{t}.{0} = {st}.{0}", quote(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS _airbyte_touched (_airbyte_raw_id varchar) ON COMMIT DELETE ROWS;\n\
         TRUNCATE _airbyte_touched;\n\
         INSERT INTO _airbyte_touched SELECT {t}.\"_airbyte_raw_id\" FROM {t} JOIN {st} ON {pk_match}"
    )
}

/// After the upsert: drop child rows of replaced or deleted parents, and add the child rows of
/// the parents that were written.
pub fn replace_children(
    parent: &TableName,
    child: &TableName,
    child_stage: &str,
    columns: &[String],
) -> String {
    let p = parent.sql();
    let c = child.sql();
    let cols = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let raw_id = "\"_airbyte_raw_id\"";
    format!(
        "DELETE FROM {c} USING _airbyte_touched x WHERE {c}.{raw_id} = x._airbyte_raw_id \
         AND NOT EXISTS (SELECT 1 FROM {p} WHERE {p}.{raw_id} = x._airbyte_raw_id);\n\
         INSERT INTO {c} ({cols}) SELECT {cols} FROM {stage} s WHERE EXISTS \
         (SELECT 1 FROM {p} WHERE {p}.{raw_id} = s.{raw_id})",
        stage = quote(child_stage),
    )
}

/// Replaces `target` with `tmp` (in the same transaction as the caller's BEGIN/COMMIT).
pub fn swap(tmp: &TableName, target: &TableName, cascade: bool) -> Vec<String> {
    let mut out = vec![
        drop_table(target, cascade),
        format!(
            "ALTER TABLE {} RENAME TO {}",
            tmp.sql(),
            quote(&target.name)
        ),
    ];
    if tmp.schema != target.schema {
        out.push(format!(
            "ALTER TABLE {}.{} SET SCHEMA {}",
            quote(&tmp.schema),
            quote(&target.name),
            quote(&target.schema)
        ));
    }
    out
}

/// The name of index `suffix` of `table`.
pub fn index_name(table: &TableName, suffix: &str) -> String {
    derived(&table.name, suffix)
}

/// Room for the sorts of the indexes made after loading (a sort that fits in memory builds a
/// million-row index in about half the time of one spilling to disk at the default 64MB).
pub const INDEX_SETTINGS: &str = "SET maintenance_work_mem = '256MB'";

pub fn create_index(table: &TableName, suffix: &str, columns: &[String]) -> String {
    let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
        quote(&index_name(table, suffix)),
        table.sql(),
        columns.join(", ")
    )
}

/// Renames an index that moved with a swapped-in table to the name it has on `target`.
pub fn rename_index(target: &TableName, tmp: &TableName, suffix: &str) -> String {
    format!(
        "ALTER INDEX IF EXISTS {}.{} RENAME TO {}",
        quote(&target.schema),
        quote(&index_name(tmp, suffix)),
        quote(&index_name(target, suffix))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_sql_shape() {
        let t = TableName::new("public", "users");
        let sql = upsert(
            &t,
            "stage_0",
            &["_airbyte_raw_id".into(), "id".into(), "updated_at".into()],
            &Dedup {
                primary_key: vec!["id".into()],
                cursor: Some("updated_at".into()),
                cdc_delete: Some("_ab_cdc_deleted_at".into()),
            },
            false,
        );
        insta::assert_snapshot!(sql);
    }

    #[test]
    fn upsert_of_distinct_keys_reads_the_stage_as_it_is() {
        let t = TableName::new("public", "users");
        let dedup = Dedup {
            primary_key: vec!["id".into()],
            cursor: None,
            cdc_delete: None,
        };
        let columns = ["_airbyte_raw_id".into(), "id".into()];
        let sql = upsert(&t, "stage_0", &columns, &dedup, true);
        assert!(
            sql.contains(" FROM \"stage_0\" AS _airbyte_latest\n"),
            "{sql}"
        );
        assert!(!sql.contains("DISTINCT ON"), "{sql}");
        let sorted = upsert(&t, "stage_0", &columns, &dedup, false);
        assert!(
            sorted.contains(
                "FROM (SELECT DISTINCT ON (\"id\") \"_airbyte_raw_id\", \"id\" FROM \"stage_0\" \
                 ORDER BY \"id\", \"_airbyte_extracted_at\" DESC) AS _airbyte_latest"
            ),
            "{sorted}"
        );
    }

    #[test]
    fn evolution_casts() {
        let t = TableName::new("s", "t");
        let sql = evolve(
            &t,
            &[ColumnDef::new("new", PgType::Bigint, false)],
            &[
                ("a".into(), "bigint".into(), PgType::Jsonb),
                ("b".into(), "jsonb".into(), PgType::Varchar),
                ("c".into(), "character varying".into(), PgType::Bigint),
            ],
        );
        assert_eq!(
            sql,
            "ALTER TABLE \"s\".\"t\" ADD COLUMN IF NOT EXISTS \"new\" bigint, \
             ALTER COLUMN \"a\" TYPE jsonb USING to_jsonb(\"a\"), \
             ALTER COLUMN \"b\" TYPE varchar USING \"b\" #>> '{}', \
             ALTER COLUMN \"c\" TYPE bigint USING pg_temp.airbyte_safe_cast(\"c\"::text, NULL::bigint)"
        );
    }

    #[test]
    fn swap_moves_schema() {
        let tmp = TableName::new("airbyte_internal", "public_users_airbyte_tmp");
        let target = TableName::new("public", "users");
        assert_eq!(
            swap(&tmp, &target, true),
            [
                "DROP TABLE IF EXISTS \"public\".\"users\" CASCADE",
                "ALTER TABLE \"airbyte_internal\".\"public_users_airbyte_tmp\" RENAME TO \"users\"",
                "ALTER TABLE \"airbyte_internal\".\"users\" SET SCHEMA \"public\"",
            ]
        );
    }
}
