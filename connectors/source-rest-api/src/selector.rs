//! `RecordSelector`: records from a decoded response with `DpathExtractor` (`field_path`,
//! `*` wildcards, `[]` for the root), kept or dropped by `RecordFilter`, then transformed.

use std::sync::Arc;

use cdk::{Error, Result};
use serde_json::Value;

use crate::interpolation::{Template, Vars, json_value};
use crate::manifest::{Build, Node};
use crate::transform::Transformation;

#[derive(Debug)]
pub struct RecordSelector {
    field_path: Vec<Template>,
    filter: Option<Template>,
    transformations: Vec<Transformation>,
    transform_before_filtering: bool,
}

impl RecordSelector {
    pub fn decode(node: Node<'_>, b: &Build, transformations: Vec<Transformation>) -> Result<Self> {
        let mut c = node.component(Some("RecordSelector"))?;
        c.expect(&["RecordSelector"])?;
        let mut e = c
            .required_child("extractor")?
            .component(Some("DpathExtractor"))?;
        e.expect(&["DpathExtractor"])?;
        if e.has("record_expander") {
            return Err(e.error("record_expander is not supported"));
        }
        let field_path = e
            .string_list("field_path")?
            .ok_or_else(|| e.error("the field 'field_path' is required"))?
            .iter()
            .map(|p| e.template_of(b, "field_path", p))
            .collect::<Result<Vec<_>>>()?;
        e.finish()?;
        let filter = match c.child("record_filter") {
            None => None,
            Some(n) => {
                let mut f = n.component(Some("RecordFilter"))?;
                f.expect(&["RecordFilter"])?;
                let t = f
                    .opt_template(b, "condition")?
                    .filter(|t| !t.source().is_empty());
                f.finish()?;
                t
            }
        };
        if let Some(n) = c.child("schema_normalization") {
            match n.value.as_str() {
                Some("None") => {}
                _ => {
                    return Err(c.error(format!(
                        "schema_normalization {} is not supported (only None)",
                        n.value
                    )));
                }
            }
        }
        let transform_before_filtering = c.bool_or("transform_before_filtering", false)?;
        c.finish()?;
        Ok(Self {
            field_path,
            filter,
            transformations,
            transform_before_filtering,
        })
    }

    /// The records in `doc`. With `take`, they are moved out of `doc` instead of copied.
    pub fn extract(&self, doc: &mut Value, take: bool) -> Result<Vec<Value>> {
        let vars = Vars::new();
        let path: Vec<String> = self
            .field_path
            .iter()
            .map(|t| Ok(t.eval_str(&vars)?.unwrap_or_default()))
            .collect::<Result<_>>()?;
        let extracted: Vec<Value> = if path.iter().any(|p| p == "*") {
            let mut found = Vec::new();
            glob(doc, &path, &mut found);
            found.into_iter().cloned().collect()
        } else {
            let Some(target) = lookup_mut(doc, &path) else {
                return Ok(Vec::new());
            };
            let v = if take {
                std::mem::take(target)
            } else {
                target.clone()
            };
            match v {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                Value::Object(m) if m.is_empty() && path.is_empty() => Vec::new(),
                other => vec![other],
            }
        };
        for r in &extracted {
            if !r.is_object() {
                return Err(Error::system(format!(
                    "a record at field_path {path:?} is not an object: {}",
                    crate::decoder::snippet(r.to_string().as_bytes())
                )));
            }
        }
        Ok(extracted)
    }

    /// Filters and transforms records (in Airbyte's order unless `transform_before_filtering`).
    pub fn select(&self, records: Vec<Value>, vars: &Vars) -> Result<Vec<Value>> {
        if self.filter.is_none() && self.transformations.is_empty() {
            return Ok(records);
        }
        let mut out = Vec::with_capacity(records.len());
        for mut r in records {
            if self.transform_before_filtering {
                self.transform(&mut r, vars)?;
            }
            if let Some(f) = &self.filter {
                let (back, keep) = with_record(r, vars, |v| f.eval_bool(v))?;
                r = back;
                if !keep {
                    continue;
                }
            }
            if !self.transform_before_filtering {
                self.transform(&mut r, vars)?;
            }
            out.push(r);
        }
        Ok(out)
    }

    fn transform(&self, r: &mut Value, vars: &Vars) -> Result<()> {
        for t in &self.transformations {
            t.apply(r, vars)?;
        }
        Ok(())
    }
}

/// Runs `f` with `record` visible to templates as `record`, then hands the record back.
pub fn with_record<T>(
    record: Value,
    vars: &Vars,
    f: impl FnOnce(&Vars) -> Result<T>,
) -> Result<(Value, T)> {
    let shared = Arc::new(record);
    let vars = vars.clone().with("record", json_value(shared.clone()));
    let out = f(&vars);
    drop(vars);
    let record = Arc::try_unwrap(shared).unwrap_or_else(|arc| (*arc).clone());
    Ok((record, out?))
}

fn lookup_mut<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    let mut cur = v;
    for key in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(key)?,
            Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// dpath's `values`: every value matching a path with `*` segments.
fn glob<'v>(v: &'v Value, path: &[String], out: &mut Vec<&'v Value>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    match (head.as_str(), v) {
        ("*", Value::Object(m)) => m.values().for_each(|c| glob(c, rest, out)),
        ("*", Value::Array(a)) => a.iter().for_each(|c| glob(c, rest, out)),
        (k, Value::Object(m)) => {
            if let Some(c) = m.get(k) {
                glob(c, rest, out);
            }
        }
        (k, Value::Array(a)) => {
            if let Some(c) = k.parse::<usize>().ok().and_then(|i| a.get(i)) {
                glob(c, rest, out);
            }
        }
        _ => {}
    }
}
