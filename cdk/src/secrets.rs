//! Secrets: a config type that never prints itself, and the process-wide mask applied to every
//! log line, trace, connection status and error we write.

use std::borrow::Cow;
use std::sync::RwLock;

use aho_corasick::{AhoCorasick, MatchKind};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a secret prints as, everywhere.
const MASK: &str = "****";

/// A config value marked `airbyte_secret` in the spec; `Debug` and `Display` print `****`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The real value. Call it only where the secret is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl<T: JsonSchema> JsonSchema for Secret<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Secret_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = T::json_schema(generator);
        schema.insert("airbyte_secret".into(), true.into());
        schema
    }
}

struct Mask {
    values: Vec<String>,
    matcher: Option<AhoCorasick>,
}

static MASKS: RwLock<Mask> = RwLock::new(Mask {
    values: Vec::new(),
    matcher: None,
});

/// Adds a value to mask in all output from now on (e.g. a token obtained at run time).
pub fn register(value: &str) {
    // Very short values would mask ordinary text everywhere; they are not real secrets.
    if value.len() < 2 {
        return;
    }
    let Ok(mut mask) = MASKS.write() else { return };
    if mask.values.iter().any(|v| v == value) {
        return;
    }
    mask.values.push(value.to_string());
    // JSON-escaped forms too, so a secret with quotes is caught inside serialised text.
    if let Ok(escaped) = serde_json::to_string(value) {
        let inner = &escaped[1..escaped.len() - 1];
        if inner != value {
            mask.values.push(inner.to_string());
        }
    }
    // Leftmost-longest: with secrets "ab" and "abc", "abc" is masked whole.
    mask.matcher = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&mask.values)
        .ok();
}

/// Registers every string found at an `airbyte_secret` path of `spec` in `config`.
pub fn register_from_config(spec: &Value, config: &Value) {
    for value in secret_values(spec, config) {
        register(&value);
    }
}

/// Values of `config` at properties the schema marks `airbyte_secret`, through nested objects
/// and every `oneOf`/`anyOf` variant.
fn secret_values(schema: &Value, config: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(schema, config, &mut found);
    found
}

fn collect(schema: &Value, config: &Value, found: &mut Vec<String>) {
    if schema.get("airbyte_secret").and_then(Value::as_bool) == Some(true) {
        match config {
            Value::String(s) => found.push(s.clone()),
            Value::Null => {}
            other => found.push(other.to_string()),
        }
        return;
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(variants)) = schema.get(key) {
            for variant in variants {
                collect(variant, config, found);
            }
        }
    }
    if let (Some(Value::Object(props)), Value::Object(values)) = (schema.get("properties"), config)
    {
        for (name, sub) in props {
            if let Some(v) = values.get(name) {
                collect(sub, v, found);
            }
        }
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), config) {
        for v in values {
            collect(items, v, found);
        }
    }
}

/// Replaces every registered secret in `text` with `****`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let Ok(mask) = MASKS.read() else {
        return Cow::Borrowed(text);
    };
    match &mask.matcher {
        Some(m) if m.is_match(text) => {
            Cow::Owned(m.replace_all(text, &vec![MASK; mask.values.len()]))
        }
        _ => Cow::Borrowed(text),
    }
}

/// Masks in place: for the optional string fields of messages.
pub fn mask_in_place(text: &mut String) {
    if let Cow::Owned(masked) = mask(text) {
        *text = masked;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_prints_stars() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s} {s:?}"), "**** ****");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn longest_match_wins() {
        register("zq-secret");
        register("zq-secret-longer");
        assert_eq!(mask("a zq-secret-longer b zq-secret c"), "a **** b **** c");
        assert_eq!(mask("nothing here"), "nothing here");
    }

    #[test]
    fn finds_secrets_in_nested_one_of() {
        let spec = json!({"properties": {
            "password": {"type": "string", "airbyte_secret": true},
            "tunnel": {"oneOf": [
                {"properties": {"method": {"const": "none"}}},
                {"properties": {"key": {"type": "string", "airbyte_secret": true}}}
            ]}
        }});
        let config = json!({"password": "p1", "tunnel": {"method": "ssh", "key": "k1"}});
        assert_eq!(secret_values(&spec, &config), ["p1", "k1"]);
    }
}
