//! Loading a manifest (YAML or JSON) and resolving `$ref`s: `{"$ref": "#/definitions/x", k: v}`
//! becomes the referenced value with the sibling keys laid over it, at any depth, as Airbyte's
//! `ManifestReferenceResolver` does; so does a plain string value starting with `#/` (the older
//! form, e.g. `streams: ["#/definitions/users"]`), except under `config_overrides`, which holds
//! config values. Cycles are errors.

use std::path::Path;

use cdk::{Error, Result};
use serde_json::Value;

const REF: &str = "$ref";

/// Keys whose values are config values, copied without resolving (as airbyte-cdk does).
const HOLDS_CONFIG_VALUES: [&str; 1] = ["config_overrides"];

/// Reads a manifest file (YAML, of which JSON is a subset).
pub fn read_file(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read manifest '{}': {e}", path.display())))?;
    parse(&text).map_err(|e| e.context(format!("manifest '{}'", path.display())))
}

pub fn parse(text: &str) -> Result<Value> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| Error::config(format!("the manifest is not valid YAML: {e}")))?;
    let value: Value = serde_json::to_value(yaml)
        .map_err(|e| Error::config(format!("the manifest cannot be read as JSON: {e}")))?;
    if !value.is_object() {
        return Err(Error::config("the manifest must be a mapping"));
    }
    Ok(value)
}

/// The manifest with every `$ref` replaced by what it points to.
pub fn resolve(root: &Value) -> Result<Value> {
    let mut stack = Vec::new();
    resolve_node(root, root, "", &mut stack)
}

fn resolve_node(root: &Value, node: &Value, path: &str, stack: &mut Vec<String>) -> Result<Value> {
    match node {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if HOLDS_CONFIG_VALUES.contains(&k.as_str()) {
                    out.insert(k.clone(), v.clone());
                } else if k != REF {
                    out.insert(
                        k.clone(),
                        resolve_node(root, v, &format!("{path}/{k}"), stack)?,
                    );
                }
            }
            let Some(reference) = map.get(REF) else {
                return Ok(Value::Object(out));
            };
            let target = match reference {
                Value::String(r) => r,
                other => {
                    return Err(Error::config(format!(
                        "$ref at {} must be a string like \"#/definitions/name\", got {other}",
                        display(path)
                    )));
                }
            };
            let resolved = follow(root, target, path, stack)?;
            match resolved {
                Value::Object(mut base) => {
                    // Keys written beside the $ref take precedence.
                    base.extend(out);
                    Ok(Value::Object(base))
                }
                other if out.is_empty() => Ok(other),
                _ => Err(Error::config(format!(
                    "$ref '{target}' at {} points to a value that is not a mapping, so it cannot \
                     have keys beside it",
                    display(path)
                ))),
            }
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve_node(root, v, &format!("{path}/{i}"), stack))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        Value::String(s) if s.starts_with("#/") => follow(root, s, path, stack),
        other => Ok(other.clone()),
    }
}

fn follow(root: &Value, target: &str, path: &str, stack: &mut Vec<String>) -> Result<Value> {
    let pointer = target.strip_prefix('#').ok_or_else(|| {
        Error::config(format!(
            "$ref '{target}' at {} must point into this manifest (start with '#/')",
            display(path)
        ))
    })?;
    if stack.iter().any(|t| t == target) {
        return Err(Error::config(format!(
            "$ref cycle at {}: {} -> {target}",
            display(path),
            stack.join(" -> ")
        )));
    }
    let found = root.pointer(pointer).ok_or_else(|| {
        Error::config(format!(
            "$ref '{target}' at {} points to nothing in the manifest",
            display(path)
        ))
    })?;
    stack.push(target.to_string());
    let resolved = resolve_node(root, found, pointer, stack);
    stack.pop();
    resolved
}

fn display(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_merge_with_siblings_at_any_depth() {
        let m = parse(
            r##"
definitions:
  base: {type: HttpRequester, url_base: "https://x", http_method: GET}
  req:
    $ref: "#/definitions/base"
    http_method: POST
  list: [1, 2]
streams:
  - retriever: {requester: {$ref: "#/definitions/req", path: /a}, values: {$ref: "#/definitions/list"}}
"##,
        )
        .unwrap();
        let r = resolve(&m).unwrap();
        assert_eq!(
            r["streams"][0]["retriever"]["requester"],
            json!({"type": "HttpRequester", "url_base": "https://x", "http_method": "POST", "path": "/a"})
        );
        assert_eq!(r["streams"][0]["retriever"]["values"], json!([1, 2]));
    }

    #[test]
    fn strings_starting_with_hash_slash_are_references() {
        let m = parse(
            r##"
definitions:
  users: {type: DeclarativeStream, name: users, page: "#/definitions/size"}
  size: 50
streams: ["#/definitions/users"]
check: {config_overrides: {key: "#/definitions/size"}}
"##,
        )
        .unwrap();
        let r = resolve(&m).unwrap();
        assert_eq!(
            r["streams"],
            json!([{"type": "DeclarativeStream", "name": "users", "page": 50}])
        );
        assert_eq!(
            r["check"]["config_overrides"],
            json!({"key": "#/definitions/size"})
        );
        let missing = parse("streams: ['#/definitions/nope']").unwrap();
        assert!(
            resolve(&missing)
                .unwrap_err()
                .message
                .contains("points to nothing")
        );
    }

    #[test]
    fn bad_refs_are_errors() {
        let cyc = parse("definitions: {a: {$ref: '#/definitions/b'}, b: {$ref: '#/definitions/a'}}\nx: {$ref: '#/definitions/a'}").unwrap();
        assert!(resolve(&cyc).unwrap_err().message.contains("cycle"));
        let missing = parse("x: {$ref: '#/definitions/nope'}").unwrap();
        let e = resolve(&missing).unwrap_err();
        assert!(
            e.message.contains("points to nothing") && e.message.contains("/x"),
            "{}",
            e.message
        );
        let escaped =
            parse("definitions: {'a/b': {k: 1}}\nx: {$ref: '#/definitions/a~1b'}").unwrap();
        assert_eq!(resolve(&escaped).unwrap()["x"], json!({"k": 1}));
    }
}
