//! Schema detection for the simple form: the JSON schema of the records of an endpoint's first
//! page, as Airbyte's connector builder infers one — the types seen per field, nested objects
//! with their properties, arrays with the merged schema of their items, and `"null"` added where
//! a value was null or missing.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// What was seen at one place of the records.
#[derive(Debug, Default)]
struct Shape {
    null: bool,
    boolean: bool,
    integer: bool,
    number: bool,
    string: bool,
    /// Objects seen and, per key, its shape and how many of those objects had it.
    objects: usize,
    properties: BTreeMap<String, (Shape, usize)>,
    /// Arrays seen and the merged shape of their items.
    array: Option<Box<Shape>>,
}

impl Shape {
    fn add(&mut self, v: &Value) {
        match v {
            Value::Null => self.null = true,
            Value::Bool(_) => self.boolean = true,
            Value::Number(n) if n.is_i64() || n.is_u64() => self.integer = true,
            Value::Number(_) => self.number = true,
            Value::String(_) => self.string = true,
            Value::Object(m) => {
                self.objects += 1;
                for (k, v) in m {
                    let (shape, seen) = self.properties.entry(k.clone()).or_default();
                    shape.add(v);
                    *seen += 1;
                }
            }
            Value::Array(items) => {
                let inner = self.array.get_or_insert_with(Box::default);
                items.iter().for_each(|i| inner.add(i));
            }
        }
    }

    fn is_empty(&self) -> bool {
        !(self.null || self.boolean || self.integer || self.number || self.string)
            && self.objects == 0
            && self.array.is_none()
    }

    /// The schema; `nullable` when the field was missing from some objects.
    fn schema(&self, nullable: bool) -> Value {
        if self.is_empty() {
            return json!({});
        }
        let mut types = Vec::new();
        if self.null || nullable {
            types.push("null");
        }
        if self.boolean {
            types.push("boolean");
        }
        if self.number {
            types.push("number");
        } else if self.integer {
            types.push("integer");
        }
        if self.string {
            types.push("string");
        }
        if self.objects > 0 {
            types.push("object");
        }
        if self.array.is_some() {
            types.push("array");
        }
        let mut out = Map::new();
        out.insert(
            "type".into(),
            match types.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
        );
        if self.objects > 0 {
            out.insert("properties".into(), self.properties_schema());
        }
        if let Some(items) = &self.array {
            out.insert("items".into(), items.schema(false));
        }
        Value::Object(out)
    }

    fn properties_schema(&self) -> Value {
        Value::Object(
            self.properties
                .iter()
                .map(|(k, (shape, seen))| (k.clone(), shape.schema(*seen < self.objects)))
                .collect(),
        )
    }
}

/// The schema of a stream whose records include `records` (objects; anything else is ignored).
pub fn infer<'a>(records: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut shape = Shape::default();
    records
        .into_iter()
        .filter(|r| r.is_object())
        .for_each(|r| shape.add(r));
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": shape.properties_schema(),
        "additionalProperties": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_customers() {
        let records = [
            json!({"id": 1, "name": "Acme Corp", "score": 1.5,
                   "contact": {"email": "info@acme.com", "phone": "+1234567890"},
                   "addresses": [{"type": "billing", "city": "New York"}, {"type": "shipping", "city": "Boston"}]}),
            json!({"id": 2, "name": null, "score": 2, "tags": ["a"], "addresses": [],
                   "contact": {"email": "x@y.z", "phone": null}}),
        ];
        let s = infer(&records);
        let p = &s["properties"];
        assert_eq!(p["id"], json!({"type": "integer"}));
        assert_eq!(p["name"], json!({"type": ["null", "string"]}));
        assert_eq!(p["score"], json!({"type": "number"}));
        assert_eq!(
            p["tags"],
            json!({"type": ["null", "array"], "items": {"type": "string"}})
        );
        assert_eq!(
            p["contact"],
            json!({"type": "object", "properties": {
                "email": {"type": "string"}, "phone": {"type": ["null", "string"]}}})
        );
        assert_eq!(
            p["addresses"],
            json!({"type": "array", "items": {"type": "object", "properties": {
                "city": {"type": "string"}, "type": {"type": "string"}}}})
        );
    }

    #[test]
    fn mixed_and_empty() {
        let s = infer(&[
            json!({"a": 1, "b": [], "c": {}}),
            json!({"a": "x", "c": {}}),
        ]);
        assert_eq!(s["properties"]["a"], json!({"type": ["integer", "string"]}));
        assert_eq!(
            s["properties"]["b"],
            json!({"type": ["null", "array"], "items": {}})
        );
        assert_eq!(
            s["properties"]["c"],
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(infer(&[])["properties"], json!({}));
    }
}
