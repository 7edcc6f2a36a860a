//! The connection specification generated from a config type (serde + schemars), so the spec
//! and the code that reads the config cannot drift apart.
//!
//! Output is draft-07 with every subschema inlined (no `$ref`/`definitions`), `Option<T>` fields
//! written as plain optional properties, and `oneOf` variants of internally tagged enums told
//! apart by their `const` tag property, as the platform's UI expects.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// The JSON Schema of config type `C`, ready for `connectionSpecification`.
pub fn connection_specification<C: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.inline_subschemas = true;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<C>().to_value();
    if let Value::Object(root) = &mut schema {
        root.remove("definitions");
        root.remove("$defs");
        root.entry("type").or_insert_with(|| "object".into());
        root.entry("additionalProperties")
            .or_insert(Value::Bool(true));
    }
    tidy(&mut schema);
    schema
}

/// Simplifies what schemars writes into what Airbyte specs use.
fn tidy(schema: &mut Value) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(tidy);
        }
        return;
    };
    // `anyOf: [T, {"type": "null"}]` (an `Option` of a complex type) becomes just `T`:
    // optional-ness is already expressed by `required`.
    if let Some(Value::Array(variants)) = map.get("anyOf") {
        let not_null: Vec<&Value> = variants.iter().filter(|v| !is_null_schema(v)).collect();
        if not_null.len() == 1 && variants.len() == 2 {
            let inner = not_null[0].clone();
            map.remove("anyOf");
            if let Value::Object(inner) = inner {
                for (k, v) in inner {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
    // Rust-specific number formats ("uint16", "int64", "double") mean nothing to JSON Schema
    // validators; the range is already expressed with minimum/maximum.
    if let Some(Value::String(format)) = map.get("format")
        && is_rust_number_format(format)
    {
        map.remove("format");
    }
    // Doc comments wrap at the source's line width; a UI should wrap descriptions itself.
    if let Some(Value::String(description)) = map.get_mut("description") {
        *description = unwrap_lines(description);
    }
    // `oneOf` variants are objects; the parent must say so too.
    if map.contains_key("oneOf") && !map.contains_key("type") {
        map.insert("type".into(), "object".into());
    }
    map.values_mut().for_each(tidy);
}

/// Joins the lines of each paragraph with spaces; blank lines still separate paragraphs.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null") && v.as_object().map(Map::len) == Some(1)
}

fn is_rust_number_format(f: &str) -> bool {
    matches!(
        f,
        "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint"
            | "uint8"
            | "uint16"
            | "uint32"
            | "uint64"
            | "float"
            | "double"
            | "int"
            | "uint128"
            | "int128"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use serde::Deserialize;

    /// A config for testing the generated spec.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Demo {
        /// The host.
        host: String,
        #[serde(default = "port")]
        port: u16,
        password: Option<Secret>,
        ssl_mode: Option<SslMode>,
    }

    fn port() -> u16 {
        5432
    }

    /// How to use TLS.
    #[derive(Deserialize, JsonSchema)]
    #[serde(tag = "mode", rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum SslMode {
        /// No TLS.
        Disable,
        /// Verify the server.
        VerifyCa { ca_certificate: Secret },
    }

    #[test]
    fn spec_shape() {
        let spec = connection_specification::<Demo>();
        insta::assert_json_snapshot!(spec);
        let text = spec.to_string();
        assert!(!text.contains("$ref") && !text.contains("anyOf") && !text.contains("uint16"));
    }

    #[test]
    fn wrapped_doc_lines_become_one_line_per_paragraph() {
        assert_eq!(unwrap_lines("one\n two\n\nthree"), "one two\n\nthree");
        assert_eq!(unwrap_lines("single"), "single");
    }
}
