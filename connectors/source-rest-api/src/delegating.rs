//! `StateDelegatingStream`: a stream read by its `full_refresh_stream` when the connection has
//! no state for it, and by its `incremental_stream` once it has one, as in Airbyte — unless
//! `api_retention_period` is set and the state's cursor is older than that (or unreadable),
//! when the full refresh stream reads again. Discover and check see the full refresh stream, as
//! Airbyte's engine (which builds it when there is no state).

use std::sync::Arc;

use cdk::Result;
use serde_json::Value;

use crate::cursor::DatetimeCursor;
use crate::interpolation::Vars;
use crate::interpolation::datetime::{Dt, PyDuration, utc_now};
use crate::manifest::{Build, Node};
use crate::stream::StreamDef;

/// The incremental side of a state-delegating stream.
#[derive(Debug)]
pub struct Delegate {
    incremental: Arc<StreamDef>,
    retention: Option<PyDuration>,
}

/// Decodes a `StateDelegatingStream`: its full refresh stream, holding the incremental one.
pub fn decode(node: Node<'_>, b: &Build) -> Result<StreamDef> {
    let mut c = node.component(None)?;
    let name = c.str("name")?;
    let mut full = StreamDef::decode(c.required_child("full_refresh_stream")?, b)?;
    let incremental = StreamDef::decode(c.required_child("incremental_stream")?, b)?;
    if full.name != name || incremental.name != name {
        return Err(c.error(format!(
            "the full_refresh_stream and incremental_stream must be named like the stream ('{name}'), got '{}' and '{}'",
            full.name, incremental.name
        )));
    }
    let retention = match c.opt_template(b, "api_retention_period")? {
        None => None,
        Some(t) => match t.eval_str(&Vars::new())? {
            Some(s) if !s.is_empty() => Some(
                PyDuration::parse(&s).map_err(|e| c.error(format!("api_retention_period: {e}")))?,
            ),
            _ => None,
        },
    };
    c.finish()?;
    full.delegate = Some(Delegate {
        incremental: Arc::new(incremental),
        retention,
    });
    Ok(full)
}

impl StreamDef {
    /// Sets the read concurrency (of both sides of a state-delegating stream).
    pub fn set_concurrency(&mut self, concurrency: usize) {
        self.concurrency = concurrency;
        if let Some(d) = self.delegate.as_mut()
            && let Some(inc) = Arc::get_mut(&mut d.incremental)
        {
            inc.concurrency = concurrency;
        }
    }
}

/// The stream definition that reads with `state`.
pub fn pick<'s>(stream: &'s Arc<StreamDef>, state: Option<&Value>) -> &'s Arc<StreamDef> {
    let Some(d) = &stream.delegate else {
        return stream;
    };
    let has_state = matches!(state, Some(Value::Object(m)) if !m.is_empty());
    if !has_state {
        return stream;
    }
    if let (Some(retention), Some(state)) = (&d.retention, state) {
        let cursor_dt = [stream.cursor.as_ref(), d.incremental.cursor.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|c| state_datetime(c, state));
        let cutoff = retention.sub_from(&utc_now());
        match cursor_dt {
            Some(dt) if dt >= cutoff => {}
            _ => {
                tracing::warn!(stream = %stream.name,
                    "the state's cursor is older than the API's retention period (or unreadable); reading the full refresh stream");
                return stream;
            }
        }
    }
    &d.incremental
}

/// The cursor datetime of a state: its cursor field, or the global cursor of a partitioned one.
fn state_datetime(cursor: &DatetimeCursor, state: &Value) -> Option<Dt> {
    let field = &cursor.cursor_field;
    state
        .get(field)
        .or_else(|| state.get("state").and_then(|s| s.get(field)))
        .and_then(|v| cursor.parse_value(v))
}
