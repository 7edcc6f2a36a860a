//! The basic read's check: every record configured, valid and keyed, every stream's statuses
//! and states right.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::common;
use super::values::{is_of, value_at};
use crate::protocol::*;
use crate::testing::acceptance::Verdict;
use crate::testing::capture::Captured;

/// A successful read whose every line, record, status and state is right.
pub fn basic_read(
    c: &Captured,
    catalog: &ConfiguredAirbyteCatalog,
    schemas: &HashMap<StreamDescriptor, Value>,
    empty_streams: &[String],
) -> Verdict {
    let mut problems = common(c, true);
    let mut validators = HashMap::new();
    for (d, schema) in schemas {
        match crate::testing::acceptance::record_validator(schema) {
            Ok(v) => {
                validators.insert(d.clone(), v);
            }
            Err(e) => problems.push(format!("stream '{d}': {e}")),
        }
    }
    let mut counts: BTreeMap<StreamDescriptor, usize> = BTreeMap::new();
    let mut invalid = 0;
    for r in c.records() {
        let d = StreamDescriptor::new(r.stream.clone(), r.namespace.clone());
        let Some(configured) = catalog.find(&d) else {
            problems.push(format!(
                "a record for stream '{d}', which is not configured"
            ));
            continue;
        };
        *counts.entry(d.clone()).or_default() += 1;
        if let Some(v) = validators.get(&d)
            && let Some(e) = v.iter_errors(&r.data).next()
        {
            invalid += 1;
            if invalid <= 5 {
                problems.push(format!(
                    "stream '{d}': record does not match its schema at '{}': {e}: {}",
                    e.instance_path(),
                    r.data
                ));
            }
        }
        for key in configured.resolved_primary_key() {
            if value_at(&r.data, &key).is_none_or(Value::is_null) {
                problems.push(format!(
                    "stream '{d}': primary key {key:?} is null in {}",
                    r.data
                ));
                break;
            }
        }
    }
    if invalid > 5 {
        problems.push(format!(
            "{invalid} records in all do not match their schema"
        ));
    }
    if counts.values().sum::<usize>() == 0
        && catalog
            .streams
            .iter()
            .any(|s| !empty_streams.contains(&s.stream.name))
    {
        problems.push("the read returned no records".into());
    }
    for s in &catalog.streams {
        let d = s.descriptor();
        let n = counts.get(&d).copied().unwrap_or(0);
        if n == 0 && !empty_streams.contains(&d.name) {
            problems.push(format!(
                "stream '{d}' has no records (list it in empty_streams if that is expected)"
            ));
        }
        problems.extend(status_problems(c, &d, n));
        problems.extend(state_problems(c, &d));
    }
    Verdict::from_problems(problems)
}

/// STARTED, RUNNING (iff records), COMPLETE, with the records in between.
fn status_problems(c: &Captured, d: &StreamDescriptor, records: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut statuses = Vec::new();
    let (mut first_record, mut last_record) = (None, None);
    for (i, m) in c.messages.iter().enumerate() {
        match m {
            AirbyteMessage::Trace { trace } => {
                if let TracePayload::StreamStatus { stream_status } = &trace.payload
                    && stream_status.stream_descriptor == *d
                {
                    statuses.push((i, stream_status.status));
                }
            }
            AirbyteMessage::Record { record } if is_of(record, d) => {
                first_record.get_or_insert(i);
                last_record = Some(i);
            }
            _ => {}
        }
    }
    let kinds: Vec<AirbyteStreamStatus> = statuses.iter().map(|(_, s)| *s).collect();
    use AirbyteStreamStatus::*;
    let ok = kinds.len() >= 2
        && kinds.first() == Some(&Started)
        && kinds.last() == Some(&Complete)
        && kinds[1..kinds.len() - 1].iter().all(|s| *s == Running)
        && (records == 0 || kinds.contains(&Running));
    if !ok {
        problems.push(format!(
            "stream '{d}': statuses {kinds:?}, expected STARTED, RUNNING (with records), COMPLETE"
        ));
    } else if let (Some(first), Some(last)) = (first_record, last_record) {
        let started = statuses[0].0;
        let complete = statuses[statuses.len() - 1].0;
        if first < started || last > complete {
            problems.push(format!("stream '{d}': records outside STARTED..COMPLETE"));
        }
    }
    problems
}

/// At least one state, each with sourceStats, never the same state twice in a row.
fn state_problems(c: &Captured, d: &StreamDescriptor) -> Vec<String> {
    let mut problems = Vec::new();
    let states = c.states_of_descriptor(d);
    if states.is_empty() {
        problems.push(format!("stream '{d}': no STATE message"));
    }
    if states
        .iter()
        .any(|s| s.source_stats.and_then(|s| s.record_count).is_none())
    {
        problems.push(format!(
            "stream '{d}': a STATE without sourceStats.recordCount"
        ));
    }
    let blob = |s: &AirbyteStateMessage| (s.stream.clone(), s.global.clone());
    if states.windows(2).any(|w| blob(w[0]) == blob(w[1])) {
        problems.push(format!(
            "stream '{d}': the same state was emitted twice in a row"
        ));
    }
    problems
}
