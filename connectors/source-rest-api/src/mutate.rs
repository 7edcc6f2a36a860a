//! Random edits of manifests for the property tests: any value anywhere replaced by another.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Values a manifest could wrongly hold: scalars, odd strings, templates, empty containers
/// and an unknown component.
pub fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "\\{\\{ [a-z_\\[\\]'\\.]{0,12} \\}\\}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["é", 1])),
        Just(json!({"type": "NoSuchThing"})),
    ]
}

/// Puts each picked value at a picked path of `manifest` (paths taken after each edit).
pub fn mutate(manifest: &mut Value, picks: Vec<(prop::sample::Index, Value)>) {
    for (index, value) in picks {
        let mut all = Vec::new();
        paths(manifest, Vec::new(), &mut all);
        let path = index.get(&all).clone();
        if let Some(slot) = at(manifest, &path) {
            *slot = value;
        }
    }
}

/// Every path to a value of `v`.
fn paths(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    let mut child = |k: String, c: &Value| {
        let mut p = here.clone();
        p.push(k);
        paths(c, p, out);
    };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| child(k.clone(), c)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| child(i.to_string(), c)),
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Object(m) => m.get_mut(k),
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    })
}
