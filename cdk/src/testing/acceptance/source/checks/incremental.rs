//! Checks over pairs of reads: full refresh twice, incremental second read, resume from the
//! middle, and a read from a future state.

use std::collections::HashMap;

use serde_json::Value;

use super::common;
use super::values::{canonical, cmp_json, is_of, max_cursor, record_bag, value_at};
use crate::protocol::*;
use crate::testing::acceptance::Verdict;
use crate::testing::acceptance::source::covers;
use crate::testing::capture::Captured;

/// Two reads gave the same records (the first may be a subset of the second).
pub fn same_records(first: &Captured, second: &Captured) -> Verdict {
    let mut problems = common(first, true);
    problems.extend(common(second, true));
    let a = record_bag(first);
    let b = record_bag(second);
    for (stream, records) in &a {
        let other = b.get(stream).cloned().unwrap_or_default();
        let missing: Vec<&String> = records
            .iter()
            .filter(|r| !other.contains(*r))
            .take(3)
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "stream '{stream}': the second read lacks records of the first, e.g. {missing:?}"
            ));
        }
    }
    Verdict::from_problems(problems)
}

/// A read from the first read's final state returns no record with a cursor below the
/// largest cursor the first read saw.
pub fn second_read(
    first: &Captured,
    second: &Captured,
    cursors: &HashMap<StreamDescriptor, Vec<String>>,
) -> Verdict {
    let mut problems = common(first, true);
    problems.extend(common(second, true));
    if first.records().next().is_none() {
        problems.push("the first incremental read returned no records".into());
    }
    if first.states().is_empty() {
        problems.push("the first incremental read emitted no state".into());
    }
    for (stream, cursor) in cursors {
        let Some(max) = max_cursor(first.records().filter(|r| is_of(r, stream)), cursor) else {
            continue;
        };
        for r in second.records().filter(|r| is_of(r, stream)) {
            if let Some(v) = value_at(&r.data, cursor)
                && cmp_json(v, &max) == Some(std::cmp::Ordering::Less)
            {
                problems.push(format!(
                    "stream '{stream}': the second read returned cursor {v} below the state's {max}"
                ));
                break;
            }
        }
    }
    Verdict::from_problems(problems)
}

/// Reading from the `index`-th state of `stream` in `first` returns every record that
/// followed that state, and none with a cursor below what preceded it.
pub fn resume_from_middle(
    first: &Captured,
    resumed: &Captured,
    stream: &StreamDescriptor,
    index: usize,
    cursor: &[String],
) -> Verdict {
    let mut problems = common(resumed, true);
    let mut seen_states = 0;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for m in &first.messages {
        match m {
            AirbyteMessage::Record { record } if is_of(record, stream) => {
                if seen_states > index {
                    after.push(record)
                } else {
                    before.push(record)
                }
            }
            AirbyteMessage::State { state } if covers(state, stream) => seen_states += 1,
            _ => {}
        }
    }
    let got: Vec<String> = resumed
        .records()
        .filter(|r| is_of(r, stream))
        .map(|r| canonical(&r.data))
        .collect();
    let lost: Vec<String> = after
        .iter()
        .map(|r| canonical(&r.data))
        .filter(|r| !got.contains(r))
        .take(3)
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "stream '{stream}': resuming from state #{index} lost records, e.g. {lost:?}"
        ));
    }
    if let Some(max) = max_cursor(before.into_iter(), cursor) {
        for r in resumed.records().filter(|r| is_of(r, stream)) {
            if let Some(v) = value_at(&r.data, cursor)
                && cmp_json(v, &max) == Some(std::cmp::Ordering::Less)
            {
                problems.push(format!(
                    "stream '{stream}': resumed read went back to cursor {v} (state was at {max})"
                ));
                break;
            }
        }
    }
    Verdict::from_problems(problems)
}

/// A read from a state in the future returns no records for the streams it covers.
pub fn no_records(c: &Captured, future_state: &Value) -> Verdict {
    let mut problems = common(c, true);
    let state = InputState::parse(&future_state.to_string()).unwrap_or_default();
    let covered = |r: &AirbyteRecordMessage| {
        state
            .stream_state(&StreamDescriptor::new(
                r.stream.clone(),
                r.namespace.clone(),
            ))
            .is_some()
    };
    let n = c.records().filter(|r| covered(r)).count();
    if n > 0 {
        problems.push(format!(
            "reading from the future state returned {n} records"
        ));
    }
    Verdict::from_problems(problems)
}
