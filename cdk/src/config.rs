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
/// `format` is an annotation, not an assertion: Airbyte's CDK validates configs with
/// jsonschema's `validate` and no format checker, so `format: date` on a value whose
/// `pattern` wants another layout passes there and here.
pub fn validate(spec: &Value, config: &Value) -> Result<()> {
    let validator = jsonschema::draft7::options()
        .should_validate_formats(false)
        .build(spec)
        .map_err(|e| {
            Error::system(format!(
                "the connector's own spec is not a valid JSON Schema: {e}"
            ))
        })?;
    let problems: Vec<String> = validator
        .iter_errors(config)
        .map(|e| render_error(spec, &e))
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

/// One violation as a message naming its field. A `oneOf` failure names the choices instead of
/// jsonschema's "is not valid under any of the schemas listed in the 'oneOf' keyword".
fn render_error(spec: &Value, e: &jsonschema::ValidationError<'_>) -> String {
    if let jsonschema::error::ValidationErrorKind::OneOfNotValid { .. } = e.kind()
        && let Some(Value::Array(variants)) = schema_at(spec, e.schema_path().as_str())
        && let Some(message) =
            one_of_message(variants, &dotted(e.instance_path().as_str()), e.instance())
    {
        return message;
    }
    let path = e.instance_path().to_string();
    let field = if path.is_empty() {
        "config".to_string()
    } else {
        format!("'{path}'")
    };
    format!("{field}: {e}")
}

/// The schema node at a JSON pointer into `root`, following local `$ref`s on the way.
fn schema_at<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = root;
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = if segment == "$ref" {
            let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
            root.pointer(target)?
        } else {
            match node {
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => node.get(&segment)?,
            }
        };
    }
    Some(node)
}

/// `/ssl_mode/mode` → `ssl_mode.mode`, `/endpoints/0/name` → `endpoints[0].name`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// The single value a schema allows (`const`, or an `enum` of one).
fn only_value(schema: &Value) -> Option<&Value> {
    schema.get("const").or_else(|| match schema.get("enum") {
        Some(Value::Array(one)) if one.len() == 1 => one.first(),
        _ => None,
    })
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// "`field`.`key` must be one of: a, b; got 'c'" when the variants differ by a constant
/// property (`mode`, `method`, ...) or are constants themselves; for a known choice whose other
/// fields are wrong, the violations of that choice.
fn one_of_message(variants: &[Value], field: &str, instance: &Value) -> Option<String> {
    let at = |key: &str| match field {
        "" => key.to_string(),
        f => format!("{f}.{key}"),
    };
    if let Some(choices) = variants
        .iter()
        .map(only_value)
        .collect::<Option<Vec<&Value>>>()
    {
        let list: Vec<String> = choices.iter().map(|v| show(v)).collect();
        let name = if field.is_empty() { "config" } else { field };
        return Some(format!(
            "{name} must be one of: {}; got '{}'",
            list.join(", "),
            show(instance)
        ));
    }
    let first = variants.first()?.get("properties")?.as_object()?;
    let key = first.keys().find(|k| {
        variants.iter().all(|v| {
            v.get("properties")
                .and_then(|p| p.get(k.as_str()))
                .and_then(only_value)
                .is_some()
        })
    })?;
    let choices: Vec<&Value> = variants
        .iter()
        .filter_map(|v| only_value(v.get("properties")?.get(key.as_str())?))
        .collect();
    let list: Vec<String> = choices.iter().map(|v| show(v)).collect();
    let Some(got) = instance.get(key.as_str()) else {
        return Some(format!(
            "{} is required, one of: {}",
            at(key),
            list.join(", ")
        ));
    };
    let Some(i) = choices.iter().position(|c| *c == got) else {
        return Some(format!(
            "{} must be one of: {}; got '{}'",
            at(key),
            list.join(", "),
            show(got)
        ));
    };
    let validator = jsonschema::draft7::new(&variants[i]).ok()?;
    let inner: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let path = dotted(e.instance_path().as_str());
            let name = match (field, path.as_str()) {
                ("", "") => "config".to_string(),
                (f, "") => f.to_string(),
                ("", p) => p.to_string(),
                (f, p) => format!("{f}.{p}"),
            };
            format!("{name}: {e}")
        })
        .collect();
    Some(format!("{} '{}': {}", at(key), show(got), inner.join("; ")))
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
    fn formats_are_annotations_patterns_assertions() {
        let spec = json!({"type": "object", "properties": {"start": {"type": "string",
            "format": "date", "pattern": "^[0-9]{2}/[0-9]{2}/[0-9]{4}$"}}});
        validate(&spec, &json!({"start": "01/31/2024"})).unwrap();
        let err = validate(&spec, &json!({"start": "2024-01-31"})).unwrap_err();
        assert!(err.message.contains("'/start'"), "{}", err.message);
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

    fn one_of_spec() -> Value {
        let variant = |mode: &str, extra: Value| {
            let mut props = json!({"mode": {"type": "string", "const": mode}});
            props
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"type": "object", "required": ["mode"], "properties": props})
        };
        let modes = ["disable", "allow", "prefer", "require"];
        let mut variants: Vec<Value> = modes.iter().map(|m| variant(m, json!({}))).collect();
        for m in ["verify-ca", "verify-full"] {
            let mut v = variant(m, json!({"ca_certificate": {"type": "string"}}));
            v["required"] = json!(["mode", "ca_certificate"]);
            variants.push(v);
        }
        json!({"type": "object", "properties": {
            "ssl_mode": {"oneOf": variants},
            "format": {"$ref": "#/definitions/Format"},
        }, "definitions": {"Format": {"oneOf": [{"const": "csv"}, {"enum": ["jsonl"]}]}}})
    }

    fn message(config: Value) -> String {
        validate(&one_of_spec(), &config).unwrap_err().message
    }

    #[test]
    fn one_of_names_the_field_and_the_choices() {
        insta::assert_snapshot!(
            message(json!({"ssl_mode": {"mode": "sometimes"}})),
            @"config validation error: ssl_mode.mode must be one of: disable, allow, prefer, require, verify-ca, verify-full; got 'sometimes'"
        );
        insta::assert_snapshot!(
            message(json!({"ssl_mode": {}})),
            @"config validation error: ssl_mode.mode is required, one of: disable, allow, prefer, require, verify-ca, verify-full"
        );
        insta::assert_snapshot!(
            message(json!({"ssl_mode": {"mode": "verify-ca"}})),
            @r#"config validation error: ssl_mode.mode 'verify-ca': ssl_mode: "ca_certificate" is a required property"#
        );
        insta::assert_snapshot!(
            message(json!({"format": "parquet"})),
            @"config validation error: format must be one of: csv, jsonl; got 'parquet'"
        );
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/endpoints/0/name"), "endpoints[0].name");
        assert_eq!(dotted(""), "");
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
