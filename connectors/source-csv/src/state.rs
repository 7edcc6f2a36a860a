//! Incremental state in the shape of Airbyte's file-based sources:
//! `{"history": {uri: last_modified}, "_ab_source_file_last_modified": "<last_modified>_<uri>"}`
//! with times as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. A file is read when it is new or its time
//! moved on from the one the history holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::infer::FILE_LAST_MODIFIED;
use crate::storage::FileRef;
use cdk::{Error, Result};

/// Files remembered at most; beyond it the oldest are forgotten.
pub const MAX_HISTORY: usize = 10_000;
/// With a full history, a file not in it is read only when it is at most this much older than
/// the cursor (Airbyte's `days_to_sync_if_history_is_full`).
const DAYS_TO_SYNC_IF_HISTORY_IS_FULL: i64 = 3;

/// A time as the state and the `_ab_source_file_last_modified` column write it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ").map(|t| t.and_utc()))
        .ok()
}

#[derive(Debug, Default)]
pub struct FileHistory {
    /// uri → last modified, as read.
    files: BTreeMap<String, DateTime<Utc>>,
}

impl FileHistory {
    pub fn from_state(state: Option<&Value>) -> Result<Self> {
        let mut history = Self::default();
        let Some(entries) = state.and_then(|s| s.get("history")) else {
            return Ok(history);
        };
        let bad =
            |why: String| Error::config(format!("the stream state's history is invalid: {why}"));
        let entries = entries
            .as_object()
            .ok_or_else(|| bad("expected an object of file → last modified time".into()))?;
        for (uri, time) in entries {
            let t = time.as_str().and_then(parse_time).ok_or_else(|| {
                bad(format!(
                    "'{uri}' has time {time}, expected YYYY-MM-DDTHH:MM:SS.ffffffZ"
                ))
            })?;
            history.files.insert(uri.clone(), t);
        }
        Ok(history)
    }

    /// The newest (time, uri) of the history: the cursor.
    fn cursor(&self) -> Option<(DateTime<Utc>, &str)> {
        self.files.iter().map(|(u, t)| (*t, u.as_str())).max()
    }

    pub fn should_read(&self, file: &FileRef) -> bool {
        match self.files.get(&file.uri) {
            // Compared at the state's precision: a time read back from a state has no nanoseconds.
            Some(seen) => format_time(file.last_modified) > format_time(*seen),
            None if self.files.len() < MAX_HISTORY => true,
            None => self.cursor().is_none_or(|(t, _)| {
                file.last_modified >= t - Duration::days(DAYS_TO_SYNC_IF_HISTORY_IS_FULL)
            }),
        }
    }

    pub fn add(&mut self, file: &FileRef) {
        self.files.insert(file.uri.clone(), file.last_modified);
        while self.files.len() > MAX_HISTORY {
            let oldest = self
                .files
                .iter()
                .min_by_key(|(u, t)| (**t, u.as_str()))
                .map(|(u, _)| u.clone())
                .expect("history is not empty");
            self.files.remove(&oldest);
        }
    }

    pub fn to_state(&self) -> Value {
        let history: serde_json::Map<String, Value> = self
            .files
            .iter()
            .map(|(u, t)| (u.clone(), json!(format_time(*t))))
            .collect();
        let mut state = json!({ "history": history });
        if let Some((t, uri)) = self.cursor() {
            state[FILE_LAST_MODIFIED] = json!(format!("{}_{uri}", format_time(t)));
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(uri: &str, secs: i64) -> FileRef {
        FileRef {
            uri: uri.into(),
            last_modified: DateTime::from_timestamp(secs, 123_456_789).unwrap(),
        }
    }

    #[test]
    fn state_round_trip_and_decisions() {
        let mut h = FileHistory::default();
        h.add(&file("a.csv", 100));
        h.add(&file("b.csv", 200));
        let state = h.to_state();
        assert_eq!(
            state,
            json!({"history": {"a.csv": "1970-01-01T00:01:40.123456Z", "b.csv": "1970-01-01T00:03:20.123456Z"},
                   "_ab_source_file_last_modified": "1970-01-01T00:03:20.123456Z_b.csv"})
        );
        let back = FileHistory::from_state(Some(&state)).unwrap();
        assert!(
            !back.should_read(&file("a.csv", 100)),
            "unchanged (nanoseconds dropped)"
        );
        assert!(back.should_read(&file("a.csv", 101)), "changed");
        assert!(
            back.should_read(&file("c.csv", 50)),
            "new, even when older than the cursor"
        );
        assert!(FileHistory::from_state(Some(&json!({"history": {"a": 5}}))).is_err());
        assert!(
            FileHistory::from_state(Some(&json!({"__ab_no_cursor_state_message": true}))).is_ok()
        );
    }

    #[test]
    fn a_full_history_forgets_the_oldest_and_reads_only_recent_strangers() {
        let mut h = FileHistory::default();
        for i in 0..=MAX_HISTORY as i64 {
            h.add(&file(&format!("f{i}"), 1_000_000 + i));
        }
        assert_eq!(h.files.len(), MAX_HISTORY);
        assert!(!h.files.contains_key("f0"));
        assert!(!h.should_read(&file("old", 0)));
        assert!(h.should_read(&file("recent", 1_000_000 + MAX_HISTORY as i64)));
    }
}
