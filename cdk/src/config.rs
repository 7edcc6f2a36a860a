//! Reading a connector's config: a JSON object file, validated against the spec's
//! `connectionSpecification` (every violation listed, naming the field), then deserialised into
//! the connector's typed config, whose [`Validate`] hook then checks the rules a schema cannot
//! say. Secrets found in it are registered for masking first, so no error message can leak
//! them.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result, secrets};

/// Cross-field rules of a typed config, checked by [`load`] (so for every command) after the
/// config matched the spec. The default accepts everything.
///
/// ```
/// # use cdk::{Error, Result};
/// struct Config { min: u32, max: u32 }
/// impl cdk::config::Validate for Config {
///     fn validate(&self) -> Result<()> {
///         if self.min > self.max {
///             return Err(Error::config(format!("'min' {} is above 'max' {}", self.min, self.max)));
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Validate {
    /// Checks the config; a violation is a config error naming the field and its value.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// An untyped config: nothing beyond the spec to check.
impl Validate for Value {}

/// Reads and parses a JSON file; `what` names it in errors ("config", "catalog", "state").
pub fn read_json_file(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let context = format!("cannot read {what} file '{}'", path.display());
        Error::from_cause(crate::protocol::FailureType::ConfigError, context, e)
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "{what} file '{}' is not valid JSON: {e}",
            path.display()
        ))
    })
}

/// Loads the config at `path`: a JSON object that validates against `spec`, deserialises into
/// `C` and passes `C`'s [`Validate`] hook. Returns the typed config and the raw JSON.
pub fn load<C: DeserializeOwned + Validate>(path: &Path, spec: &Value) -> Result<(C, Value)> {
    let raw = read_json_file(path, "config")?;
    secrets::register_from_config(spec, &raw);
    let typed = from_value(&raw, spec)?;
    Ok((typed, raw))
}

/// Validates `raw` against `spec`, deserialises it and runs `C`'s [`Validate`] hook.
pub fn from_value<C: DeserializeOwned + Validate>(raw: &Value, spec: &Value) -> Result<C> {
    if !raw.is_object() {
        return Err(Error::config(format!(
            "config must be a JSON object, got {}",
            kind_of(raw)
        )));
    }
    validate(spec, raw)?;
    let typed: C = serde_json::from_value(raw.clone())
        .map_err(|e| Error::config(format!("config validation error: {e}")))?;
    typed.validate()?;
    Ok(typed)
}

/// Checks `config` against the JSON Schema `spec`, listing every violation with its field.
pub fn validate(spec: &Value, config: &Value) -> Result<()> {
    let validator = jsonschema::draft7::new(spec).map_err(|e| {
        Error::system(format!(
            "the connector's own spec is not a valid JSON Schema: {e}"
        ))
    })?;
    let problems: Vec<String> = validator
        .iter_errors(config)
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
    fn underscore_keys_are_validated_like_any_other() {
        let spec = json!({"type": "object", "additionalProperties": false, "properties": {}});
        let err = validate(&spec, &json!({"_limit": 3})).unwrap_err();
        assert!(err.message.contains("_limit"), "{}", err.message);
    }

    #[derive(Debug, serde::Deserialize)]
    struct Range {
        min: u32,
        max: u32,
    }

    impl Validate for Range {
        fn validate(&self) -> Result<()> {
            if self.min > self.max {
                return Err(Error::config(format!(
                    "'min' {} is above 'max' {}",
                    self.min, self.max
                )));
            }
            Ok(())
        }
    }

    #[test]
    fn loading_runs_the_validate_hook() {
        let spec = json!({"type": "object"});
        let err = from_value::<Range>(&json!({"min": 3, "max": 1}), &spec).unwrap_err();
        assert_eq!(err.message, "'min' 3 is above 'max' 1");
        assert_eq!(err.failure_type, crate::protocol::FailureType::ConfigError);
        let ok = from_value::<Range>(&json!({"min": 1, "max": 3}), &spec).unwrap();
        assert_eq!((ok.min, ok.max), (1, 3));
    }
}
