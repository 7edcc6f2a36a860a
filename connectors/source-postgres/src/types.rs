//! Postgres types → how a column is selected (some are cast server side), decoded from binary
//! COPY, and described in the JSON schema (Airbyte's source-postgres mapping).

use serde_json::{Value, json};

/// What a column's binary value is decoded as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// `integer` when the declared scale is 0 (`numeric(p,0)`).
    Numeric {
        integer: bool,
    },
    /// Text as sent (text, varchar, char, name, enums, json, and every type cast to text).
    Text,
    /// jsonb's binary form: a version byte, then the text.
    Jsonb,
    Bytea,
    Uuid,
    /// inet and cidr (cidr always shows its prefix length).
    Inet,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Array(Box<Kind>),
}

/// A type as the catalog describes it, domains already resolved to their base type.
#[derive(Debug, Clone)]
pub struct PgType {
    pub name: String,
    /// `b` base, `e` enum, `c` composite, `r` range, `m` multirange, `p` pseudo.
    pub typtype: char,
    /// In `pg_catalog` (so the name identifies a built-in type).
    pub builtin: bool,
    /// The element type of an array type.
    pub element: Option<Box<PgType>>,
}

/// How one column is read: the decode kind and the SQL cast applied in the select list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub kind: Kind,
    /// E.g. `::text`, `::numeric`, `::text[]`: applied to the column in the select list.
    pub cast: Option<&'static str>,
    /// The declared type (from `format_type`), used to cast cursor literals.
    pub sql_type: String,
}

impl ColumnType {
    /// Maps a resolved type and the column's type modifier.
    pub fn new(t: &PgType, typmod: i32, sql_type: String) -> Self {
        let (kind, cast) = match &t.element {
            Some(elem) => match native_kind(elem, -1) {
                Some(k) => (Kind::Array(Box::new(k)), None),
                None if elem.builtin && elem.name == "money" => (
                    Kind::Array(Box::new(Kind::Numeric { integer: false })),
                    Some("::numeric[]"),
                ),
                None => (Kind::Array(Box::new(Kind::Text)), Some("::text[]")),
            },
            None => match native_kind(t, typmod) {
                Some(k) => (k, None),
                None if t.builtin && t.name == "money" => {
                    (Kind::Numeric { integer: false }, Some("::numeric"))
                }
                None if !t.builtin && t.name == "hstore" => (Kind::Text, Some("::json::text")),
                None => (Kind::Text, Some("::text")),
            },
        };
        Self {
            kind,
            cast,
            sql_type,
        }
    }

    /// The JSON schema of the column's values (nullable unless declared NOT NULL).
    pub fn json_schema(&self, nullable: bool) -> Value {
        schema_of(&self.kind, nullable)
    }

    /// Whether the column can be an incremental cursor (an ordered scalar type).
    pub fn can_be_cursor(&self) -> bool {
        match &self.kind {
            Kind::Int2
            | Kind::Int4
            | Kind::Int8
            | Kind::Oid
            | Kind::Float4
            | Kind::Float8
            | Kind::Numeric { .. }
            | Kind::Uuid
            | Kind::Date
            | Kind::Time
            | Kind::TimeTz
            | Kind::Timestamp
            | Kind::TimestampTz => true,
            // Text, but not text produced by a cast (json, inet, intervals... order differently).
            Kind::Text => self.cast.is_none() && !self.sql_type.starts_with("json"),
            Kind::Bool | Kind::Jsonb | Kind::Bytea | Kind::Inet | Kind::Array(_) => false,
        }
    }
}

/// Types decoded from their own binary form (no cast).
fn native_kind(t: &PgType, typmod: i32) -> Option<Kind> {
    if t.typtype == 'e' {
        return Some(Kind::Text); // enum_send sends the label
    }
    if !t.builtin {
        return None;
    }
    Some(match t.name.as_str() {
        "bool" => Kind::Bool,
        "int2" => Kind::Int2,
        "int4" => Kind::Int4,
        "int8" => Kind::Int8,
        "oid" => Kind::Oid,
        "float4" => Kind::Float4,
        "float8" => Kind::Float8,
        "numeric" => Kind::Numeric {
            integer: typmod >= 4 && ((typmod - 4) & 0xffff) == 0,
        },
        "text" | "varchar" | "bpchar" | "name" | "json" => Kind::Text,
        "jsonb" => Kind::Jsonb,
        "bytea" => Kind::Bytea,
        "uuid" => Kind::Uuid,
        "inet" | "cidr" => Kind::Inet,
        "date" => Kind::Date,
        "time" => Kind::Time,
        "timetz" => Kind::TimeTz,
        "timestamp" => Kind::Timestamp,
        "timestamptz" => Kind::TimestampTz,
        _ => return None,
    })
}

fn schema_of(kind: &Kind, nullable: bool) -> Value {
    let ty = |t: &str| -> Value {
        if nullable {
            json!(["null", t])
        } else {
            json!(t)
        }
    };
    match kind {
        Kind::Bool => json!({"type": ty("boolean")}),
        Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Oid | Kind::Numeric { integer: true } => {
            json!({"type": ty("number"), "airbyte_type": "integer"})
        }
        Kind::Float4 | Kind::Float8 | Kind::Numeric { integer: false } => {
            json!({"type": ty("number")})
        }
        Kind::Text | Kind::Jsonb | Kind::Uuid | Kind::Inet => json!({"type": ty("string")}),
        Kind::Bytea => json!({"type": ty("string"), "contentEncoding": "base64"}),
        Kind::Date => json!({"type": ty("string"), "format": "date"}),
        Kind::Time => json!({"type": ty("string"), "format": "time",
            "airbyte_type": "time_without_timezone"}),
        Kind::TimeTz => json!({"type": ty("string"), "format": "time",
            "airbyte_type": "time_with_timezone"}),
        Kind::Timestamp => json!({"type": ty("string"), "format": "date-time",
            "airbyte_type": "timestamp_without_timezone"}),
        Kind::TimestampTz => json!({"type": ty("string"), "format": "date-time",
            "airbyte_type": "timestamp_with_timezone"}),
        Kind::Array(elem) => json!({"type": ty("array"), "items": schema_of(elem, true)}),
    }
}

pub use postgres_common::{quote_ident, quote_literal};

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(name: &str) -> PgType {
        PgType {
            name: name.into(),
            typtype: 'b',
            builtin: true,
            element: None,
        }
    }

    #[test]
    fn numeric_scale_zero_is_integer() {
        // numeric(10,0): typmod = (10 << 16 | 0) + 4
        let t = ColumnType::new(&builtin("numeric"), (10 << 16) + 4, "numeric(10,0)".into());
        assert_eq!(t.kind, Kind::Numeric { integer: true });
        let t = ColumnType::new(
            &builtin("numeric"),
            (10 << 16 | 2) + 4,
            "numeric(10,2)".into(),
        );
        assert_eq!(t.kind, Kind::Numeric { integer: false });
        let t = ColumnType::new(&builtin("numeric"), -1, "numeric".into());
        assert_eq!(t.kind, Kind::Numeric { integer: false });
    }

    #[test]
    fn unknown_types_are_cast_to_text() {
        let t = ColumnType::new(&builtin("macaddr"), -1, "macaddr".into());
        assert_eq!((t.kind, t.cast), (Kind::Text, Some("::text")));
        let arr = PgType {
            element: Some(Box::new(builtin("macaddr"))),
            ..builtin("_macaddr")
        };
        let t = ColumnType::new(&arr, -1, "macaddr[]".into());
        assert_eq!(t.kind, Kind::Array(Box::new(Kind::Text)));
        assert_eq!(t.cast, Some("::text[]"));
    }
}
