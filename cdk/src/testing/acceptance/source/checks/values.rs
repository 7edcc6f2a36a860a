//! Helpers the checks share over record values: paths, cursors, canonical text.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::protocol::*;
use crate::testing::capture::Captured;

pub(super) fn is_of(r: &AirbyteRecordMessage, d: &StreamDescriptor) -> bool {
    r.stream == d.name && r.namespace == d.namespace
}

pub(super) fn record_bag(c: &Captured) -> BTreeMap<String, Vec<String>> {
    let mut bag: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in c.records() {
        let d = StreamDescriptor::new(r.stream.clone(), r.namespace.clone());
        bag.entry(d.to_string())
            .or_default()
            .push(canonical(&r.data));
    }
    bag
}

/// JSON text with sorted keys, for comparing records.
pub(super) fn canonical(v: &Value) -> String {
    // serde_json's Map is ordered by key unless `preserve_order` is on; sort to be sure.
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::to_value(sorted).unwrap_or(Value::Null)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

pub(super) fn max_cursor<'a>(
    records: impl Iterator<Item = &'a AirbyteRecordMessage>,
    cursor: &[String],
) -> Option<Value> {
    records
        .filter_map(|r| value_at(&r.data, cursor).filter(|v| !v.is_null()).cloned())
        .reduce(|a, b| {
            if cmp_json(&b, &a) == Some(std::cmp::Ordering::Greater) {
                b
            } else {
                a
            }
        })
}

/// Orders numbers numerically and strings lexically (RFC 3339 timestamps sort so).
pub(super) fn cmp_json(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub(super) fn value_at<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(data, |v, key| v.get(key))
}

pub(super) fn schema_has_path(schema: &Value, path: &[String]) -> bool {
    path.iter()
        .try_fold(schema, |s, key| s.get("properties")?.get(key))
        .is_some()
}
