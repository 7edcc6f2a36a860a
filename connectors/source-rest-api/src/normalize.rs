//! `schema_normalization: Default`: record values cast to the types the stream's schema declares,
//! as Airbyte's `TypeTransformer` does. The schema is walked through `properties`, `items` and
//! local `$ref`s only; a value is cast when its schema names one type (besides `"null"`), and a
//! cast that fails (Python's `ValueError`/`TypeError`) leaves the value as it was.

use serde_json::{Map, Number, Value};

use crate::interpolation::literal::py_repr;
use crate::interpolation::to_mj;

/// Casts records to a schema's types.
#[derive(Debug, Clone)]
pub struct Normalizer {
    schema: Value,
}

/// How deep `$ref`s are followed before giving up (a schema referring to itself).
const MAX_DEPTH: usize = 64;

impl Normalizer {
    /// A normalizer for `schema`; `None` when the schema is empty (Airbyte skips those).
    pub fn new(schema: &Value) -> Option<Self> {
        match schema {
            Value::Object(m) if !m.is_empty() => Some(Self {
                schema: schema.clone(),
            }),
            _ => None,
        }
    }

    /// Casts the values of `record` in place.
    pub fn apply(&self, record: &mut Value) {
        self.walk(record, &self.schema, 0);
    }

    /// The `properties`/`items` walk of jsonschema's Draft 7 validator, casting each value before
    /// descending into it.
    fn walk(&self, instance: &mut Value, schema: &Value, depth: usize) {
        let Value::Object(s) = schema else { return };
        if depth > MAX_DEPTH {
            return;
        }
        // Draft 7 ignores the keywords beside a `$ref`.
        if let Some(Value::String(r)) = s.get("$ref") {
            if let Some(target) = self.resolve(r) {
                self.walk(instance, target, depth + 1);
            }
            return;
        }
        match instance {
            Value::Object(fields) => {
                let Some(Value::Object(props)) = s.get("properties") else {
                    return;
                };
                for (k, sub) in props {
                    if let Some(v) = fields.get_mut(k) {
                        convert(v, sub);
                        self.walk(v, sub, depth + 1);
                    }
                }
            }
            Value::Array(items) => {
                let Some(sub @ Value::Object(_)) = s.get("items") else {
                    return;
                };
                for item in items {
                    convert(item, sub);
                    self.walk(item, sub, depth + 1);
                }
            }
            _ => {}
        }
    }

    /// A local reference (`#/definitions/x`) into the schema.
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.schema.pointer(pointer)
    }
}

/// `TypeTransformer.default_convert`: `value` cast to the one type `schema` declares.
fn convert(value: &mut Value, schema: &Value) {
    let Value::Object(s) = schema else { return };
    let target = match s.get("type") {
        None => return,
        Some(Value::String(t)) => {
            if value.is_null() && t.contains("null") {
                return;
            }
            t.as_str()
        }
        Some(Value::Array(types)) => {
            if value.is_null() && types.iter().any(|t| t == "null") {
                return;
            }
            let rest: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
            match rest.as_slice() {
                [Value::String(t)] => t.as_str(),
                _ => return,
            }
        }
        Some(_) => return,
    };
    let cast = match target {
        "string" => Some(Value::String(py_str(value))),
        "number" => to_float(value),
        "integer" => to_int(value),
        "boolean" => to_bool(value),
        "array" => wrap_in_array(value, s),
        _ => None,
    };
    if let Some(v) = cast {
        *value = v;
    }
}

/// Python's `str()` of a JSON value.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            py_repr(&to_mj(other), &mut out);
            out
        }
    }
}

fn float_value(f: f64) -> Option<Value> {
    Number::from_f64(f).map(Value::Number)
}

/// Python's `float()`: numbers, booleans and numeric text; `None` when it raises (or gives a
/// value JSON cannot hold, `nan` and `inf`).
fn to_float(v: &Value) -> Option<Value> {
    match v {
        Value::Number(n) => float_value(n.as_f64()?),
        Value::Bool(b) => float_value(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => {
            let text = python_numeric_text(s)?;
            let f: f64 = text.parse().ok()?;
            if f.is_finite() { float_value(f) } else { None }
        }
        _ => None,
    }
}

/// Python's `int()`: integers, floats truncated, booleans and integer text.
fn to_int(v: &Value) -> Option<Value> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
        Value::Number(n) => {
            let t = n.as_f64()?.trunc();
            if t.abs() < 9.2e18 {
                Some(Value::from(t as i64))
            } else {
                None
            }
        }
        Value::Bool(b) => Some(Value::from(i64::from(*b))),
        Value::String(s) => {
            let text = python_numeric_text(s)?;
            if let Ok(i) = text.parse::<i64>() {
                return Some(Value::from(i));
            }
            text.parse::<u64>().ok().map(Value::from)
        }
        _ => None,
    }
}

/// Python's `bool()`, and `strtobool` for text (other text raises).
fn to_bool(v: &Value) -> Option<Value> {
    Some(Value::Bool(match v {
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "y" | "yes" | "t" | "true" | "on" | "1" => true,
            "n" | "no" | "f" | "false" | "off" | "0" => false,
            _ => return None,
        },
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }))
}

/// A scalar becomes a one-item list when the schema's `items` declares only simple types
/// (Airbyte compares the set of item types, so `items: {type: string}` — a set of characters —
/// never matches, while `items: {type: [string, null]}` or no item type does).
fn wrap_in_array(v: &Value, schema: &Map<String, Value>) -> Option<Value> {
    if v.is_array() || v.is_object() {
        return None;
    }
    let simple = ["string", "number", "integer", "boolean", "null"];
    let items_ok = match schema.get("items") {
        None => true,
        Some(Value::Object(items)) => match items.get("type") {
            None => true,
            Some(Value::String(t)) => t.is_empty(),
            Some(Value::Array(ts)) => ts
                .iter()
                .all(|t| t.as_str().is_some_and(|t| simple.contains(&t))),
            Some(_) => false,
        },
        Some(_) => false,
    };
    items_ok.then(|| Value::Array(vec![v.clone()]))
}

/// Text as Python's `int()`/`float()` read it: surrounding whitespace dropped, underscores
/// allowed between digits. `None` when the underscores are misplaced.
fn python_numeric_text(s: &str) -> Option<String> {
    let t = s.trim();
    if !t.contains('_') {
        return Some(t.to_string());
    }
    let chars: Vec<char> = t.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '_' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            if !before.is_some_and(char::is_ascii_digit) || !after.is_some_and(char::is_ascii_digit)
            {
                return None;
            }
        }
    }
    Some(t.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalize(record: Value, schema: Value) -> Value {
        let mut r = record;
        Normalizer::new(&schema).unwrap().apply(&mut r);
        r
    }

    fn one(value: Value, ty: Value) -> Value {
        normalize(
            json!({"v": value}),
            json!({"type": "object", "properties": {"v": {"type": ty}}}),
        )["v"]
            .clone()
    }

    #[test]
    fn casts_like_type_transformer() {
        assert_eq!(one(json!(5), json!("string")), json!("5"));
        assert_eq!(one(json!(1.5), json!("string")), json!("1.5"));
        assert_eq!(one(json!(2.0), json!("string")), json!("2.0"));
        assert_eq!(one(json!(true), json!("string")), json!("True"));
        assert_eq!(one(json!(null), json!("string")), json!("None"));
        assert_eq!(one(json!(null), json!(["null", "string"])), json!(null));
        assert_eq!(
            one(json!({"a": [1, "x"]}), json!("string")),
            json!("{'a': [1, 'x']}")
        );
        assert_eq!(one(json!("12"), json!("integer")), json!(12));
        assert_eq!(one(json!(" 1_000 "), json!("integer")), json!(1000));
        assert_eq!(one(json!("12.5"), json!("integer")), json!("12.5"));
        assert_eq!(one(json!(7.9), json!(["integer", "null"])), json!(7));
        assert_eq!(one(json!(true), json!("integer")), json!(1));
        assert_eq!(one(json!(null), json!("integer")), json!(null));
        assert_eq!(one(json!("1.25"), json!("number")), json!(1.25));
        assert_eq!(one(json!(3), json!("number")), json!(3.0));
        assert_eq!(one(json!("abc"), json!("number")), json!("abc"));
        assert_eq!(one(json!("nan"), json!("number")), json!("nan"));
        assert_eq!(one(json!("Yes"), json!("boolean")), json!(true));
        assert_eq!(one(json!("off"), json!("boolean")), json!(false));
        assert_eq!(one(json!("maybe"), json!("boolean")), json!("maybe"));
        assert_eq!(one(json!(0), json!("boolean")), json!(false));
        assert_eq!(one(json!(null), json!("boolean")), json!(false));
        assert_eq!(one(json!("x"), json!(["string", "integer"])), json!("x"));
        assert_eq!(one(json!(5), json!("object")), json!(5));
    }

    #[test]
    fn arrays_wrap_scalars_only_for_simple_item_type_sets() {
        let arr = |items: Value| {
            normalize(
                json!({"v": "a"}),
                json!({"properties": {"v": {"type": "array", "items": items}}}),
            )["v"]
                .clone()
        };
        assert_eq!(arr(json!({"type": ["null", "string"]})), json!(["a"]));
        assert_eq!(arr(json!({})), json!(["a"]));
        assert_eq!(arr(json!({"type": "string"})), json!("a"));
        assert_eq!(arr(json!({"type": ["object"]})), json!("a"));
    }

    #[test]
    fn walks_nested_properties_items_and_refs() {
        let schema = json!({
            "definitions": {"n": {"type": "integer"}},
            "properties": {
                "o": {"type": "object", "properties": {"x": {"type": "number"}}},
                "l": {"type": "array", "items": {"type": "string"}},
                "r": {"$ref": "#/definitions/n"},
                "w": {"type": "array", "items": {"type": ["null", "integer"]}}
            }
        });
        let r = normalize(
            json!({"o": {"x": "2.5", "y": "keep"}, "l": [1, 2.5], "r": "9", "w": "4", "extra": 1}),
            schema,
        );
        assert_eq!(
            r,
            json!({"o": {"x": 2.5, "y": "keep"}, "l": ["1", "2.5"], "r": "9", "w": [4], "extra": 1})
        );
    }

    #[test]
    fn empty_schema_normalizes_nothing() {
        assert!(Normalizer::new(&json!({})).is_none());
    }

    use proptest::prelude::*;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any value under any declared type: a cast or the value unchanged, never a panic.
        #[test]
        fn never_panics(v in any_json()) {
            let types = ["string", "number", "integer", "boolean", "array", "object", "null"];
            let mut props = serde_json::Map::new();
            for t in types {
                props.insert(t.to_string(), json!({"type": [t, "null"], "items": {"type": t}, "properties": {"a": {"type": t}}}));
            }
            let n = Normalizer::new(&json!({"properties": props})).unwrap();
            let mut record = Value::Object(types.iter().map(|t| (t.to_string(), v.clone())).collect());
            n.apply(&mut record);
            prop_assert!(record.is_object());
        }
    }
}
