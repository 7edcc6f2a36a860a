//! `record_expander` of a `DpathExtractor` (`RecordExpander`): each extracted record is
//! replaced by the items of its nested list(s) at `expand_records_from_field` (`*` matches any
//! key or index), as Airbyte does. `remain_original_record` embeds the parent under
//! `original_record`, `parent_fields` copies named parent values onto each item, `merge_parent`
//! puts the parent (without the expanded list) under each item's own fields, and
//! `on_no_records: emit_parent` keeps a parent without items. Items that are not objects stay
//! as they are, or become `{"value": item}` when parent context is added.
//! When the field at `truncation_indicator_path` is truthy, `truncated_list_retriever` (a
//! `SimpleRetriever`) fetches the complete list, one read per truncated record with the record
//! as `stream_slice['parent_record']`; without a retriever, or when it returns nothing, the
//! embedded items are expanded (with a warning once per stream).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cdk::{Error, Result};
use serde_json::{Map, Value};

use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Component, Node};

#[derive(Debug)]
pub struct RecordExpander {
    path: Vec<Template>,
    remain_original_record: bool,
    emit_parent: bool,
    merge_parent: bool,
    parent_fields: Vec<ParentField>,
    truncation_indicator: Vec<Template>,
    /// `truncated_list_retriever`, read as a stream of its own.
    retriever: Option<Arc<crate::stream::StreamDef>>,
    warned: AtomicBool,
    warned_incomplete: AtomicBool,
}

#[derive(Debug)]
struct ParentField {
    parent_path: Vec<String>,
    record_path: Vec<String>,
}

fn templates(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Vec<Template>> {
    c.string_list(key)?
        .unwrap_or_default()
        .iter()
        .map(|p| c.template_of(b, key, p))
        .collect()
}

fn evaluated(path: &[Template]) -> Result<Vec<String>> {
    let vars = Vars::new();
    path.iter()
        .map(|t| Ok(t.eval_str(&vars)?.unwrap_or_default()))
        .collect()
}

fn reject_globs(c: &Component<'_>, path: &[String], key: &str) -> Result<()> {
    if path.iter().any(|s| s.contains(['*', '?', '['])) {
        return Err(c.error(format!(
            "glob characters ('*', '?', '[') are not supported in '{key}': the path must identify a single field"
        )));
    }
    Ok(())
}

impl RecordExpander {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("RecordExpander"))?;
        c.expect(&["RecordExpander"])?;
        let path = templates(&mut c, b, "expand_records_from_field")?;
        let truncation_indicator = templates(&mut c, b, "truncation_indicator_path")?;
        let retriever = match c.child("truncated_list_retriever") {
            Some(n) if !n.value.is_null() => {
                if truncation_indicator.is_empty() {
                    return Err(c.error(
                        "`truncation_indicator_path` is required when `truncated_list_retriever` is configured",
                    ));
                }
                reject_globs(&c, &evaluated(&path)?, "expand_records_from_field")?;
                Some(Arc::new(list_retriever(n, b)?))
            }
            _ => None,
        };
        reject_globs(
            &c,
            &evaluated(&truncation_indicator)?,
            "truncation_indicator_path",
        )?;
        let emit_parent = match c.opt_str("on_no_records")?.as_deref() {
            None | Some("skip") => false,
            Some("emit_parent") => true,
            Some(other) => {
                return Err(c.error(format!(
                    "on_no_records must be skip or emit_parent, got '{other}'"
                )));
            }
        };
        let mut parent_fields = Vec::new();
        for n in c.children("parent_fields")? {
            let mut p = n.component(Some("ParentFieldPath"))?;
            let parent_path = evaluated(&templates(&mut p, b, "parent_path")?)?;
            let record_path = evaluated(&templates(&mut p, b, "record_path")?)?;
            if parent_path.is_empty() || record_path.is_empty() {
                return Err(p.error("parent_path and record_path cannot be empty"));
            }
            reject_globs(&p, &parent_path, "parent_path")?;
            reject_globs(&p, &record_path, "record_path")?;
            p.finish()?;
            parent_fields.push(ParentField {
                parent_path,
                record_path,
            });
        }
        let remain_original_record = c.bool_or("remain_original_record", false)?;
        let merge_parent = c.bool_or("merge_parent", false)?;
        c.finish()?;
        Ok(Self {
            path,
            remain_original_record,
            emit_parent,
            merge_parent,
            parent_fields,
            truncation_indicator,
            retriever,
            warned: AtomicBool::new(false),
            warned_incomplete: AtomicBool::new(false),
        })
    }

    /// Whether a `truncated_list_retriever` may fetch lists (then [`Self::expand_fetching`]
    /// must be used).
    pub fn fetches(&self) -> bool {
        self.retriever.is_some()
    }

    /// [`Self::expand`], fetching the complete list of a truncated record first.
    pub async fn expand_fetching(&self, parent: Value, out: &mut Vec<Value>) -> Result<()> {
        let Some(stream) = &self.retriever else {
            return self.expand(parent, out);
        };
        if !parent.is_object() || self.path.is_empty() || !self.is_truncated(&parent)? {
            return self.expand(parent, out);
        }
        let fetched = fetch(stream, &parent).await?;
        self.warn_if_incomplete(&parent, fetched.len())?;
        if fetched.is_empty() {
            return self.expand_embedded(parent, out);
        }
        let path = evaluated(&self.path)?;
        let merge_base = self.merge_parent.then(|| without_lists(&parent, &path));
        for item in fetched {
            self.push_item(&parent, item, merge_base.as_ref(), out)?;
        }
        Ok(())
    }

    fn is_truncated(&self, parent: &Value) -> Result<bool> {
        if self.truncation_indicator.is_empty() {
            return Ok(false);
        }
        let path = evaluated(&self.truncation_indicator)?;
        Ok(lookup(parent, &path).is_some_and(crate::interpolation::truthy))
    }

    /// The integer `total_count` next to the truncation indicator.
    fn total_count(&self, parent: &Value) -> Result<Option<u64>> {
        let mut path = evaluated(&self.truncation_indicator)?;
        if path.pop().is_none() {
            return Ok(None);
        }
        path.push("total_count".into());
        Ok(lookup(parent, &path).and_then(Value::as_u64))
    }

    fn warn_if_incomplete(&self, parent: &Value, fetched: usize) -> Result<()> {
        let Some(total) = self.total_count(parent)? else {
            return Ok(());
        };
        if fetched as u64 >= total || self.warned_incomplete.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let fallback = if fetched == 0 {
            " The embedded items were expanded as a fallback."
        } else {
            ""
        };
        tracing::warn!(
            "the truncated_list_retriever for the nested list at {:?} returned {fetched} record(s) but the total_count field next to {:?} reports {total}, so the fetched list is still incomplete.{fallback} Check that the retriever has a paginator and that its request matches the complete-list endpoint (warned once per stream)",
            evaluated(&self.path)?,
            evaluated(&self.truncation_indicator)?
        );
        Ok(())
    }

    fn carries_parent(&self) -> bool {
        self.remain_original_record || self.merge_parent || !self.parent_fields.is_empty()
    }

    /// The records `parent` expands into.
    pub fn expand(&self, parent: Value, out: &mut Vec<Value>) -> Result<()> {
        if !parent.is_object() || self.path.is_empty() {
            out.push(parent);
            return Ok(());
        }
        if self.retriever.is_some() && self.is_truncated(&parent)? {
            return Err(Error::config(
                "truncated_list_retriever: a truncated record cannot be fetched from an AsyncRetriever's records",
            ));
        }
        self.warn_if_truncated(&parent)?;
        self.expand_embedded(parent, out)
    }

    /// The records of the lists embedded in `parent`.
    fn expand_embedded(&self, parent: Value, out: &mut Vec<Value>) -> Result<()> {
        let path = evaluated(&self.path)?;
        let mut lists = Vec::new();
        crate::selector::glob_values(&parent, &path, &mut lists);
        let lists: Vec<&Vec<Value>> = lists.into_iter().filter_map(Value::as_array).collect();
        let count: usize = lists.iter().map(|l| l.len()).sum();
        let merge_base = self.merge_parent.then(|| without_lists(&parent, &path));
        for list in lists {
            for item in list {
                self.push_item(&parent, item.clone(), merge_base.as_ref(), out)?;
            }
        }
        if count == 0 && self.emit_parent {
            out.push(parent);
        }
        Ok(())
    }

    /// One item of the list, with the parent context configured.
    fn push_item(
        &self,
        parent: &Value,
        item: Value,
        merge_base: Option<&Value>,
        out: &mut Vec<Value>,
    ) -> Result<()> {
        match item {
            Value::Object(o) => out.push(self.with_parent(parent, o, merge_base)?),
            other if self.carries_parent() => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                out.push(self.with_parent(parent, m, merge_base)?);
            }
            other => out.push(other),
        }
        Ok(())
    }

    fn with_parent(
        &self,
        parent: &Value,
        item: Map<String, Value>,
        merge_base: Option<&Value>,
    ) -> Result<Value> {
        let mut child = match merge_base {
            Some(Value::Object(base)) => {
                let mut merged = base.clone();
                merged.extend(item);
                merged
            }
            _ => item,
        };
        for f in &self.parent_fields {
            let v = lookup(parent, &f.parent_path)
                .cloned()
                .unwrap_or(Value::Null);
            set_new(&mut child, &f.record_path, v)?;
        }
        if self.remain_original_record {
            child.insert("original_record".into(), parent.clone());
        }
        Ok(Value::Object(child))
    }

    fn warn_if_truncated(&self, parent: &Value) -> Result<()> {
        if self.truncation_indicator.is_empty() {
            return Ok(());
        }
        let path = evaluated(&self.truncation_indicator)?;
        let truncated = lookup(parent, &path).is_some_and(crate::interpolation::truthy);
        if truncated && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a record's nested list is truncated (the field at {path:?} is set) and no truncated_list_retriever fetches the rest; only the embedded items are expanded"
            );
        }
        Ok(())
    }
}

/// `truncated_list_retriever` as a stream named `record_expander_truncated_list`, with the
/// `$parameters` of the enclosing components.
fn list_retriever(n: Node<'_>, b: &Build) -> Result<crate::stream::StreamDef> {
    let ty = n
        .value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("SimpleRetriever");
    if ty != "SimpleRetriever" {
        return Err(crate::manifest::unsupported_type(
            ty,
            n.at(),
            &["SimpleRetriever"],
        ));
    }
    for option in ["partition_router", "pagination_reset"] {
        if n.value.get(option).is_some_and(|v| !v.is_null()) {
            return Err(Error::config(format!(
                "`{option}` is not supported on `truncated_list_retriever` (at {})",
                n.at()
            )));
        }
    }
    let mut retriever = n.value.clone();
    if let Value::Object(m) = &mut retriever {
        m.entry("type").or_insert_with(|| "SimpleRetriever".into());
    }
    let name = "record_expander_truncated_list";
    crate::stream::StreamDef::from_retriever(retriever, &n.params, n.path.clone(), b, name)
}

/// Every record the retriever reads with `parent` as `stream_slice['parent_record']`.
async fn fetch(stream: &Arc<crate::stream::StreamDef>, parent: &Value) -> Result<Vec<Value>> {
    let mut partition = Map::new();
    partition.insert("parent_record".into(), parent.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let _guard = crate::read::spawn_partition(stream.clone(), partition, tx);
    let mut out = Vec::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            crate::read::Msg::Page { records, .. } => out.extend(records.into_values()?),
            crate::read::Msg::Failed(e) => return Err(e),
            _ => {}
        }
    }
    Ok(out)
}

/// The parent without the lists at `path` (other values there are kept).
fn without_lists(v: &Value, path: &[String]) -> Value {
    let Some((head, rest)) = path.split_first() else {
        return v.clone();
    };
    let matches = |k: &str| head == "*" || head == k;
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, c) in m {
                if matches(k) {
                    if rest.is_empty() {
                        if !c.is_array() {
                            out.insert(k.clone(), c.clone());
                        }
                    } else {
                        out.insert(k.clone(), without_lists(c, rest));
                    }
                } else {
                    out.insert(k.clone(), c.clone());
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    if matches(&i.to_string()) {
                        if rest.is_empty() {
                            (!c.is_array()).then(|| c.clone())
                        } else {
                            Some(without_lists(c, rest))
                        }
                    } else {
                        Some(c.clone())
                    }
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The value at a glob-free path (negative list indexes count from the end).
fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, seg| match cur {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => {
            let i: i64 = seg.parse().ok()?;
            let i = if i < 0 { a.len() as i64 + i } else { i };
            usize::try_from(i).ok().and_then(|i| a.get(i))
        }
        _ => None,
    })
}

/// dpath's `new`: `value` at `path`, creating objects on the way.
fn set_new(m: &mut Map<String, Value>, path: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut cur = m;
    for seg in parents {
        let next = cur
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        cur = next.as_object_mut().ok_or_else(|| {
            Error::config(format!(
                "cannot write a parent field to record_path {path:?}: the expanded item already holds a non-object value on that path"
            ))
        })?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expander(v: Value) -> RecordExpander {
        let b = Build::new(&json!({}), None, 1);
        RecordExpander::decode(Node::root(&v), &b).unwrap()
    }

    fn run(e: &RecordExpander, parent: Value) -> Vec<Value> {
        let mut out = Vec::new();
        e.expand(parent, &mut out).unwrap();
        out
    }

    #[test]
    fn expands_with_parent_context() {
        let parent = json!({"id": 1, "meta": {"url": "u"}, "lines": {"data": [{"n": 1}, 7]}});
        let e = expander(
            json!({"type": "RecordExpander", "expand_records_from_field": ["lines", "data"]}),
        );
        assert_eq!(run(&e, parent.clone()), vec![json!({"n": 1}), json!(7)]);
        let e = expander(
            json!({"type": "RecordExpander", "expand_records_from_field": ["lines", "data"],
            "merge_parent": true,
            "parent_fields": [{"type": "ParentFieldPath", "parent_path": ["meta", "url"], "record_path": ["ctx", "url"]}]}),
        );
        assert_eq!(
            run(&e, parent.clone()),
            vec![
                json!({"id": 1, "meta": {"url": "u"}, "lines": {}, "n": 1, "ctx": {"url": "u"}}),
                json!({"id": 1, "meta": {"url": "u"}, "lines": {}, "value": 7, "ctx": {"url": "u"}}),
            ]
        );
        let e = expander(
            json!({"type": "RecordExpander", "expand_records_from_field": ["*", "items"],
            "remain_original_record": true, "on_no_records": "emit_parent"}),
        );
        let p = json!({"a": {"items": []}});
        assert_eq!(run(&e, p.clone()), vec![p]);
        let p = json!({"a": {"items": [{"x": 1}]}, "b": {"items": [{"x": 2}]}});
        assert_eq!(
            run(&e, p.clone()),
            vec![
                json!({"x": 1, "original_record": p.clone()}),
                json!({"x": 2, "original_record": p})
            ]
        );
    }
}
