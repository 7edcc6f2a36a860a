//! From a stream's JSON schema to table layouts: Airbyte's type mapping, column names, and —
//! with `normalization: flattened` — prefixed columns for nested objects and child tables for
//! arrays of objects.

use cdk::destination::fields::Lookup;
use cdk::protocol::{AirbyteType, Properties};
use serde_json::Value;

use crate::names::{ColumnNamer, compatible};

/// The `_airbyte_*` columns every typed table starts with, in order.
pub const META_COLUMNS: [&str; 4] = [
    "_airbyte_raw_id",
    "_airbyte_extracted_at",
    "_airbyte_meta",
    "_airbyte_generation_id",
];
/// Extra columns of raw tables (`disable_type_dedupe`).
pub const RAW_COLUMNS: [&str; 2] = ["_airbyte_loaded_at", "_airbyte_data"];
/// The field whose value marks a CDC delete.
pub const CDC_DELETED_AT: &str = "_ab_cdc_deleted_at";

/// A column type of the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgType {
    Varchar,
    Bigint,
    Decimal,
    Boolean,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Jsonb,
}

impl PgType {
    /// The type as written in DDL.
    pub fn ddl(self) -> &'static str {
        match self {
            PgType::Varchar => "varchar",
            PgType::Bigint => "bigint",
            PgType::Decimal => "decimal",
            PgType::Boolean => "boolean",
            PgType::Date => "date",
            PgType::Time => "time",
            PgType::TimeTz => "time with time zone",
            PgType::Timestamp => "timestamp",
            PgType::TimestampTz => "timestamp with time zone",
            PgType::Jsonb => "jsonb",
        }
    }

    /// The type as the catalog's `format_type()` prints it.
    pub fn catalog_name(self) -> &'static str {
        match self {
            PgType::Varchar => "character varying",
            PgType::Decimal => "numeric",
            PgType::Time => "time without time zone",
            PgType::Timestamp => "timestamp without time zone",
            other => other.ddl(),
        }
    }
}

/// Which JSON values a JSONB column accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Any,
    Object,
    Array,
}

/// A user column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column name (already normalised; quote it for SQL).
    pub name: String,
    /// The field it comes from, dotted for nested fields (`contact.email`); used in `changes`.
    pub field: String,
    pub ty: PgType,
    pub json: JsonKind,
}

/// How to find a table's values in a record object.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// The dotted path of the object these fields belong to (empty at the top).
    pub path: String,
    /// The keys, in schema order.
    pub keys: Lookup,
    /// What each key's value becomes.
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
pub enum Node {
    /// The value goes into this column (index into the table's columns).
    Leaf(usize),
    /// A nested object whose fields become prefixed columns (flattened mode).
    Object(Fields),
    /// An array of objects whose items become rows of this child table (flattened mode).
    Child(usize),
}

/// The user columns of one table and where their values come from.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub columns: Vec<Column>,
    pub fields: Fields,
    /// The `_airbyte_<stream>_hashid` column (flattened mode), filled by the writer.
    pub hashid: Option<usize>,
    /// The `_airbyte_normalized_at` column (basic normalization), filled by the writer.
    pub normalized_at: Option<usize>,
}

impl Layout {
    /// The column a field path (`["contact", "email"]`) lands in.
    pub fn column_of(&self, path: &[String]) -> Option<usize> {
        let mut fields = &self.fields;
        for (i, key) in path.iter().enumerate() {
            let at = fields.keys.position(key)?;
            match &fields.nodes[at] {
                Node::Leaf(c) if i + 1 == path.len() => return Some(*c),
                Node::Object(inner) => fields = inner,
                _ => return None,
            }
        }
        None
    }
}

/// A child table of the flattened layout.
#[derive(Debug, Clone)]
pub struct ChildTable {
    /// Table name (normalised), `<stream>_<field>`.
    pub name: String,
    /// The array field it comes from, dotted.
    pub field: String,
    pub layout: Layout,
}

/// Every table a stream writes.
#[derive(Debug, Clone)]
pub struct StreamLayout {
    pub main: Layout,
    pub children: Vec<ChildTable>,
}

/// Builds the layout of stream `table` (its normalised table name) from its JSON schema.
pub fn layout(table: &str, json_schema: &Value, flattened: bool) -> StreamLayout {
    let mut builder = Builder {
        table: table.to_string(),
        flattened,
        children: Vec::new(),
    };
    let mut namer = ColumnNamer::new(&META_COLUMNS);
    let mut main = Layout::default();
    if flattened {
        let name = namer.name(&hashid_column(table));
        main.hashid = Some(main.columns.len());
        main.columns.push(Column {
            name,
            field: String::new(),
            ty: PgType::Varchar,
            json: JsonKind::Any,
        });
    }
    if let Some(properties) = json_schema.get("properties").and_then(Value::as_object) {
        let properties: Properties = properties
            .iter()
            .map(|(key, schema)| (key.clone(), AirbyteType::from_schema(schema)))
            .collect();
        main.fields = builder.fields(&properties, "", "", &mut main.columns, &mut namer, true);
    }
    StreamLayout {
        main,
        children: builder.children,
    }
}

/// The column basic normalization adds to every table: when the row was normalized.
pub const NORMALIZED_AT: &str = "_airbyte_normalized_at";

/// Adds `_airbyte_normalized_at` (a timestamp with time zone) as the last column of every table
/// of `layout`, as basic normalization lays tables out.
pub fn add_normalized_at(layout: &mut StreamLayout) {
    let tables =
        std::iter::once(&mut layout.main).chain(layout.children.iter_mut().map(|c| &mut c.layout));
    for table in tables {
        let mut name = NORMALIZED_AT.to_string();
        while table.columns.iter().any(|c| c.name == name) {
            name.push('_');
        }
        table.normalized_at = Some(table.columns.len());
        table.columns.push(Column {
            name,
            field: String::new(),
            ty: PgType::TimestampTz,
            json: JsonKind::Any,
        });
    }
}

/// `_airbyte_<table>_hashid`.
pub fn hashid_column(table: &str) -> String {
    format!("_airbyte_{table}_hashid")
}

struct Builder {
    table: String,
    flattened: bool,
    children: Vec<ChildTable>,
}

impl Builder {
    /// Columns for `properties`; `prefix` is the column-name prefix, `path` the dotted field
    /// prefix. `top` is false inside child tables (no grandchildren).
    fn fields(
        &mut self,
        properties: &[(String, AirbyteType)],
        prefix: &str,
        path: &str,
        columns: &mut Vec<Column>,
        namer: &mut ColumnNamer,
        top: bool,
    ) -> Fields {
        let mut keys = Vec::new();
        let mut nodes = Vec::new();
        let mut push = |key: &str, node| {
            keys.push(key.to_string());
            nodes.push(node);
        };
        for (key, ty) in properties {
            let column_base = format!("{prefix}{key}");
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if self.flattened {
                if let AirbyteType::Object(Some(inner)) = ty
                    && !inner.is_empty()
                {
                    let nested = self.fields(
                        inner,
                        &format!("{column_base}_"),
                        &field,
                        columns,
                        namer,
                        top,
                    );
                    push(key, Node::Object(nested));
                    continue;
                }
                if top
                    && let AirbyteType::Array(items) = ty
                    && let AirbyteType::Object(Some(inner)) = &**items
                    && !inner.is_empty()
                {
                    let index = self.child(&column_base, &field, inner);
                    push(key, Node::Child(index));
                    continue;
                }
            }
            let (pg, json) = pg_type(ty);
            let index = columns.len();
            columns.push(Column {
                name: namer.name(&column_base),
                field,
                ty: pg,
                json,
            });
            push(key, Node::Leaf(index));
        }
        Fields {
            path: path.to_string(),
            keys: Lookup::new(keys),
            nodes,
        }
    }

    fn child(&mut self, column_base: &str, field: &str, items: &[(String, AirbyteType)]) -> usize {
        let name = compatible(&format!("{}_{}", self.table, column_base));
        let mut namer = ColumnNamer::new(&META_COLUMNS);
        let mut layout = Layout::default();
        let hashid = namer.name(&hashid_column(&self.table));
        layout.hashid = Some(0);
        layout.columns.push(Column {
            name: hashid,
            field: String::new(),
            ty: PgType::Varchar,
            json: JsonKind::Any,
        });
        let nested = self.fields(items, "", field, &mut layout.columns, &mut namer, false);
        layout.fields = nested;
        self.children.push(ChildTable {
            name,
            field: field.to_string(),
            layout,
        });
        self.children.len() - 1
    }
}

/// Airbyte's mapping of a type to a column type (`docs/integrations/destinations/postgres.md`).
pub fn pg_type(ty: &AirbyteType) -> (PgType, JsonKind) {
    let pg = match ty {
        AirbyteType::String => PgType::Varchar,
        AirbyteType::Integer => PgType::Bigint,
        AirbyteType::Number => PgType::Decimal,
        AirbyteType::Boolean => PgType::Boolean,
        AirbyteType::Date => PgType::Date,
        AirbyteType::TimeWithoutTimezone => PgType::Time,
        AirbyteType::TimeWithTimezone => PgType::TimeTz,
        AirbyteType::TimestampWithoutTimezone => PgType::Timestamp,
        AirbyteType::TimestampWithTimezone => PgType::TimestampTz,
        AirbyteType::Object(_) => return (PgType::Jsonb, JsonKind::Object),
        AirbyteType::Array(_) => return (PgType::Jsonb, JsonKind::Array),
        AirbyteType::Union(_) | AirbyteType::Unknown => return (PgType::Jsonb, JsonKind::Any),
    };
    (pg, JsonKind::Any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn types(schema: Value) -> Vec<(String, PgType)> {
        layout("t", &schema, false)
            .main
            .columns
            .into_iter()
            .map(|c| (c.name, c.ty))
            .collect()
    }

    #[test]
    fn airbyte_type_mapping() {
        let schema = json!({"type": "object", "properties": {
            "s": {"type": ["null", "string"]},
            "i": {"type": "integer"},
            "i2": {"type": "number", "airbyte_type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "d": {"type": "string", "format": "date"},
            "ts": {"type": "string", "format": "date-time"},
            "tsn": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
            "t": {"type": "string", "format": "time", "airbyte_type": "time_without_timezone"},
            "ttz": {"type": "string", "format": "time", "airbyte_type": "time_with_timezone"},
            "ts_no_format": {"type": "string", "airbyte_type": "timestamp_with_timezone"},
            "t_no_format": {"type": "string", "airbyte_type": "time_without_timezone"},
            "bare_time": {"type": "string", "format": "time"},
            "nullable_any_of": {"anyOf": [{"type": "null"}, {"type": "number"}]},
            "o": {"type": "object", "properties": {"x": {"type": "string"}}},
            "a": {"type": "array", "items": {"type": "string"}},
            "u": {"type": ["string", "integer"]},
            "one": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "unknown": {},
            "ref": {"$ref": "WellKnownTypes.json#/definitions/Integer"},
        }});
        let got: HashMap<String, PgType> = types(schema).into_iter().collect();
        use PgType::*;
        for (name, ty) in [
            ("s", Varchar),
            ("i", Bigint),
            ("i2", Bigint),
            ("n", Decimal),
            ("b", Boolean),
            ("d", Date),
            ("ts", TimestampTz),
            ("tsn", Timestamp),
            ("t", Time),
            ("ttz", TimeTz),
            ("ts_no_format", TimestampTz),
            ("t_no_format", Time),
            ("bare_time", TimeTz),
            ("nullable_any_of", Decimal),
            ("o", Jsonb),
            ("a", Jsonb),
            ("u", Jsonb),
            ("one", Jsonb),
            ("unknown", Jsonb),
            ("ref", Bigint),
        ] {
            assert_eq!(got[name], ty, "{name}");
        }
    }

    #[test]
    fn flattened_layout_of_the_seed_example() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "contact": {"type": "object", "properties": {
                "email": {"type": "string"}, "phone": {"type": "string"}}},
            "addresses": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "city": {"type": "string"}}}},
        }});
        let l = layout("customers", &schema, true);
        let names: Vec<&str> = l.main.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "_airbyte_customers_hashid",
                "contact_email",
                "contact_phone",
                "id",
                "name"
            ]
        );
        assert_eq!(
            l.main.column_of(&["contact".into(), "email".into()]),
            Some(1)
        );
        assert_eq!(l.main.columns[1].field, "contact.email");
        assert_eq!(l.children.len(), 1);
        let child = &l.children[0];
        assert_eq!(child.name, "customers_addresses");
        let names: Vec<&str> = child
            .layout
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["_airbyte_customers_hashid", "city", "type"]);
        let mut basic = l.clone();
        add_normalized_at(&mut basic);
        let last = |l: &Layout| l.columns.last().map(|c| (c.name.clone(), c.ty));
        let expected = Some((NORMALIZED_AT.to_string(), PgType::TimestampTz));
        assert_eq!(last(&basic.main), expected);
        assert_eq!(last(&basic.children[0].layout), expected);
        assert_eq!(basic.main.normalized_at, Some(5));
    }

    #[test]
    fn hostile_field_names_become_distinct_columns() {
        let schema = json!({"properties": {
            "a b": {"type": "string"}, "a_b": {"type": "string"},
            "_airbyte_meta": {"type": "string"}, "\"quoted\"": {"type": "string"}}});
        let names: Vec<String> = types(schema).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["\"quoted\"", "_airbyte_meta", "a b", "a_b"].map(compatible_then_unique)
        );
    }

    fn compatible_then_unique(s: &str) -> String {
        match s {
            "\"quoted\"" => "_quoted_".into(),
            "_airbyte_meta" => "_airbyte_meta_1".into(),
            "a b" => "a_b".into(),
            _ => "a_b_1".into(),
        }
    }
}
