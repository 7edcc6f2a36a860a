//! `incremental_dependency` of a `ParentStreamConfig`: the parent stream is read incrementally
//! from its own state, kept in the child's state under `parent_state: {"<parent>": {…}}`, so a
//! child reads only the partitions of parent records changed since the last sync.
//!
//! As in Airbyte, the parent's incoming state is the child's `parent_state[<parent>]`, else the
//! child's global `state`, else a child state of one scalar value taken as the parent's cursor.
//! States written while the child reads carry the incoming parent state (the parent is not
//! finished); the last one carries the parent's state after its read.

use std::sync::{Arc, Mutex};

use cdk::Result;
use serde_json::{Map, Value, json};

use crate::read::StartFn;
use crate::selector::Records;
use crate::state::{InputState, StateKeeper};
use crate::stream::StreamDef;

/// The parent-state slot of one incrementally read parent.
#[derive(Debug)]
pub struct ParentDependency {
    /// The parent stream's name (the key under `parent_state`).
    pub name: String,
    input: Mutex<Option<Value>>,
    output: Mutex<Option<Value>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ParentDependency {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            input: Mutex::new(None),
            output: Mutex::new(None),
        })
    }

    /// Takes the parent's incoming state from the child's (`None`: the parent reads from its
    /// start).
    pub fn prepare(&self, child_state: Option<&Value>, parent: &StreamDef) {
        *lock(&self.output) = None;
        *lock(&self.input) = parent_input(child_state, &self.name, parent);
    }

    fn input(&self) -> Option<Value> {
        lock(&self.input).clone()
    }

    /// The parent's state to write: its state after the read when `finished`, else the
    /// incoming one.
    fn state(&self, finished: bool) -> Option<Value> {
        if finished && let Some(out) = lock(&self.output).clone() {
            return Some(out);
        }
        self.input()
    }
}

fn parent_input(child_state: Option<&Value>, name: &str, parent: &StreamDef) -> Option<Value> {
    let Some(Value::Object(child)) = child_state else {
        return None;
    };
    if child.is_empty() {
        return None;
    }
    if let Some(Value::Object(ps)) = child.get("parent_state")
        && let Some(s) = ps.get(name)
    {
        return Some(s.clone());
    }
    if let Some(global) = child.get("state") {
        return Some(global.clone());
    }
    let cursor = parent.cursor.as_ref()?;
    let mut values = child.values();
    match (values.next(), values.next()) {
        (Some(v @ (Value::String(_) | Value::Number(_))), None) => {
            Some(json!({ cursor.cursor_field.as_str(): v }))
        }
        _ => None,
    }
}

/// `state` with the `parent_state` of `deps` added (nothing to add: unchanged).
pub fn with_parent_state(state: Value, deps: &[Arc<ParentDependency>], finished: bool) -> Value {
    let parents: Map<String, Value> = deps
        .iter()
        .filter_map(|d| d.state(finished).map(|s| (d.name.clone(), s)))
        .collect();
    match state {
        Value::Object(mut m) if !parents.is_empty() => {
            m.insert("parent_state".into(), Value::Object(parents));
            Value::Object(m)
        }
        other => other,
    }
}

/// The state kept while a parent with `incremental_dependency` is read.
pub struct ParentRead {
    dep: Arc<ParentDependency>,
    stream: Arc<StreamDef>,
    keeper: StateKeeper,
}

impl ParentRead {
    /// Where each partition of the parent starts, and the tracking of its state (`None` when
    /// the parent has no incremental_sync: it is read whole).
    pub fn start(
        dep: &Arc<ParentDependency>,
        stream: &Arc<StreamDef>,
    ) -> (Option<StartFn>, Option<Self>) {
        let Some(cursor) = &stream.cursor else {
            return (None, None);
        };
        let input = InputState::parse(cursor, dep.input().as_ref());
        let shared = Arc::new(input.clone());
        let starts: StartFn = Arc::new(move |p: &Map<String, Value>| shared.start_of(p));
        let keeper = StateKeeper::new(stream.retriever.router.is_some(), input);
        (
            Some(starts),
            Some(Self {
                dep: dep.clone(),
                stream: stream.clone(),
                keeper,
            }),
        )
    }

    pub fn slice(
        &mut self,
        id: u64,
        partition: &Map<String, Value>,
        sync_start: Option<crate::interpolation::datetime::Dt>,
        gap: bool,
    ) {
        if let Some(s) = sync_start {
            self.keeper.slice_started(id, partition, s, gap);
        }
    }

    /// Notes the cursor values of a page of parent records.
    pub fn page(&mut self, id: u64, records: &Records) -> Result<()> {
        let Some(cursor) = &self.stream.cursor else {
            return Ok(());
        };
        let keeper = &mut self.keeper;
        records.for_each(|r| {
            if let Some(dt) = r
                .field(&cursor.cursor_field)
                .and_then(|v| cursor.parse_value(&v))
            {
                keeper.observe(id, dt);
            }
            Ok(())
        })
    }

    pub fn done(&mut self, id: u64) {
        self.keeper.slice_done(id);
    }

    /// The parent was read whole: its state is what the child's last state carries.
    pub fn finish(self) -> Result<()> {
        let Some(cursor) = &self.stream.cursor else {
            return Ok(());
        };
        let state = self.keeper.state(cursor, cursor.start_datetime()?, true);
        *lock(&self.dep.output) = Some(state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Build, Node};

    fn parent() -> StreamDef {
        let v = json!({"type": "DeclarativeStream", "name": "projects",
            "retriever": {"type": "SimpleRetriever",
                "requester": {"type": "HttpRequester", "url_base": "http://x", "path": "/p"},
                "record_selector": {"type": "RecordSelector", "extractor": {"type": "DpathExtractor", "field_path": []}}},
            "incremental_sync": {"type": "DatetimeBasedCursor", "cursor_field": "updated_at",
                "datetime_format": "%Y-%m-%d", "start_datetime": "2024-01-01"}});
        StreamDef::decode(Node::root(&v), &Build::new(&json!({}), None, 1)).unwrap()
    }

    #[test]
    fn parent_input_follows_airbyte_lookup_order() {
        let p = parent();
        let d = |s: Value| parent_input(Some(&s), "projects", &p);
        assert_eq!(
            d(
                json!({"parent_state": {"projects": {"updated_at": "a"}}, "state": {"updated_at": "b"}})
            ),
            Some(json!({"updated_at": "a"}))
        );
        assert_eq!(
            d(json!({"state": {"updated_at": "b"}})),
            Some(json!({"updated_at": "b"}))
        );
        assert_eq!(
            d(json!({"updated_at": "c"})),
            Some(json!({"updated_at": "c"}))
        );
        assert_eq!(d(json!({"a": 1, "b": 2})), None);
        assert_eq!(d(json!({})), None);
        assert_eq!(parent_input(None, "projects", &p), None);
    }
}
