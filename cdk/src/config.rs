//! Reading a connector's config: a JSON object file, validated against the spec's
//! `connectionSpecification` (every violation listed, naming the field), then deserialised into
//! the connector's typed config. Secrets found in it are registered for masking first, so no
//! error message can leak them.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result, secrets};

/// Reads and parses a JSON file; `what` names it in errors ("config", "catalog", "state").
pub fn read_json_file(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read {what} file '{}': {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "{what} file '{}' is not valid JSON: {e}",
            path.display()
        ))
    })
}

/// Loads the config at `path`: must be a JSON object that validates against `spec`.
pub fn load<C: DeserializeOwned>(path: &Path, spec: &Value) -> Result<(C, Value)> {
    let raw = read_json_file(path, "config")?;
    secrets::register_from_config(spec, &raw);
    let typed = from_value(&raw, spec)?;
    Ok((typed, raw))
}

/// Validates `raw` against `spec` and deserialises it.
pub fn from_value<C: DeserializeOwned>(raw: &Value, spec: &Value) -> Result<C> {
    if !raw.is_object() {
        return Err(Error::config(format!(
            "config must be a JSON object, got {}",
            kind_of(raw)
        )));
    }
    validate(spec, raw)?;
    serde_json::from_value(raw.clone())
        .map_err(|e| Error::config(format!("config validation error: {e}")))
}

/// Checks `config` against the JSON Schema `spec`, listing every violation with its field.
/// Keys starting with `_` are internal (test-only knobs) and are not validated.
pub fn validate(spec: &Value, config: &Value) -> Result<()> {
    let validator = jsonschema::draft7::new(spec).map_err(|e| {
        Error::system(format!(
            "the connector's own spec is not a valid JSON Schema: {e}"
        ))
    })?;
    let mut config = config.clone();
    if let Value::Object(map) = &mut config {
        map.retain(|k, _| !k.starts_with('_'));
    }
    let problems: Vec<String> = validator
        .iter_errors(&config)
        .map(|e| {
            let path = e.instance_path().to_string();
            let field = if path.is_empty() {
                "config".to_string()
            } else {
                format!("'{path}'")
            };
            format!("{field}: {e}")
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::config(format!(
            "config validation error: {}",
            problems.join("; ")
        )))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({"type": "object", "required": ["host", "port"], "properties": {
            "host": {"type": "string"}, "port": {"type": "integer"}}})
    }

    #[test]
    fn lists_every_violation_by_field() {
        let err = validate(&spec(), &json!({"port": "x"})).unwrap_err();
        assert!(err.message.contains("'/port'"), "{}", err.message);
        assert!(
            err.message.contains("\"host\" is a required property"),
            "{}",
            err.message
        );
        assert_eq!(err.failure_type, crate::protocol::FailureType::ConfigError);
    }

    #[test]
    fn rejects_non_objects() {
        let err = from_value::<Value>(&json!([1]), &spec()).unwrap_err();
        assert_eq!(err.message, "config must be a JSON object, got an array");
    }

    #[test]
    fn internal_keys_are_not_validated() {
        let spec = json!({"type": "object", "additionalProperties": false, "properties": {}});
        validate(&spec, &json!({"_limit": 3})).unwrap();
    }
}
