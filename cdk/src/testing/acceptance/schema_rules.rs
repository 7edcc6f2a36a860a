//! Rules for specs and record schemas: what the platform's UI and Airbyte's acceptance tests
//! require of a `connectionSpecification`, and validating records with Airbyte's formats.

use serde_json::{Map, Value};

use crate::protocol::AirbyteType;

/// Keywords the platform cannot render or that hide structure.
const FORBIDDEN: &[&str] = &[
    "allOf",
    "anyOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "prefixItems",
    "dependentSchemas",
    "dependentRequired",
];

/// Property names that must be marked `airbyte_secret` (exact, case-insensitive).
const SECRET_NAMES: &[&str] = &[
    "password",
    "token",
    "secret",
    "api_key",
    "apikey",
    "api_token",
    "access_key",
    "access_token",
    "refresh_token",
    "client_secret",
    "client_token",
    "secret_key",
    "secret_access_key",
    "private_key",
    "session_token",
    "jwt",
];

/// Everything wrong with a connection specification (empty when it is fine).
pub fn spec_problems(spec: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if spec.get("type").and_then(Value::as_str) != Some("object") {
        problems.push("the top level must be `type: object`".to_string());
    }
    if let Err(e) = jsonschema::draft7::meta::validate(spec) {
        problems.push(format!("not a valid draft-07 JSON Schema: {e}"));
    } else if let Err(e) = jsonschema::draft7::new(spec) {
        problems.push(format!("does not compile as draft-07: {e}"));
    }
    walk(spec, "#", &mut problems);
    problems
}

fn walk(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Value::Object(map) = schema else { return };
    for key in FORBIDDEN {
        if map.contains_key(*key) {
            problems.push(format!("{path}: forbidden keyword '{key}'"));
        }
    }
    if map.contains_key("$ref") {
        problems.push(format!("{path}: unresolved '$ref'"));
    }
    if let Some(Value::Array(variants)) = map.get("oneOf") {
        one_of_problems(map, variants, path, problems);
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, sub) in props {
            let sub_path = format!("{path}/properties/{name}");
            if is_secret_name(name) && can_hold_secret(sub) && !is_marked_secret(sub) {
                problems.push(format!(
                    "{sub_path}: looks like a secret but is not airbyte_secret"
                ));
            }
            walk(sub, &sub_path, problems);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get(key) {
            walk(sub, &format!("{path}/{key}"), problems);
        }
    }
    for key in ["oneOf", "definitions", "$defs"] {
        match map.get(key) {
            Some(Value::Array(items)) => {
                for (i, sub) in items.iter().enumerate() {
                    walk(sub, &format!("{path}/{key}/{i}"), problems);
                }
            }
            Some(Value::Object(items)) => {
                for (name, sub) in items {
                    walk(sub, &format!("{path}/{key}/{name}"), problems);
                }
            }
            _ => {}
        }
    }
}

fn one_of_problems(
    parent: &Map<String, Value>,
    variants: &[Value],
    path: &str,
    out: &mut Vec<String>,
) {
    if parent.get("type").and_then(Value::as_str) != Some("object") {
        out.push(format!("{path}: a oneOf parent must be `type: object`"));
    }
    let consts: Vec<Vec<(&String, &Value)>> = variants
        .iter()
        .map(|v| {
            v.get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .filter_map(|(k, s)| Some((k, s.get("const")?)))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    if variants
        .iter()
        .any(|v| v.get("properties").and_then(Value::as_object).is_none())
    {
        out.push(format!("{path}: every oneOf variant needs properties"));
        return;
    }
    let common: Vec<&String> = consts
        .first()
        .map(|first| {
            first
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| consts.iter().all(|c| c.iter().any(|(n, _)| n == k)))
                .collect()
        })
        .unwrap_or_default();
    if common.len() != 1 {
        out.push(format!(
            "{path}: oneOf variants need exactly one common `const` property, found {}",
            common.len()
        ));
        return;
    }
    let key = common[0];
    let mut values: Vec<String> = consts
        .iter()
        .filter_map(|c| {
            c.iter()
                .find(|(n, _)| *n == key)
                .map(|(_, v)| v.to_string())
        })
        .collect();
    values.sort();
    values.dedup();
    if values.len() != variants.len() {
        out.push(format!("{path}: oneOf variants share a '{key}' value"));
    }
}

fn is_secret_name(name: &str) -> bool {
    SECRET_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name))
}

fn can_hold_secret(schema: &Value) -> bool {
    if schema.get("const").is_some() {
        return false;
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    types
        .iter()
        .any(|t| matches!(*t, "string" | "integer" | "number"))
}

fn is_marked_secret(schema: &Value) -> bool {
    schema.get("airbyte_secret").and_then(Value::as_bool) == Some(true)
}

/// A validator for records of a stream: its JSON schema, with `format`s replaced by Airbyte's
/// patterns (BC dates and timestamps without a time zone are valid values there).
pub fn record_validator(schema: &Value) -> Result<jsonschema::Validator, String> {
    let mut schema = schema.clone();
    airbyte_formats(&mut schema);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("stream schema does not compile: {e}"))
}

fn airbyte_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let declares = ["format", "airbyte_type", "$ref"]
                .iter()
                .any(|key| map.get(*key).is_some_and(Value::is_string));
            if declares {
                let ty = AirbyteType::from_schema(&Value::Object(map.clone()));
                if map.remove("$ref").is_some() {
                    // The validator cannot fetch `WellKnownTypes.json`: inline the type.
                    if let Value::Object(inline) = ty.json_schema() {
                        map.extend(inline);
                    }
                }
                if let Some(pattern) = pattern(&ty) {
                    map.remove("format");
                    map.insert("pattern".into(), pattern.into());
                }
            }
            map.values_mut().for_each(airbyte_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(airbyte_formats),
        _ => {}
    }
}

/// The values Airbyte accepts for a date or time type (`airbyte_well_known_types.yaml`, with
/// years of four or more digits).
fn pattern(ty: &AirbyteType) -> Option<&'static str> {
    Some(match ty {
        AirbyteType::Date => r"^\d{4,}-\d{2}-\d{2}( BC)?$",
        AirbyteType::TimestampWithoutTimezone => {
            r"^\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?( BC)?$"
        }
        AirbyteType::TimestampWithTimezone => {
            r"^\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+\-]\d{1,2}:\d{2})( BC)?$"
        }
        AirbyteType::TimeWithoutTimezone => r"^\d{2}:\d{2}:\d{2}(\.\d+)?$",
        // A bare `format: time` reads as a time with time zone, and sources writing it often
        // leave the offset out: the offset is optional here.
        AirbyteType::TimeWithTimezone => r"^\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+\-]\d{1,2}(:\d{2})?)?$",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_bad_specs() {
        let spec = json!({"type": "object", "properties": {
            "password": {"type": "string"},
            "mode": {"allOf": [{"type": "string"}]},
            "ssl": {"type": "object", "oneOf": [
                {"properties": {"mode": {"const": "a"}}},
                {"properties": {"other": {"const": "b"}}}
            ]},
            "r": {"$ref": "#/definitions/x"}
        }});
        let problems = spec_problems(&spec).join("\n");
        assert!(
            problems.contains("password: looks like a secret"),
            "{problems}"
        );
        assert!(problems.contains("forbidden keyword 'allOf'"), "{problems}");
        assert!(
            problems.contains("exactly one common `const`"),
            "{problems}"
        );
        assert!(problems.contains("unresolved '$ref'"), "{problems}");
    }

    #[test]
    fn accepts_a_good_spec() {
        let spec = json!({"type": "object", "properties": {
            "password": {"type": "string", "airbyte_secret": true},
            "ssl": {"type": "object", "oneOf": [
                {"properties": {"mode": {"const": "a"}}},
                {"properties": {"mode": {"const": "b"}, "key": {"type": "string", "airbyte_secret": true}}}
            ]}
        }});
        assert_eq!(spec_problems(&spec), Vec::<String>::new());
    }

    #[test]
    fn records_use_airbyte_formats() {
        let schema = json!({"type": "object", "properties": {
            "d": {"type": "string", "format": "date"},
            "ts": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
            "tz": {"type": "string", "format": "date-time"},
            "n": {"type": "integer"}
        }});
        let v = record_validator(&schema).unwrap();
        assert!(v.is_valid(&json!({"d": "0044-03-15 BC", "ts": "2024-01-01T10:00:00", "tz": "2024-01-01T10:00:00Z", "n": 1})));
        assert!(!v.is_valid(&json!({"tz": "2024-01-01T10:00:00"})));
        assert!(!v.is_valid(&json!({"d": "yesterday"})));
        assert!(!v.is_valid(&json!({"n": "1"})));
    }

    #[test]
    fn record_formats_follow_the_airbyte_type_not_only_format() {
        let schema = json!({"type": "object", "properties": {
            "tz": {"type": ["null", "string"], "airbyte_type": "timestamp_with_timezone"},
            "t": {"type": "string", "airbyte_type": "time_without_timezone"},
            "wk": {"$ref": "WellKnownTypes.json#/definitions/TimestampWithoutTimezone"},
            "opt": {"oneOf": [{"type": "null"}, {"type": "string", "format": "date"}]}
        }});
        let v = record_validator(&schema).unwrap();
        assert!(
            v.is_valid(&json!({"tz": "2024-01-01T10:00:00Z", "t": "10:00:00",
            "wk": "2024-01-01T10:00:00", "opt": "2024-01-01"}))
        );
        assert!(v.is_valid(&json!({"tz": null, "opt": null})));
        assert!(!v.is_valid(&json!({"tz": "2024-01-01T10:00:00"})));
        assert!(!v.is_valid(&json!({"t": "10:00:00+01:00"})));
        assert!(!v.is_valid(&json!({"wk": "2024-01-01T10:00:00Z"})));
        assert!(!v.is_valid(&json!({"wk": 5})));
        assert!(!v.is_valid(&json!({"opt": "today"})));
    }
}
