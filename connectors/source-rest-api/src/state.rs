//! Stream state in the shapes Airbyte's declarative engine writes, so a connection can move
//! between engines: `{"<cursor_field>": "<value>"}` for a stream, and for partitioned streams
//! `{"states": [{"partition": {...}, "cursor": {"<cursor_field>": "<value>"}}], "state": {...},
//! "use_global_cursor": false}`. A partition's cursor advances over its slices in order: to the
//! latest record cursor of the slices done without a gap (never past a slice still running).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::cursor::DatetimeCursor;
use crate::interpolation::datetime::Dt;

/// The cursor of one partition over its slices.
#[derive(Debug)]
struct Tracker {
    partition: Value,
    value: Dt,
    /// True once a slice of the partition completed (before that it has nothing to say).
    advanced: bool,
    /// Slices not yet folded into `value`, in order: (id, done, latest record cursor).
    open: Vec<(u64, bool, Option<Dt>)>,
    /// The first slice started after a gap (a clamped slice): as in airbyte-cdk, the cursor
    /// stays where the partition started.
    gap: bool,
}

impl Tracker {
    fn close(&mut self) {
        while let Some((_, true, max)) = self.open.first().copied() {
            if let Some(m) = max
                && m > self.value
                && !self.gap
            {
                self.value = m;
            }
            self.open.remove(0);
            self.advanced = true;
        }
    }
}

/// Incoming state, read once.
#[derive(Debug, Default, Clone)]
pub struct InputState {
    /// The cursor of the stream (or the global cursor of a partitioned stream).
    pub global: Option<Dt>,
    pub partitions: HashMap<String, (Value, Dt)>,
    /// Partitions in their original order.
    order: Vec<String>,
    /// One cursor for all partitions (`global_substream_cursor`, or `use_global_cursor` in the
    /// state): partitions start from the global cursor and only it is kept.
    pub use_global: bool,
    /// The state's `lookback_window` (seconds): partitions starting from the global cursor
    /// start this much earlier, as in Airbyte.
    pub lookback_secs: i64,
}

/// The key a partition is known by (its JSON with sorted keys).
pub fn partition_key(partition: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(b.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            other => other.clone(),
        }
    }
    sorted(partition).to_string()
}

impl InputState {
    pub fn parse(cursor: &DatetimeCursor, state: Option<&Value>) -> Self {
        let mut out = InputState {
            use_global: cursor.global_substream,
            ..InputState::default()
        };
        let Some(Value::Object(s)) = state else {
            return out;
        };
        if s.contains_key("states") || s.contains_key("state") {
            out.use_global = s.get("use_global_cursor").and_then(Value::as_bool) == Some(true);
            out.lookback_secs = s
                .get("lookback_window")
                .and_then(Value::as_i64)
                .unwrap_or(0);
        }
        let field = &cursor.cursor_field;
        if let Some(v) = s.get(field) {
            out.global = cursor.parse_value(v);
        }
        if let Some(Value::Object(g)) = s.get("state") {
            out.global = g
                .get(field)
                .and_then(|v| cursor.parse_value(v))
                .or(out.global);
        }
        if let Some(Value::Array(states)) = s.get("states") {
            for entry in states {
                let (Some(p), Some(c)) = (entry.get("partition"), entry.get("cursor")) else {
                    continue;
                };
                if let Some(dt) = c.get(field).and_then(|v| cursor.parse_value(v)) {
                    let key = partition_key(p);
                    out.order.push(key.clone());
                    out.partitions.insert(key, (p.clone(), dt));
                }
            }
        }
        if out.use_global {
            out.partitions.clear();
            out.order.clear();
        }
        out
    }

    /// Where a partition starts from, by this state.
    pub fn start_of(&self, partition: &Map<String, Value>) -> Option<Dt> {
        let key = partition_key(&Value::Object(partition.clone()));
        let global = self.global.map(|g| {
            chrono::TimeDelta::try_seconds(self.lookback_secs)
                .and_then(|l| g.checked_sub_signed(l))
                .unwrap_or(g)
        });
        self.partitions.get(&key).map(|(_, d)| *d).or(global)
    }
}

/// The state of a stream being read incrementally.
#[derive(Debug)]
pub struct StateKeeper {
    partitioned: bool,
    input: InputState,
    trackers: HashMap<String, Tracker>,
    order: Vec<String>,
    slice_of: HashMap<u64, String>,
    last_emit: Instant,
    /// The latest record cursor seen (the global cursor of `global_substream_cursor`).
    latest_record: Option<Dt>,
    started: Instant,
}

impl StateKeeper {
    pub fn new(partitioned: bool, input: InputState) -> Self {
        Self {
            partitioned,
            input,
            trackers: HashMap::new(),
            order: Vec::new(),
            slice_of: HashMap::new(),
            last_emit: Instant::now(),
            latest_record: None,
            started: Instant::now(),
        }
    }

    /// A slice of `partition` starts; `gap` as `Msg::Slice` has it (used by a partition's
    /// first slice).
    pub fn slice_started(
        &mut self,
        id: u64,
        partition: &Map<String, Value>,
        sync_start: Dt,
        gap: bool,
    ) {
        let pv = Value::Object(partition.clone());
        let key = partition_key(&pv);
        let tracker = self.trackers.entry(key.clone()).or_insert_with(|| {
            self.order.push(key.clone());
            Tracker {
                partition: pv,
                value: sync_start,
                advanced: false,
                open: Vec::new(),
                gap,
            }
        });
        tracker.open.push((id, false, None));
        self.slice_of.insert(id, key);
    }

    /// Notes a record's cursor value.
    pub fn observe(&mut self, id: u64, value: Dt) {
        self.latest_record = Some(self.latest_record.map_or(value, |m| m.max(value)));
        let Some(t) = self
            .slice_of
            .get(&id)
            .and_then(|k| self.trackers.get_mut(k))
        else {
            return;
        };
        if let Some(slot) = t.open.iter_mut().find(|(i, _, _)| *i == id) {
            slot.2 = Some(slot.2.map_or(value, |m| m.max(value)));
        }
    }

    /// A slice is done; true when a state is worth emitting now.
    pub fn slice_done(&mut self, id: u64) -> bool {
        let Some(key) = self.slice_of.remove(&id) else {
            return false;
        };
        if let Some(t) = self.trackers.get_mut(&key) {
            if let Some(slot) = t.open.iter_mut().find(|(i, _, _)| *i == id) {
                slot.1 = true;
            }
            t.close();
        }
        // A global substream cursor is only stated once every partition was read.
        if self.global_mode() {
            return false;
        }
        // Large partitioned states are not rewritten after every slice.
        if self.partitioned && self.trackers.len() > 100 {
            if self.last_emit.elapsed().as_secs() < 5 {
                return false;
            }
            self.last_emit = Instant::now();
        }
        true
    }

    /// The state to emit. `finished` adds the global cursor of a partitioned stream (the
    /// latest of all partitions), which only holds once every partition was read.
    pub fn state(&self, cursor: &DatetimeCursor, default_start: Dt, finished: bool) -> Value {
        let field = &cursor.cursor_field;
        if !self.partitioned {
            let value = self
                .trackers
                .values()
                .next()
                .filter(|t| t.advanced)
                .map(|t| t.value)
                .unwrap_or_else(|| {
                    self.input
                        .global
                        .map_or(default_start, |g| g.max(default_start))
                });
            return json!({ field: cursor.state_value(&value) });
        }
        if self.global_mode() {
            return self.global_state(cursor);
        }
        let mut states = Vec::new();
        let mut latest: Option<Dt> = self.input.global;
        let advanced = |key: &String| self.trackers.get(key).is_some_and(|t| t.advanced);
        for key in &self.input.order {
            if !advanced(key)
                && let Some((p, d)) = self.input.partitions.get(key)
            {
                states.push(json!({"partition": p, "cursor": { field: cursor.state_value(d) }}));
                latest = Some(latest.map_or(*d, |l| l.max(*d)));
            }
        }
        for key in self.order.iter().filter(|k| advanced(k)) {
            let t = &self.trackers[key];
            states.push(
                json!({"partition": t.partition, "cursor": { field: cursor.state_value(&t.value) }}),
            );
            latest = Some(latest.map_or(t.value, |l| l.max(t.value)));
        }
        let mut out = Map::new();
        out.insert("use_global_cursor".into(), Value::Bool(false));
        out.insert("states".into(), Value::Array(states));
        let global = if finished { latest } else { self.input.global };
        if let Some(g) = global {
            out.insert("state".into(), json!({ field: cursor.state_value(&g) }));
        }
        Value::Object(out)
    }
}

impl StateKeeper {
    fn global_mode(&self) -> bool {
        self.partitioned && self.input.use_global
    }

    /// The state of a global substream cursor, as Airbyte writes it: the latest record cursor
    /// (or the incoming one), and the sync's duration in seconds as `lookback_window` (the
    /// incoming one when no record was read).
    fn global_state(&self, cursor: &DatetimeCursor) -> Value {
        let field = &cursor.cursor_field;
        let mut out = Map::new();
        out.insert("use_global_cursor".into(), Value::Bool(true));
        let global = match (self.input.global, self.latest_record) {
            (Some(g), Some(r)) => Some(g.max(r)),
            (g, r) => g.or(r),
        };
        if let Some(g) = global {
            out.insert("state".into(), json!({ field: cursor.state_value(&g) }));
        }
        let lookback = if self.latest_record.is_some() {
            self.started.elapsed().as_secs() as i64
        } else {
            self.input.lookback_secs
        };
        out.insert("lookback_window".into(), Value::from(lookback));
        Value::Object(out)
    }
}
