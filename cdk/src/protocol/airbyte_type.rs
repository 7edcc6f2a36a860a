//! Airbyte's type system read from a stream's JSON schema: the one classification that sources,
//! destinations and the acceptance suite share, so a column has the same type everywhere.
//!
//! The rules (`reference/airbyte_well_known_types.yaml`, Airbyte's "supported data types"):
//! - `{"$ref": "WellKnownTypes.json#/definitions/<Name>"}` is that well-known type.
//! - For a `string`, `number` or `integer` (or an untyped schema), `airbyte_type` wins, then
//!   `format`, then `type`. So `{"type": "number", "airbyte_type": "integer"}` is an integer and
//!   `{"type": "string", "airbyte_type": "timestamp_with_timezone"}` is a timestamp with or without
//!   `format` (Airbyte treats such a legacy schema as the well-known `TimestampWithTimezone`).
//! - `format: date-time` without `airbyte_type` is a timestamp *with* time zone (Airbyte's
//!   documented default). Airbyte is silent on `format: time` without `airbyte_type` (its Java
//!   typing reads it as unknown); we read it as a time *with* time zone, by analogy with
//!   `date-time`, so that values with an offset are never misread.
//! - Nullable unions reduce to their non-null type: `["null", "string"]`, and `oneOf` / `anyOf`
//!   with a `{"type": "null"}` option. Several non-null types make a [`AirbyteType::Union`].
//! - No type at all is [`AirbyteType::Unknown`] (any JSON value), unless the schema has
//!   `properties` (an object) or `items` (an array).

use serde_json::{Map, Value, json};

/// The properties of an object type, in the schema's order.
pub type Properties = Vec<(String, AirbyteType)>;

const WELL_KNOWN_PREFIX: &str = "WellKnownTypes.json#/definitions/";

/// The Airbyte type of a value, as a JSON schema declares it.
#[derive(Debug, Clone, PartialEq)]
pub enum AirbyteType {
    /// Text (also the well-known `BinaryData`, base64 text).
    String,
    /// `true` or `false`.
    Boolean,
    /// A 64-bit integer: `type: integer`, or `type: number` with `airbyte_type: integer`.
    Integer,
    /// A number (`type: number`).
    Number,
    /// A calendar date (`format: date`), `2024-01-31`, optionally with a ` BC` suffix.
    Date,
    /// A time of day with an offset (`airbyte_type: time_with_timezone`; the reading of a
    /// bare `format: time`).
    TimeWithTimezone,
    /// A time of day without an offset (`airbyte_type: time_without_timezone`).
    TimeWithoutTimezone,
    /// An instant (`airbyte_type: timestamp_with_timezone`; the reading of a bare
    /// `format: date-time`).
    TimestampWithTimezone,
    /// A local date-time (`airbyte_type: timestamp_without_timezone`).
    TimestampWithoutTimezone,
    /// An object; its properties when the schema lists them.
    Object(Option<Properties>),
    /// An array of items of this type ([`AirbyteType::Unknown`] when `items` is not given).
    Array(Box<AirbyteType>),
    /// A value of any of these (non-null) types, none of them a union.
    Union(Vec<AirbyteType>),
    /// Any JSON value: no type given, or one we do not know.
    Unknown,
}

impl AirbyteType {
    /// Reads the type a (property) JSON schema declares, following the rules in the module
    /// documentation. Never fails: what it cannot read is [`AirbyteType::Unknown`].
    pub fn from_schema(schema: &Value) -> AirbyteType {
        classify(schema).unwrap_or(AirbyteType::Unknown)
    }

    /// The canonical JSON schema of this type, as Airbyte's connectors write it (timestamps
    /// and times carry both `format` and `airbyte_type`).
    pub fn json_schema(&self) -> Value {
        match self {
            AirbyteType::String => json!({"type": "string"}),
            AirbyteType::Boolean => json!({"type": "boolean"}),
            AirbyteType::Integer => json!({"type": "integer"}),
            AirbyteType::Number => json!({"type": "number"}),
            AirbyteType::Date => json!({"type": "string", "format": "date"}),
            AirbyteType::TimeWithTimezone => annotated_string("time", "time_with_timezone"),
            AirbyteType::TimeWithoutTimezone => annotated_string("time", "time_without_timezone"),
            AirbyteType::TimestampWithTimezone => {
                annotated_string("date-time", "timestamp_with_timezone")
            }
            AirbyteType::TimestampWithoutTimezone => {
                annotated_string("date-time", "timestamp_without_timezone")
            }
            AirbyteType::Object(properties) => {
                let mut schema = json!({"type": "object"});
                if let Some(properties) = properties {
                    let properties: Map<String, Value> = properties
                        .iter()
                        .map(|(name, ty)| (name.clone(), ty.json_schema()))
                        .collect();
                    schema["properties"] = Value::Object(properties);
                }
                schema
            }
            AirbyteType::Array(items) => match **items {
                AirbyteType::Unknown => json!({"type": "array"}),
                ref items => json!({"type": "array", "items": items.json_schema()}),
            },
            AirbyteType::Union(options) => {
                json!({"oneOf": options.iter().map(Self::json_schema).collect::<Vec<_>>()})
            }
            AirbyteType::Unknown => json!({}),
        }
    }

    /// [`json_schema`](Self::json_schema) that also admits null: `"type": ["null", T]`, or a
    /// `{"type": "null"}` option first in a union's `oneOf`.
    pub fn nullable_json_schema(&self) -> Value {
        let mut schema = self.json_schema();
        if let Some(Value::String(ty)) = schema.get("type") {
            let ty = ty.clone();
            schema["type"] = json!(["null", ty]);
        } else if let Some(Value::Array(options)) = schema.get_mut("oneOf") {
            options.insert(0, json!({"type": "null"}));
        }
        schema
    }
}

/// A string schema with a `format` and an `airbyte_type`.
fn annotated_string(format: &str, airbyte_type: &str) -> Value {
    json!({"type": "string", "format": format, "airbyte_type": airbyte_type})
}

/// The type of `schema`; `None` when it admits only null.
fn classify(schema: &Value) -> Option<AirbyteType> {
    let Value::Object(map) = schema else {
        // `true` (or a malformed schema): anything goes.
        return Some(AirbyteType::Unknown);
    };
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        return Some(well_known(reference));
    }
    let names: Vec<&str> = match map.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
    if !non_null.is_empty() {
        return Some(union(non_null.into_iter().map(|t| of_type(t, map))));
    }
    if !names.is_empty() {
        return None;
    }
    match alternatives(map) {
        Some(options) => options,
        None => Some(untyped(map)),
    }
}

/// `oneOf` / `anyOf`: `None` when there are none; `Some(None)` when every option is null.
fn alternatives(map: &Map<String, Value>) -> Option<Option<AirbyteType>> {
    let options = ["oneOf", "anyOf"]
        .iter()
        .find_map(|key| map.get(*key).and_then(Value::as_array))?;
    let types: Vec<AirbyteType> = options.iter().filter_map(classify).collect();
    Some((!types.is_empty()).then(|| union(types)))
}

/// One non-null JSON type name, read with the schema's `airbyte_type` and `format`.
fn of_type(name: &str, map: &Map<String, Value>) -> AirbyteType {
    match name {
        "object" => AirbyteType::Object(properties(map)),
        "array" => AirbyteType::Array(Box::new(items(map))),
        "boolean" => AirbyteType::Boolean,
        "string" => annotated(map, true).unwrap_or(AirbyteType::String),
        "integer" => annotated(map, false).unwrap_or(AirbyteType::Integer),
        "number" => annotated(map, false).unwrap_or(AirbyteType::Number),
        _ => AirbyteType::Unknown,
    }
}

/// A schema without `type`, `$ref` or alternatives.
fn untyped(map: &Map<String, Value>) -> AirbyteType {
    if let Some(ty) = annotated(map, true) {
        ty
    } else if map.get("properties").is_some_and(Value::is_object) {
        AirbyteType::Object(properties(map))
    } else if map.contains_key("items") {
        AirbyteType::Array(Box::new(items(map)))
    } else {
        AirbyteType::Unknown
    }
}

/// The type `airbyte_type` names, else (when `format` applies) the type `format` names.
fn annotated(map: &Map<String, Value>, format_applies: bool) -> Option<AirbyteType> {
    let airbyte_type = match map.get("airbyte_type").and_then(Value::as_str) {
        Some("integer") => Some(AirbyteType::Integer),
        Some("timestamp_with_timezone") => Some(AirbyteType::TimestampWithTimezone),
        Some("timestamp_without_timezone") => Some(AirbyteType::TimestampWithoutTimezone),
        Some("time_with_timezone") => Some(AirbyteType::TimeWithTimezone),
        Some("time_without_timezone") => Some(AirbyteType::TimeWithoutTimezone),
        _ => None,
    };
    if airbyte_type.is_some() || !format_applies {
        return airbyte_type;
    }
    match map.get("format").and_then(Value::as_str) {
        Some("date") => Some(AirbyteType::Date),
        Some("date-time") => Some(AirbyteType::TimestampWithTimezone),
        Some("time") => Some(AirbyteType::TimeWithTimezone),
        _ => None,
    }
}

fn properties(map: &Map<String, Value>) -> Option<Properties> {
    let properties = map.get("properties")?.as_object()?;
    Some(
        properties
            .iter()
            .map(|(name, schema)| (name.clone(), AirbyteType::from_schema(schema)))
            .collect(),
    )
}

fn items(map: &Map<String, Value>) -> AirbyteType {
    match map.get("items") {
        Some(items @ Value::Object(_)) => AirbyteType::from_schema(items),
        // Tuple items (an array of schemas) or none: items of any type.
        _ => AirbyteType::Unknown,
    }
}

/// Several types as one: nested unions flattened, duplicates dropped, a single type as itself.
fn union(types: impl IntoIterator<Item = AirbyteType>) -> AirbyteType {
    let mut members: Vec<AirbyteType> = Vec::new();
    for ty in types {
        let flat = match ty {
            AirbyteType::Union(inner) => inner,
            other => vec![other],
        };
        for member in flat {
            if !members.contains(&member) {
                members.push(member);
            }
        }
    }
    match members.len() {
        0 => AirbyteType::Unknown,
        1 => members.remove(0),
        _ => AirbyteType::Union(members),
    }
}

/// A `WellKnownTypes.json#/definitions/<Name>` reference; any other reference is unknown.
fn well_known(reference: &str) -> AirbyteType {
    let Some((_, name)) = reference.split_once(WELL_KNOWN_PREFIX) else {
        return AirbyteType::Unknown;
    };
    match name {
        "String" | "BinaryData" => AirbyteType::String,
        "Boolean" => AirbyteType::Boolean,
        "Integer" => AirbyteType::Integer,
        "Number" => AirbyteType::Number,
        "Date" => AirbyteType::Date,
        "TimeWithTimezone" => AirbyteType::TimeWithTimezone,
        "TimeWithoutTimezone" => AirbyteType::TimeWithoutTimezone,
        "TimestampWithTimezone" => AirbyteType::TimestampWithTimezone,
        "TimestampWithoutTimezone" => AirbyteType::TimestampWithoutTimezone,
        _ => AirbyteType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::AirbyteType::*;
    use super::*;

    fn obj(props: &[(&str, AirbyteType)]) -> AirbyteType {
        Object(Some(
            props
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        ))
    }

    fn arr(items: AirbyteType) -> AirbyteType {
        Array(Box::new(items))
    }

    fn table() -> Vec<(Value, AirbyteType)> {
        let wk = |name: &str| json!({"$ref": format!("WellKnownTypes.json#/definitions/{name}")});
        vec![
            // Plain JSON types.
            (json!({"type": "string"}), String),
            (json!({"type": "boolean"}), Boolean),
            (json!({"type": "integer"}), Integer),
            (json!({"type": "number"}), Number),
            // The documented spellings of each Airbyte type.
            (
                json!({"type": "number", "airbyte_type": "integer"}),
                Integer,
            ),
            (json!({"type": "string", "format": "date"}), Date),
            (
                json!({"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"}),
                TimestampWithTimezone,
            ),
            (
                json!({"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"}),
                TimestampWithoutTimezone,
            ),
            (
                json!({"type": "string", "format": "time", "airbyte_type": "time_with_timezone"}),
                TimeWithTimezone,
            ),
            (
                json!({"type": "string", "format": "time", "airbyte_type": "time_without_timezone"}),
                TimeWithoutTimezone,
            ),
            // Defaults where `airbyte_type` is absent.
            (
                json!({"type": "string", "format": "date-time"}),
                TimestampWithTimezone,
            ),
            (
                json!({"type": "string", "format": "time"}),
                TimeWithTimezone,
            ),
            // `airbyte_type` wins over (a missing or different) `format`.
            (
                json!({"type": "string", "airbyte_type": "timestamp_with_timezone"}),
                TimestampWithTimezone,
            ),
            (
                json!({"type": "string", "airbyte_type": "timestamp_without_timezone"}),
                TimestampWithoutTimezone,
            ),
            (
                json!({"type": "string", "airbyte_type": "time_without_timezone"}),
                TimeWithoutTimezone,
            ),
            (
                json!({"type": "string", "format": "date", "airbyte_type": "timestamp_without_timezone"}),
                TimestampWithoutTimezone,
            ),
            (
                json!({"type": "integer", "airbyte_type": "integer"}),
                Integer,
            ),
            // Unknown `airbyte_type` or `format`: the JSON type decides.
            (
                json!({"type": "number", "airbyte_type": "big_number"}),
                Number,
            ),
            (
                json!({"type": "string", "airbyte_type": "whatever"}),
                String,
            ),
            (json!({"type": "string", "format": "email"}), String),
            (json!({"type": "number", "format": "date"}), Number),
            (
                json!({"type": "boolean", "airbyte_type": "integer"}),
                Boolean,
            ),
            // Format or airbyte_type without type.
            (json!({"format": "date"}), Date),
            (json!({"format": "date-time"}), TimestampWithTimezone),
            (json!({"airbyte_type": "integer"}), Integer),
            (json!({"format": "uri"}), Unknown),
            // Nullable spellings reduce to the non-null type.
            (json!({"type": ["null", "string"]}), String),
            (json!({"type": ["integer", "null"]}), Integer),
            (
                json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"}),
                TimestampWithoutTimezone,
            ),
            (
                json!({"type": ["null", "number"], "airbyte_type": "integer"}),
                Integer,
            ),
            (
                json!({"oneOf": [{"type": "null"}, {"type": "integer"}]}),
                Integer,
            ),
            (
                json!({"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]}),
                Date,
            ),
            (
                json!({"oneOf": [{"type": "null"}, {"$ref": "WellKnownTypes.json#/definitions/TimestampWithoutTimezone"}]}),
                TimestampWithoutTimezone,
            ),
            // Unions of several non-null types.
            (
                json!({"type": ["string", "integer"]}),
                Union(vec![String, Integer]),
            ),
            (
                json!({"type": ["null", "boolean", "number"]}),
                Union(vec![Boolean, Number]),
            ),
            (
                json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
                Union(vec![String, Integer]),
            ),
            (
                json!({"anyOf": [{"type": ["null", "string"]}, {"type": "array"}, {"type": "string"}]}),
                Union(vec![String, arr(Unknown)]),
            ),
            (
                json!({"oneOf": [{"type": ["string", "integer"]}, {"type": "boolean"}]}),
                Union(vec![String, Integer, Boolean]),
            ),
            // Only null, or nothing at all.
            (json!({"type": "null"}), Unknown),
            (json!({"oneOf": [{"type": "null"}]}), Unknown),
            (json!({}), Unknown),
            (json!(true), Unknown),
            (json!({"type": "geometry"}), Unknown),
            (json!({"type": 7}), Unknown),
            // Arrays with and without items.
            (json!({"type": "array"}), arr(Unknown)),
            (
                json!({"type": "array", "items": {"type": "string"}}),
                arr(String),
            ),
            (
                json!({"type": ["null", "array"], "items": {"type": ["null", "number"], "airbyte_type": "integer"}}),
                arr(Integer),
            ),
            (
                json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
                arr(Unknown),
            ),
            (json!({"items": {"type": "boolean"}}), arr(Boolean)),
            // Objects with and without properties.
            (json!({"type": "object"}), Object(None)),
            (json!({"type": "object", "properties": {}}), obj(&[])),
            (
                json!({"type": ["null", "object"], "properties": {
                    "a": {"type": "string"},
                    "b": {"type": "object", "properties": {"c": {"format": "date"}}},
                    "d": {"type": "array", "items": {"type": "object"}}}}),
                obj(&[
                    ("a", String),
                    ("b", obj(&[("c", Date)])),
                    ("d", arr(Object(None))),
                ]),
            ),
            (
                json!({"properties": {"x": {"type": "integer"}}}),
                obj(&[("x", Integer)]),
            ),
            // Well-known type references, as Airbyte catalogs write them.
            (wk("String"), String),
            (wk("BinaryData"), String),
            (wk("Boolean"), Boolean),
            (wk("Integer"), Integer),
            (wk("Number"), Number),
            (wk("Date"), Date),
            (wk("TimestampWithTimezone"), TimestampWithTimezone),
            (wk("TimestampWithoutTimezone"), TimestampWithoutTimezone),
            (wk("TimeWithTimezone"), TimeWithTimezone),
            (wk("TimeWithoutTimezone"), TimeWithoutTimezone),
            (wk("Geography"), Unknown),
            (json!({"$ref": "#/definitions/Integer"}), Unknown),
            (
                json!({"type": "array", "items": {"$ref": "WellKnownTypes.json#/definitions/Date"}}),
                arr(Date),
            ),
        ]
    }

    #[test]
    fn classifies_every_well_known_type_and_odd_combination() {
        let mut wrong = Vec::new();
        for (schema, want) in table() {
            let got = AirbyteType::from_schema(&schema);
            if got != want {
                wrong.push(format!("{schema}: got {got:?}, want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn canonical_schemas_read_back_as_their_type() {
        for (_, ty) in table() {
            let back = AirbyteType::from_schema(&ty.json_schema());
            assert_eq!(back, ty, "{}", ty.json_schema());
            let back = AirbyteType::from_schema(&ty.nullable_json_schema());
            assert_eq!(back, ty, "{}", ty.nullable_json_schema());
        }
    }

    #[test]
    fn nullable_schemas_spell_null_as_airbyte_does() {
        assert_eq!(
            TimestampWithTimezone.nullable_json_schema(),
            json!({"type": ["null", "string"], "format": "date-time",
                   "airbyte_type": "timestamp_with_timezone"})
        );
        assert_eq!(
            Union(vec![String, Integer]).nullable_json_schema(),
            json!({"oneOf": [{"type": "null"}, {"type": "string"}, {"type": "integer"}]})
        );
        assert_eq!(Unknown.nullable_json_schema(), json!({}));
    }
}
