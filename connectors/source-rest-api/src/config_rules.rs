//! `config_normalization_rules` of the manifest's `Spec`, as airbyte-cdk applies them:
//! `config_migrations` rewrite the config file once (announced in a CONTROL message),
//! `transformations` change the config every command sees without persisting it, and
//! `validations` (`DpathValidator`, `PredicateValidator` with `ValidateAdheresToSchema`) fail a
//! config that breaks them. The transformations are `ConfigAddFields`, `ConfigRemapField` and
//! `ConfigRemoveFields`; every template sees the config as transformed so far.

use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::{Map, Value, json};

use crate::interpolation::{Interpolator, Structure, Template, Vars, to_mj};

const TRANSFORMATIONS: [&str; 3] = ["ConfigAddFields", "ConfigRemapField", "ConfigRemoveFields"];
const VALIDATORS: [&str; 2] = ["DpathValidator", "PredicateValidator"];

/// The rules of a `$ref`-resolved manifest, if it has any.
pub fn of(manifest: &Value) -> Option<&Value> {
    manifest
        .get("spec")?
        .get("config_normalization_rules")
        .filter(|r| !r.is_null())
}

fn list<'v>(rules: &'v Value, key: &str) -> Result<&'v [Value]> {
    match rules.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(error(format!("'{key}' must be a list, got {other}"))),
    }
}

fn error(message: impl std::fmt::Display) -> Error {
    Error::config(format!("config_normalization_rules: {message}"))
}

fn type_of(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Refuses, when the manifest loads, rules of types the engine does not know.
pub fn check(rules: &Value) -> Result<()> {
    let known = |v: &Value, types: &[&str], at: &str| -> Result<()> {
        let t = type_of(v);
        if types.contains(&t) {
            return Ok(());
        }
        Err(crate::manifest::unsupported_type(t, at, types))
    };
    for (i, m) in list(rules, "config_migrations")?.iter().enumerate() {
        for (j, t) in list(m, "transformations")?.iter().enumerate() {
            let at = format!(
                "/spec/config_normalization_rules/config_migrations/{i}/transformations/{j}"
            );
            known(t, &TRANSFORMATIONS, &at)?;
        }
    }
    for (i, t) in list(rules, "transformations")?.iter().enumerate() {
        known(
            t,
            &TRANSFORMATIONS,
            &format!("/spec/config_normalization_rules/transformations/{i}"),
        )?;
    }
    for (i, v) in list(rules, "validations")?.iter().enumerate() {
        let at = format!("/spec/config_normalization_rules/validations/{i}");
        known(v, &VALIDATORS, &at)?;
        let strategy = v.get("validation_strategy").unwrap_or(&Value::Null);
        known(
            strategy,
            &["ValidateAdheresToSchema"],
            &format!("{at}/validation_strategy"),
        )?;
    }
    Ok(())
}

/// Applies the `config_migrations`; whether the config changed.
pub fn migrate(rules: &Value, config: &mut Value) -> Result<bool> {
    let before = config.clone();
    for m in list(rules, "config_migrations")? {
        for t in list(m, "transformations")? {
            transform_one(t, config)?;
        }
    }
    Ok(*config != before)
}

/// Applies the `transformations`.
pub fn transform(rules: &Value, config: &mut Value) -> Result<()> {
    for t in list(rules, "transformations")? {
        transform_one(t, config)?;
    }
    Ok(())
}

/// Runs the `validations` on `config`.
pub fn validate(rules: &Value, config: &Value) -> Result<()> {
    for v in list(rules, "validations")? {
        let strategy = v.get("validation_strategy").unwrap_or(&Value::Null);
        match type_of(v) {
            "DpathValidator" => {
                // airbyte-cdk evaluates the path with an empty config.
                let path = strings(v.get("field_path"), &json!({}), "field_path")?;
                if path.is_empty() {
                    return Err(error("DpathValidator: field path is empty"));
                }
                let mut found = Vec::new();
                crate::selector::glob_values(config, &path, &mut found);
                if found.is_empty() {
                    tracing::info!("validation skipped: the config has no value at {path:?}");
                }
                for value in found {
                    adheres(strategy, value, config)?;
                }
            }
            _ => {
                let value = v.get("value").cloned().unwrap_or(Value::Null);
                let value = Structure::new(&engine(config), &value, &json!({}))
                    .map_err(|e| error(format!("PredicateValidator value: {e}")))?
                    .eval(&Vars::new())?;
                adheres(strategy, &value, config)?;
            }
        }
    }
    Ok(())
}

/// `ValidateAdheresToSchema`: a string value is parsed as JSON first.
fn adheres(strategy: &Value, value: &Value, config: &Value) -> Result<()> {
    let schema = match strategy.get("base_schema") {
        Some(Value::String(s)) => {
            let text = template(s, config)?
                .eval_str(&Vars::new())?
                .unwrap_or_default();
            serde_json::from_str(&text)
                .map_err(|e| error(format!("base_schema is not a JSON schema: {e}")))?
        }
        Some(v @ Value::Object(_)) => v.clone(),
        other => {
            return Err(error(format!(
                "base_schema must be a mapping, got {other:?}"
            )));
        }
    };
    let parsed;
    let value = match value {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| error(format!("Invalid JSON string: {s}")))?;
            &parsed
        }
        v => v,
    };
    cdk::config::validate(&schema, value).map_err(|e| {
        let m = e.message.trim_start_matches("config validation error: ");
        error(format!("JSON schema validation error: {m}"))
    })
}

fn engine(config: &Value) -> Arc<Interpolator> {
    Interpolator::new(config)
}

fn template(text: &str, config: &Value) -> Result<Template> {
    Template::new(&engine(config), text, &json!({})).map_err(|e| error(format!("'{text}': {e}")))
}

/// A list of path segments, each a template over `config`.
fn strings(v: Option<&Value>, config: &Value, key: &str) -> Result<Vec<String>> {
    let Some(Value::Array(items)) = v else {
        return Err(error(format!("'{key}' must be a list of strings")));
    };
    items
        .iter()
        .map(|i| {
            let text = match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok(template(&text, config)?
                .eval_str(&Vars::new())?
                .unwrap_or_default())
        })
        .collect()
}

/// A `condition` (empty: true), with `extra` variables beside `config`.
fn condition(t: &Value, config: &Value, extra: Vars) -> Result<bool> {
    match t.get("condition").and_then(Value::as_str) {
        None | Some("") => Ok(true),
        Some(c) => template(c, config)?.eval_bool(&extra),
    }
}

fn transform_one(t: &Value, config: &mut Value) -> Result<()> {
    match type_of(t) {
        "ConfigAddFields" => add_fields(t, config),
        "ConfigRemapField" => remap(t, config),
        "ConfigRemoveFields" => {
            if !condition(t, config, Vars::new())? {
                return Ok(());
            }
            let Some(Value::Array(pointers)) = t.get("field_pointers") else {
                return Err(error("ConfigRemoveFields: 'field_pointers' must be a list"));
            };
            for p in pointers {
                let path: Vec<String> = p
                    .as_array()
                    .map(|a| a.iter().map(crate::interpolation::scalar_text).collect())
                    .unwrap_or_default();
                remove(config, &path);
            }
            Ok(())
        }
        other => Err(crate::manifest::unsupported_type(
            other,
            "/spec/config_normalization_rules",
            &TRANSFORMATIONS,
        )),
    }
}

fn add_fields(t: &Value, config: &mut Value) -> Result<()> {
    let Some(Value::Array(fields)) = t.get("fields") else {
        return Err(error("ConfigAddFields: 'fields' must be a list"));
    };
    for f in fields {
        let path = strings(f.get("path"), &json!({}), "path")?;
        if path.is_empty() {
            return Err(error("ConfigAddFields: a field has an empty path"));
        }
        let text = match f.get("value") {
            Some(Value::String(s)) => s.clone(),
            other => {
                return Err(error(format!(
                    "ConfigAddFields: expected a string value, got {}",
                    other.unwrap_or(&Value::Null)
                )));
            }
        };
        let t_value = template(&text, config)?;
        let value = match f.get("value_type").and_then(Value::as_str) {
            Some("string") => Value::String(t_value.eval_str(&Vars::new())?.unwrap_or_default()),
            _ => t_value.eval(&Vars::new())?,
        };
        let vars = Vars::new()
            .with("value", to_mj(&value))
            .with("property", to_mj(&value))
            .with("path", to_mj(&path));
        if condition(t, config, vars)? {
            set_new(config, &path, value);
        }
    }
    Ok(())
}

fn remap(t: &Value, config: &mut Value) -> Result<()> {
    let path = strings(t.get("field_path"), config, "field_path")?;
    let Some((field, parents)) = path.split_last() else {
        return Err(error("ConfigRemapField: field_path cannot be empty"));
    };
    let mapping = match t.get("map") {
        Some(Value::String(s)) => template(s, config)?.eval(&Vars::new())?,
        Some(m) => Structure::new(&engine(config), m, &json!({}))
            .map_err(|e| error(format!("ConfigRemapField map: {e}")))?
            .eval(&Vars::new())?,
        None => return Err(error("ConfigRemapField: 'map' is required")),
    };
    let Value::Object(mapping) = mapping else {
        return Err(error("ConfigRemapField: 'map' must be a mapping"));
    };
    let mut current = &mut *config;
    for p in parents {
        match current.get_mut(p.as_str()) {
            Some(next @ Value::Object(_)) => current = next,
            _ => return Ok(()),
        }
    }
    if let Some(slot) = current.get_mut(field.as_str())
        && let Value::String(s) = slot
        && let Some(new) = mapping.get(s.as_str())
    {
        *slot = new.clone();
    }
    Ok(())
}

/// dpath's `new`: `value` at `path`, creating objects on the way (replacing non-objects).
fn set_new(config: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = config;
    for p in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        cur = m
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(m) = cur {
        m.insert(last.clone(), value);
    }
}

/// dpath's `delete` of one pointer: a key is removed, a list item becomes null; a missing
/// path is no error.
fn remove(config: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = config;
    for p in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(p.as_str()),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            m.remove(last.as_str());
        }
        Value::Array(a) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *slot = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformations_see_the_config_as_transformed_so_far() {
        let rules = json!({"type": "ConfigNormalizationRules", "transformations": [
            {"type": "ConfigRemapField", "field_path": ["region"], "map": {"eu": "europe"}},
            {"type": "ConfigAddFields", "fields": [{"path": ["host"], "value": "{{ config.region }}.example.com"}]},
            {"type": "ConfigAddFields", "condition": "{{ value > 2 }}", "fields": [{"path": ["a", "n"], "value": "{{ 1 + 1 }}"}]},
            {"type": "ConfigRemoveFields", "field_pointers": [["tmp"], ["list", "0"], ["missing", "x"]]}
        ]});
        check(&rules).unwrap();
        let mut config = json!({"region": "eu", "tmp": 1, "list": [1, 2]});
        transform(&rules, &mut config).unwrap();
        assert_eq!(
            config,
            json!({"region": "europe", "host": "europe.example.com", "list": [null, 2]})
        );
        let custom =
            json!({"transformations": [{"type": "CustomConfigTransformation", "class_name": "x"}]});
        assert!(
            check(&custom)
                .unwrap_err()
                .message
                .contains("CustomConfigTransformation")
        );
    }
}
