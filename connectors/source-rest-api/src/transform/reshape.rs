//! Transformations that reshape a record's keys, as airbyte-cdk 7.39.1 does them:
//! `KeysToSnakeCase`, `FlattenFields` and `DpathFlattenFields`.

use std::sync::LazyLock;

use serde_json::{Map, Value};

/// airbyte-cdk's token pattern: capitalised words, lower-case words, digits, or separators.
static TOKENS: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"[A-Z]+[a-z]*|[a-z]+|\d+|(?P<sep>[^a-zA-Z\d]+)")
        .unwrap_or_else(|e| unreachable!("a constant pattern: {e}"))
});

/// `KeysToSnakeCase`: every key of the record and of the objects nested in it (not inside
/// lists) transliterated to ASCII and written in snake case.
pub fn keys_to_snake_case(record: &mut Value) {
    if let Value::Object(m) = record {
        *m = std::mem::take(m)
            .into_iter()
            .map(|(k, mut v)| {
                keys_to_snake_case(&mut v);
                (snake_case(&k), v)
            })
            .collect();
    }
}

/// One key in snake case (`anyascii`, tokens, separators kept only at the ends).
pub fn snake_case(key: &str) -> String {
    let ascii = any_ascii::any_ascii(key);
    let mut tokens: Vec<&str> = TOKENS
        .captures_iter(&ascii)
        .map(|c| match c.name("sep") {
            Some(_) => "",
            None => c.get(0).map_or("", |m| m.as_str()),
        })
        .collect();
    if tokens.len() >= 3 {
        let last = tokens.len() - 1;
        let middle: Vec<&str> = tokens[1..last]
            .iter()
            .copied()
            .filter(|t| !t.is_empty())
            .collect();
        tokens = [&tokens[..1], &middle[..], &tokens[last..]].concat();
    }
    if tokens
        .first()
        .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    {
        tokens.insert(0, "");
    }
    tokens
        .iter()
        .map(|t| t.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

/// `FlattenFields`: nested values moved to the top level, by airbyte-cdk's walk (a key already
/// taken, or any key once a list was flattened, is prefixed with its parent's key and a dot).
/// The walk visits keys in the record's key order, which here is sorted: where airbyte-cdk
/// walks the API's order, names given to colliding keys may differ unless the API sorts keys.
pub fn flatten(record: &mut Value, flatten_lists: bool) {
    let Value::Object(root) = record else {
        return;
    };
    let mut out = Map::new();
    let mut force_parent = false;
    let mut stack: Vec<(Value, String)> = vec![(Value::Object(std::mem::take(root)), "_".into())];
    while let Some((current, parent)) = stack.pop() {
        match current {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if force_parent || out.contains_key(&k) {
                        format!("{parent}.{k}")
                    } else {
                        k
                    };
                    stack.push((v, key));
                }
            }
            Value::Array(items) if flatten_lists => {
                for (i, item) in items.into_iter().enumerate() {
                    force_parent = true;
                    stack.push((item, format!("{parent}.{i}")));
                }
            }
            other => {
                out.insert(parent, other);
            }
        }
    }
    *record = Value::Object(out);
}

/// `DpathFlattenFields`: the object at `path` (the first match of a `*` path) merged into the
/// record (its keys with `prefix`/`suffix`), unless a key is already there; with
/// `replace_record` it replaces the record, with `delete_origin_value` it leaves its place.
pub fn dpath_flatten(
    record: &mut Value,
    path: &[String],
    prefix: Option<&str>,
    suffix: Option<&str>,
    replace_record: bool,
    delete_origin_value: bool,
) {
    let extracted = if path.iter().any(|p| p == "*") {
        let mut found = Vec::new();
        crate::selector::glob_values(record, path, &mut found);
        found.first().map(|v| (*v).clone())
    } else {
        path.iter().try_fold(&*record, |v, k| v.get(k)).cloned()
    };
    let Some(Value::Object(extracted)) = extracted else {
        return;
    };
    let extracted: Map<String, Value> = extracted
        .into_iter()
        .map(|(k, v)| {
            let k = match prefix.filter(|p| !p.is_empty()) {
                Some(p) => format!("{p}{k}"),
                None => k,
            };
            let k = match suffix.filter(|s| !s.is_empty()) {
                Some(s) => format!("{k}{s}"),
                None => k,
            };
            (k, v)
        })
        .collect();
    let Value::Object(target) = record else {
        return;
    };
    if replace_record && !extracted.is_empty() {
        *target = extracted;
        return;
    }
    if extracted.keys().any(|k| target.contains_key(k)) {
        return;
    }
    if delete_origin_value {
        remove_at(target, path);
    }
    target.extend(extracted);
}

/// Removes the value at a plain `path` of `target`, if there is one.
fn remove_at(target: &mut Map<String, Value>, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = target;
    for k in parents {
        match cur.get_mut(k) {
            Some(Value::Object(m)) => cur = m,
            _ => return,
        }
    }
    cur.remove(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snake_case_as_airbyte() {
        for (k, want) in [
            ("CamelCase", "camel_case"),
            ("snake_case", "snake_case"),
            ("HTTPResponse", "httpresponse"),
            ("some-key name", "some_key_name"),
            ("_private", "_private"),
            ("2ndField", "_2_nd_field"),
            ("Ünïcödé", "unicode"),
            ("trailing_", "trailing_"),
            ("__x__y__", "_x_y_"),
        ] {
            assert_eq!(snake_case(k), want, "{k}");
        }
    }

    #[test]
    fn flattens_nested_values() {
        let mut r = json!({"a": {"b": 1, "c": [2, {"d": 3}]}, "e": 4});
        flatten(&mut r, true);
        assert_eq!(r, json!({"b": 1, "c.0": 2, "c.1.d": 3, "e": 4}));
        let mut r = json!({"a": {"b": 1, "c": [2]}});
        flatten(&mut r, false);
        assert_eq!(r, json!({"b": 1, "c": [2]}));
        // As airbyte-cdk: the walk is last-in first-out, so a key taken first keeps its name.
        let mut r = json!({"a": {"b": 1}, "b": 0});
        flatten(&mut r, true);
        assert_eq!(r, json!({"b": 0, "a.b": 1}));
    }
}
