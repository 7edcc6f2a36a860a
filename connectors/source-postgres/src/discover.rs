//! What the database holds: tables, views and materialized views of the chosen schemas, their
//! columns (types resolved through domains and arrays) and primary keys.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cdk::Result;
use cdk::protocol::{AirbyteStream, SyncMode};
use serde_json::{Map, Value, json};
use tokio_postgres::Client;

use crate::connect::query_error;
use crate::types::{ColumnType, PgType};

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table.
    pub relkind: char,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Rows estimated by the planner's statistics (-1 when never analyzed).
    pub reltuples: f64,
    pub readable: bool,
}

impl Table {
    /// `"schema"."name"`.
    pub fn sql_name(&self) -> String {
        format!(
            "{}.{}",
            crate::types::quote_ident(&self.schema),
            crate::types::quote_ident(&self.name)
        )
    }

    /// Plain tables and materialized views have stable physical row positions (ctid) to
    /// read in chunks and resume from.
    pub fn has_ctid(&self) -> bool {
        matches!(self.relkind, 'r' | 'm')
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn json_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty.json_schema(c.nullable)))
            .collect();
        json!({"type": "object", "properties": properties})
    }

    pub fn airbyte_stream(&self) -> AirbyteStream {
        let mut s = AirbyteStream::new(
            self.name.clone(),
            self.json_schema(),
            vec![SyncMode::FullRefresh, SyncMode::Incremental],
        );
        s.namespace = Some(self.schema.clone());
        s.source_defined_cursor = Some(false);
        if !self.primary_key.is_empty() {
            s.source_defined_primary_key =
                Some(self.primary_key.iter().map(|k| vec![k.clone()]).collect());
        }
        s.is_resumable = Some(self.has_ctid());
        s
    }

    /// The stream in CDC mode: the `_ab_cdc_*` columns added, the source-defined cursor
    /// `_ab_cdc_lsn`, incremental only for a table of the publication with a primary key.
    pub fn cdc_stream(&self, published: &HashSet<(String, String)>) -> AirbyteStream {
        let mut s = self.airbyte_stream();
        if let Some(props) = s.json_schema["properties"].as_object_mut() {
            props.insert("_ab_cdc_lsn".into(), json!({"type": ["null", "number"]}));
            for c in ["_ab_cdc_updated_at", "_ab_cdc_deleted_at"] {
                props.insert(c.into(), json!({"type": ["null", "string"]}));
            }
        }
        match crate::cdc::not_incremental(self, published) {
            None => {
                s.source_defined_cursor = Some(true);
                s.default_cursor_field = Some(vec!["_ab_cdc_lsn".into()]);
            }
            Some(why) => {
                tracing::info!(stream = %self.sql_name(), "full refresh only in CDC mode: {why}");
                s.supported_sync_modes = vec![SyncMode::FullRefresh];
            }
        }
        s
    }

    /// The stream in Xmin mode: incremental (source-defined, by `xmin`) for tables and
    /// materialized views, which have the column; full refresh only for views.
    pub fn xmin_stream(&self) -> AirbyteStream {
        let mut s = self.airbyte_stream();
        if self.has_ctid() {
            s.source_defined_cursor = Some(true);
        } else {
            tracing::info!(stream = %self.sql_name(), "full refresh only in Xmin mode: a view has no xmin column");
            s.supported_sync_modes = vec![SyncMode::FullRefresh];
        }
        s
    }
}

const TABLES_SQL: &str = "
SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8,
       has_table_privilege(c.oid, 'SELECT'),
       a.attname::text, a.attnotnull, a.atttypid::int8, a.atttypmod,
       format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY n.nspname, c.relname, a.attnum";

const TYPES_SQL: &str = "
SELECT t.oid::int8, t.typname::text, t.typtype::text, t.typnamespace = 'pg_catalog'::regnamespace,
       t.typelem::int8, t.typbasetype::int8, t.typtypmod, t.typcategory::text
FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::int8[]::oid[])";

const KEYS_SQL: &str = "
SELECT i.indrelid::int8, a.attname::text
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indisprimary AND i.indrelid = ANY($1::int8[]::oid[])
ORDER BY i.indrelid, array_position(i.indkey::int2[], a.attnum)";

/// Every relation of `schemas` (readable or not; see [`Table::readable`]), ordered by schema
/// and name.
pub async fn tables(client: &Client, schemas: &[String]) -> Result<Vec<Table>> {
    let rows = client
        .query(TABLES_SQL, &[&schemas])
        .await
        .map_err(|e| query_error(&e, "cannot list tables"))?;
    struct RawColumn {
        name: String,
        not_null: bool,
        type_oid: i64,
        typmod: i32,
        sql_type: String,
    }
    let mut order: Vec<i64> = Vec::new();
    let mut raw: HashMap<i64, (Table, Vec<RawColumn>)> = HashMap::new();
    for row in &rows {
        let oid: i64 = row.get(0);
        let entry = raw.entry(oid).or_insert_with(|| {
            order.push(oid);
            let relkind: String = row.get(3);
            (
                Table {
                    oid: oid as u32,
                    schema: row.get(1),
                    name: row.get(2),
                    relkind: relkind.chars().next().unwrap_or('r'),
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    reltuples: row.get(4),
                    readable: row.get(5),
                },
                Vec::new(),
            )
        });
        entry.1.push(RawColumn {
            name: row.get(6),
            not_null: row.get(7),
            type_oid: row.get(8),
            typmod: row.get(9),
            sql_type: row.get(10),
        });
    }
    let type_oids: Vec<i64> = raw
        .values()
        .flat_map(|(_, cols)| cols.iter().map(|c| c.type_oid))
        .collect();
    let types = resolve_types(client, type_oids).await?;
    let keys = primary_keys(client, &order).await?;
    let mut tables = Vec::with_capacity(order.len());
    for oid in order {
        let Some((mut table, cols)) = raw.remove(&oid) else {
            continue;
        };
        for c in cols {
            let (ty, typmod) = match types.get(&c.type_oid) {
                Some((t, domain_typmod)) => (t.clone(), domain_typmod.unwrap_or(c.typmod)),
                None => (unknown_type(), c.typmod),
            };
            table.columns.push(Column {
                ty: ColumnType::new(&ty, typmod, c.sql_type),
                name: c.name,
                nullable: !c.not_null,
            });
        }
        table.primary_key = keys.get(&oid).cloned().unwrap_or_default();
        tables.push(table);
    }
    Ok(tables)
}

/// The readable tables, shared.
pub async fn readable_tables(client: &Client, schemas: &[String]) -> Result<Vec<Arc<Table>>> {
    Ok(tables(client, schemas)
        .await?
        .into_iter()
        .filter(|t| t.readable)
        .map(Arc::new)
        .collect())
}

fn unknown_type() -> PgType {
    PgType {
        name: "unknown".into(),
        typtype: 'p',
        builtin: false,
        element: None,
    }
}

struct TypeRow {
    name: String,
    typtype: char,
    builtin: bool,
    elem: i64,
    base: i64,
    typmod: i32,
    is_array: bool,
}

/// Resolves types to (base type with its element, the typmod a domain imposes).
async fn resolve_types(
    client: &Client,
    oids: Vec<i64>,
) -> Result<HashMap<i64, (PgType, Option<i32>)>> {
    let mut rows: HashMap<i64, TypeRow> = HashMap::new();
    let mut wanted: Vec<i64> = oids;
    // Domains point at base types and arrays at element types: fetch until closed.
    for _ in 0..8 {
        wanted.sort_unstable();
        wanted.dedup();
        wanted.retain(|o| *o != 0 && !rows.contains_key(o));
        if wanted.is_empty() {
            break;
        }
        let fetched = client
            .query(TYPES_SQL, &[&wanted])
            .await
            .map_err(|e| query_error(&e, "cannot read column types"))?;
        wanted = Vec::new();
        for r in fetched {
            let typtype: String = r.get(2);
            let category: String = r.get(7);
            let row = TypeRow {
                name: r.get(1),
                typtype: typtype.chars().next().unwrap_or('b'),
                builtin: r.get(3),
                elem: r.get(4),
                base: r.get(5),
                typmod: r.get(6),
                is_array: category == "A",
            };
            wanted.push(row.elem);
            wanted.push(row.base);
            rows.insert(r.get(0), row);
        }
    }
    fn build(rows: &HashMap<i64, TypeRow>, oid: i64, depth: u8) -> (PgType, Option<i32>) {
        let Some(row) = rows.get(&oid) else {
            return (unknown_type(), None);
        };
        if depth > 8 {
            return (unknown_type(), None);
        }
        if row.typtype == 'd' {
            let (t, inner) = build(rows, row.base, depth + 1);
            let typmod = (row.typmod >= 0).then_some(row.typmod).or(inner);
            return (t, typmod);
        }
        let element =
            (row.is_array && row.elem != 0).then(|| Box::new(build(rows, row.elem, depth + 1).0));
        (
            PgType {
                name: row.name.clone(),
                typtype: row.typtype,
                builtin: row.builtin,
                element,
            },
            None,
        )
    }
    let mut out = HashMap::new();
    for oid in rows.keys() {
        out.insert(*oid, build(&rows, *oid, 0));
    }
    Ok(out)
}

async fn primary_keys(client: &Client, oids: &[i64]) -> Result<BTreeMap<i64, Vec<String>>> {
    let rows = client
        .query(KEYS_SQL, &[&oids])
        .await
        .map_err(|e| query_error(&e, "cannot read primary keys"))?;
    let mut keys: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in rows {
        keys.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(keys)
}
