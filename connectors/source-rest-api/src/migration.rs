//! `state_migrations` of a `DeclarativeStream`: `LegacyToPerPartitionStateMigration` turns the
//! old per-partition state `{"<parent id>": {"<cursor_field>": "<value>"}}` into the low-code
//! shape `{"states": [{"partition": {"<partition_field>": "<parent id>"}, "cursor": {…}}]}`
//! before the state is read, as Airbyte's engine does. `CustomStateMigration` is Python code and
//! is refused.

use cdk::Result;
use serde_json::{Value, json};

use crate::interpolation::Vars;
use crate::manifest::{Build, Component, Node, unsupported_type};

/// One migration of the incoming state.
#[derive(Debug, Clone)]
pub struct StateMigration {
    partition_field: String,
    cursor_field: String,
    /// Airbyte migrates only when the router has exactly one parent stream.
    one_parent: bool,
}

const SUPPORTED: [&str; 1] = ["LegacyToPerPartitionStateMigration"];

/// The migrations listed on `stream` (`state_migrations`), given its cursor field.
pub fn decode(
    stream: &mut Component<'_>,
    b: &Build,
    cursor_field: Option<&str>,
) -> Result<Vec<StateMigration>> {
    let nodes = stream.children("state_migrations")?;
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for n in nodes {
        let m = n.component(None)?;
        match m.type_name.as_str() {
            "LegacyToPerPartitionStateMigration" => {}
            "CustomStateMigration" => {
                return Err(m.error(
                    "custom state migrations are Python code (class_name) and cannot run here",
                ));
            }
            other => return Err(unsupported_type(other, m.at(), &SUPPORTED)),
        }
        let cursor_field = cursor_field.ok_or_else(|| {
            m.error("LegacyToPerPartitionStateMigration needs the stream's incremental_sync")
        })?;
        let (partition_field, one_parent) = parent_partition_field(stream, b, &m)?;
        out.push(StateMigration {
            partition_field,
            cursor_field: cursor_field.to_string(),
            one_parent,
        });
    }
    Ok(out)
}

/// The `partition_field` of the first parent of the stream's `SubstreamPartitionRouter`, and
/// whether it is the only parent.
fn parent_partition_field(
    stream: &mut Component<'_>,
    b: &Build,
    m: &Component<'_>,
) -> Result<(String, bool)> {
    let needs_router = || {
        m.error("LegacyToPerPartitionStateMigration needs a SimpleRetriever with a SubstreamPartitionRouter")
    };
    let mut r = stream
        .child("retriever")
        .ok_or_else(needs_router)?
        .component(Some("SimpleRetriever"))?;
    let router: Node<'_> = r.child("partition_router").ok_or_else(needs_router)?;
    if !router.value.is_object() {
        return Err(needs_router());
    }
    let mut router = router.component(None)?;
    if router.type_name != "SubstreamPartitionRouter" {
        return Err(needs_router());
    }
    let parents = router.children("parent_stream_configs")?;
    let count = parents.len();
    let first = parents.into_iter().next().ok_or_else(needs_router)?;
    let mut first = first.component(Some("ParentStreamConfig"))?;
    let field = first
        .template(b, "partition_field")?
        .eval_str(&Vars::new())?
        .unwrap_or_default();
    Ok((field, count == 1))
}

impl StateMigration {
    /// Whether `state` is in the legacy shape this migration reads.
    fn applies(&self, state: &serde_json::Map<String, Value>) -> bool {
        if state.contains_key("states") || !self.one_parent || state.is_empty() {
            return false;
        }
        state.values().all(|v| match v {
            Value::Object(o) => o.len() == 1 && o.contains_key(&self.cursor_field),
            _ => false,
        })
    }

    fn migrate(&self, state: &serde_json::Map<String, Value>) -> Value {
        let states: Vec<Value> = state
            .iter()
            .map(|(k, v)| json!({"partition": {self.partition_field.as_str(): k}, "cursor": v}))
            .collect();
        json!({ "states": states })
    }
}

/// The incoming state with every applicable migration applied in order.
pub fn apply(migrations: &[StateMigration], state: Option<&Value>) -> Option<Value> {
    let mut state = state.cloned()?;
    for m in migrations {
        if let Value::Object(s) = &state
            && m.applies(s)
        {
            state = m.migrate(s);
        }
    }
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(one_parent: bool) -> StateMigration {
        StateMigration {
            partition_field: "parent_id".into(),
            cursor_field: "updated_at".into(),
            one_parent,
        }
    }

    #[test]
    fn legacy_state_becomes_per_partition() {
        let legacy =
            json!({"13": {"updated_at": "2024-01-02"}, "14": {"updated_at": "2024-02-01"}});
        assert_eq!(
            apply(&[migration(true)], Some(&legacy)),
            Some(json!({"states": [
                {"partition": {"parent_id": "13"}, "cursor": {"updated_at": "2024-01-02"}},
                {"partition": {"parent_id": "14"}, "cursor": {"updated_at": "2024-02-01"}}
            ]}))
        );
    }

    #[test]
    fn other_shapes_stay() {
        for s in [
            json!({"states": []}),
            json!({"updated_at": "2024-01-01"}),
            json!({"13": {"updated_at": "x", "other": 1}}),
            json!({}),
        ] {
            assert_eq!(apply(&[migration(true)], Some(&s)), Some(s.clone()));
        }
        let legacy = json!({"13": {"updated_at": "2024-01-02"}});
        assert_eq!(
            apply(&[migration(false)], Some(&legacy)),
            Some(legacy.clone())
        );
        assert_eq!(apply(&[migration(true)], None), None);
    }
}
