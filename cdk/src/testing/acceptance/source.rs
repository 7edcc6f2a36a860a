//! Source checks: spec, check, discover, basic read, full refresh twice, incremental (second
//! read, resume from the middle, future state) and bad catalogs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Report, Verdict};
use crate::protocol::*;
use crate::testing::capture::{Captured, Run};

/// A source and its fixtures (Airbyte's `integration_tests/` files, as JSON values).
#[derive(Debug, Clone, Default)]
pub struct SourceSuite {
    pub bin: PathBuf,
    pub config: Value,
    /// A config that `check` must answer with FAILED (exit 0).
    pub invalid_config: Value,
    /// The configured catalog for the reads.
    pub catalog: Value,
    /// A state far in the future: reading from it returns no records. `None` skips that check.
    pub future_state: Option<Value>,
    /// Extra arguments for every command (e.g. `--manifest-path`).
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Streams allowed to have no records.
    pub empty_streams: Vec<String>,
}

impl SourceSuite {
    fn cmd(&self) -> Run {
        let mut run = Run::new(&self.bin);
        for a in &self.extra_args {
            run = run.arg(a.clone());
        }
        for (k, v) in &self.env {
            run = run.env(k, v);
        }
        run
    }

    /// Runs every check and returns the report (call `assert_all_passed` on it in tests).
    pub fn run(&self) -> Report {
        let mut report = Report::default();
        let spec = self.cmd().spec();
        report.push(
            "spec",
            checks::spec(&spec, &self.config),
            Some(spec.describe()),
        );

        let ok = self.cmd().check(&self.config);
        report.push(
            "check: valid config",
            checks::connection_status(&ok, ConnectionStatus::Succeeded),
            Some(ok.describe()),
        );
        let bad = self.cmd().check(&self.invalid_config);
        report.push(
            "check: invalid config",
            checks::connection_status(&bad, ConnectionStatus::Failed),
            Some(bad.describe()),
        );

        let discovered = self.cmd().discover(&self.config);
        let verdict = checks::discover(&discovered);
        let catalog = (!verdict.is_fail()).then(|| discovered.catalog().clone());
        report.push("discover", verdict, Some(discovered.describe()));

        let configured: ConfiguredAirbyteCatalog =
            match serde_json::from_value(self.catalog.clone()) {
                Ok(c) => c,
                Err(e) => {
                    report.push(
                        "basic read",
                        Verdict::Fail(format!("the configured catalog fixture is invalid: {e}")),
                        None,
                    );
                    return report;
                }
            };
        let schemas = schemas_of(catalog.as_ref(), &configured);

        let read = self.cmd().read(&self.config, &self.catalog, None);
        report.push(
            "basic read",
            checks::basic_read(&read, &configured, &schemas, &self.empty_streams),
            Some(read.describe()),
        );

        self.full_refresh_twice(&configured, &mut report);
        self.incremental(&configured, catalog.as_ref(), &mut report);
        self.bad_catalogs(&configured, catalog.as_ref(), &mut report);
        report
    }

    fn full_refresh_twice(&self, configured: &ConfiguredAirbyteCatalog, report: &mut Report) {
        let mut catalog = configured.clone();
        catalog.streams.retain(|s| {
            s.stream
                .supported_sync_modes
                .contains(&SyncMode::FullRefresh)
        });
        if catalog.streams.is_empty() {
            report.push(
                "full refresh twice",
                Verdict::Skip("no full refresh stream".into()),
                None,
            );
            return;
        }
        for s in &mut catalog.streams {
            s.sync_mode = SyncMode::FullRefresh;
            s.destination_sync_mode = DestinationSyncMode::Overwrite;
        }
        let catalog = to_json(&catalog);
        let first = self.cmd().read(&self.config, &catalog, None);
        let second = self.cmd().read(&self.config, &catalog, None);
        let details = format!("{}\n{}", first.describe(), second.describe());
        report.push(
            "full refresh twice",
            checks::same_records(&first, &second),
            Some(details),
        );
    }

    fn incremental(
        &self,
        configured: &ConfiguredAirbyteCatalog,
        discovered: Option<&AirbyteCatalog>,
        report: &mut Report,
    ) {
        let catalog = incremental_catalog(configured, discovered);
        if catalog.streams.is_empty() {
            for name in [
                "incremental: second read",
                "incremental: resume from middle",
                "incremental: future state",
            ] {
                report.push(name, Verdict::Skip("no incremental stream".into()), None);
            }
            return;
        }
        let cursors: HashMap<StreamDescriptor, Vec<String>> = catalog
            .streams
            .iter()
            .filter_map(|s| Some((s.descriptor(), s.resolved_cursor_field()?.to_vec())))
            .collect();
        let catalog_json = to_json(&catalog);
        let first = self.cmd().read(&self.config, &catalog_json, None);
        let state = first.final_state();
        let second = self.cmd().read(&self.config, &catalog_json, Some(&state));
        report.push(
            "incremental: second read",
            checks::second_read(&first, &second, &cursors),
            Some(format!("{}\n{}", first.describe(), second.describe())),
        );

        let mut verdicts = Vec::new();
        let mut details = String::new();
        for (stream, cursor) in &cursors {
            let states: Vec<&AirbyteStateMessage> = first.states_of_descriptor(stream);
            if states.len() < 2 {
                continue;
            }
            let middle = (states.len() - 1) / 2;
            let mut state = states[middle].clone();
            state.source_stats = None;
            let resumed = self
                .cmd()
                .read(&self.config, &catalog_json, Some(&json!([state])));
            verdicts.push(checks::resume_from_middle(
                &first, &resumed, stream, middle, cursor,
            ));
            details.push_str(&resumed.describe());
        }
        let verdict = if verdicts.is_empty() {
            Verdict::Skip("no stream has two states to resume between".into())
        } else {
            verdicts
                .into_iter()
                .find(Verdict::is_fail)
                .unwrap_or(Verdict::Pass)
        };
        report.push("incremental: resume from middle", verdict, Some(details));

        match &self.future_state {
            None => report.push(
                "incremental: future state",
                Verdict::Skip("no future state fixture".into()),
                None,
            ),
            Some(future) => {
                let read = self.cmd().read(&self.config, &catalog_json, Some(future));
                report.push(
                    "incremental: future state",
                    checks::no_records(&read, future),
                    Some(read.describe()),
                );
            }
        }
    }

    fn bad_catalogs(
        &self,
        configured: &ConfiguredAirbyteCatalog,
        discovered: Option<&AirbyteCatalog>,
        report: &mut Report,
    ) {
        let mut catalog = configured.clone();
        let missing = AirbyteStream::new(
            "__cdk_nonexistent_stream__",
            json!({"type": "object", "properties": {}}),
            vec![SyncMode::FullRefresh],
        );
        catalog.streams.push(ConfiguredAirbyteStream::new(
            missing,
            SyncMode::FullRefresh,
            DestinationSyncMode::Overwrite,
        ));
        let read = self.cmd().read(&self.config, &to_json(&catalog), None);
        report.push(
            "bad catalog: unknown stream",
            checks::fails_with_trace(&read),
            Some(read.describe()),
        );

        let full_only = discovered
            .into_iter()
            .flat_map(|c| c.streams.iter())
            .find(|s| !s.supported_sync_modes.contains(&SyncMode::Incremental));
        match full_only {
            None => report.push(
                "bad catalog: unsupported sync mode",
                Verdict::Skip("every stream supports incremental".into()),
                None,
            ),
            Some(stream) => {
                let mut s = ConfiguredAirbyteStream::new(
                    stream.clone(),
                    SyncMode::Incremental,
                    DestinationSyncMode::Append,
                );
                s.cursor_field = Some(vec!["__cdk_no_such_cursor__".into()]);
                let catalog = ConfiguredAirbyteCatalog { streams: vec![s] };
                let read = self.cmd().read(&self.config, &to_json(&catalog), None);
                report.push(
                    "bad catalog: unsupported sync mode",
                    checks::fails_with_trace(&read),
                    Some(read.describe()),
                );
            }
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("catalogs serialise")
}

/// Stream schemas to validate records with: the discovered ones, else the configured ones.
fn schemas_of(
    discovered: Option<&AirbyteCatalog>,
    configured: &ConfiguredAirbyteCatalog,
) -> HashMap<StreamDescriptor, Value> {
    let mut schemas: HashMap<StreamDescriptor, Value> = configured
        .streams
        .iter()
        .map(|s| (s.descriptor(), s.stream.json_schema.clone()))
        .collect();
    for s in discovered.into_iter().flat_map(|c| c.streams.iter()) {
        if schemas.contains_key(&s.descriptor()) {
            schemas.insert(s.descriptor(), s.json_schema.clone());
        }
    }
    schemas
}

/// The configured incremental streams, or every stream that can be read incrementally.
fn incremental_catalog(
    configured: &ConfiguredAirbyteCatalog,
    discovered: Option<&AirbyteCatalog>,
) -> ConfiguredAirbyteCatalog {
    let mut streams: Vec<ConfiguredAirbyteStream> = configured
        .streams
        .iter()
        .filter(|s| s.sync_mode == SyncMode::Incremental && s.resolved_cursor_field().is_some())
        .cloned()
        .collect();
    if streams.is_empty() {
        streams = configured
            .streams
            .iter()
            .filter_map(|s| {
                let known = discovered?
                    .streams
                    .iter()
                    .find(|d| d.descriptor() == s.descriptor())?;
                if !known.supported_sync_modes.contains(&SyncMode::Incremental) {
                    return None;
                }
                let mut s = s.clone();
                s.stream = known.clone();
                s.sync_mode = SyncMode::Incremental;
                s.destination_sync_mode = DestinationSyncMode::Append;
                s.resolved_cursor_field().is_some().then_some(s)
            })
            .collect();
    }
    ConfiguredAirbyteCatalog { streams }
}

/// True when `state` is a STREAM state of `stream` or a GLOBAL state holding it.
fn covers(state: &AirbyteStateMessage, stream: &StreamDescriptor) -> bool {
    match (&state.stream, &state.global) {
        (Some(st), _) => st.stream_descriptor == *stream,
        (None, Some(g)) => g
            .stream_states
            .iter()
            .any(|st| st.stream_descriptor == *stream),
        _ => false,
    }
}

impl Captured {
    /// STREAM states of one stream (or GLOBAL states holding it), in order.
    pub fn states_of_descriptor(&self, stream: &StreamDescriptor) -> Vec<&AirbyteStateMessage> {
        self.states()
            .into_iter()
            .filter(|s| covers(s, stream))
            .collect()
    }
}

/// The checks, each over captured output, so that each can be shown to fail.
pub mod checks {
    use super::*;

    /// One SPEC whose connectionSpecification is a sound spec and accepts `config`.
    pub fn spec(c: &Captured, config: &Value) -> Verdict {
        let mut problems = common(c, true);
        let specs: Vec<&ConnectorSpecification> = c
            .messages
            .iter()
            .filter_map(|m| match m {
                AirbyteMessage::Spec { spec } => Some(spec),
                _ => None,
            })
            .collect();
        if specs.len() != 1 {
            problems.push(format!(
                "expected exactly one SPEC message, got {}",
                specs.len()
            ));
            return Verdict::from_problems(problems);
        }
        let schema = &specs[0].connection_specification;
        problems.extend(super::super::spec_problems(schema));
        let mut config = config.clone();
        if let Value::Object(m) = &mut config {
            m.retain(|k, _| !k.starts_with('_'));
        }
        if let Ok(v) = jsonschema::draft7::new(schema) {
            problems.extend(v.iter_errors(&config).map(|e| {
                format!(
                    "the valid config does not match the spec: {}: {e}",
                    e.instance_path()
                )
            }));
        }
        Verdict::from_problems(problems)
    }

    /// Exactly one CONNECTION_STATUS with `expected`, exit 0.
    pub fn connection_status(c: &Captured, expected: ConnectionStatus) -> Verdict {
        let mut problems = common(c, true);
        let statuses: Vec<&AirbyteConnectionStatus> = c
            .messages
            .iter()
            .filter_map(|m| match m {
                AirbyteMessage::ConnectionStatus { connection_status } => Some(connection_status),
                _ => None,
            })
            .collect();
        match statuses.as_slice() {
            [s] if s.status == expected => {}
            [s] => problems.push(format!(
                "expected {expected:?}, got {:?}: {:?}",
                s.status, s.message
            )),
            other => problems.push(format!(
                "expected one CONNECTION_STATUS, got {}",
                other.len()
            )),
        }
        Verdict::from_problems(problems)
    }

    /// Exactly one CATALOG of object schemas with sync modes, and keys that exist.
    pub fn discover(c: &Captured) -> Verdict {
        let mut problems = common(c, true);
        let catalogs: Vec<&AirbyteCatalog> = c
            .messages
            .iter()
            .filter_map(|m| match m {
                AirbyteMessage::Catalog { catalog } => Some(catalog),
                _ => None,
            })
            .collect();
        let [catalog] = catalogs.as_slice() else {
            problems.push(format!(
                "expected exactly one CATALOG, got {}",
                catalogs.len()
            ));
            return Verdict::from_problems(problems);
        };
        if catalog.streams.is_empty() {
            problems.push("the catalog has no streams".into());
        }
        for s in &catalog.streams {
            let name = s.descriptor();
            if s.json_schema.get("type").and_then(Value::as_str) != Some("object") {
                problems.push(format!(
                    "stream '{name}': json_schema is not `type: object`"
                ));
            }
            if s.supported_sync_modes.is_empty() {
                problems.push(format!("stream '{name}': no supported_sync_modes"));
            }
            if s.json_schema.to_string().contains("\"$ref\"") {
                problems.push(format!("stream '{name}': unresolved $ref in json_schema"));
            }
            let keys = s
                .source_defined_primary_key
                .iter()
                .flatten()
                .chain(s.default_cursor_field.iter());
            for path in keys {
                if !schema_has_path(&s.json_schema, path) {
                    problems.push(format!(
                        "stream '{name}': key {path:?} is not in the schema"
                    ));
                }
            }
        }
        Verdict::from_problems(problems)
    }

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
            match super::super::record_validator(schema) {
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
                problems.push(format!("stream '{stream}': the second read lacks records of the first, e.g. {missing:?}"));
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
                    problems.push(format!("stream '{stream}': the second read returned cursor {v} below the state's {max}"));
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
                    problems.push(format!("stream '{stream}': resumed read went back to cursor {v} (state was at {max})"));
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

    /// The read failed the protocol's way: a TRACE ERROR and a non-zero exit, no crash.
    pub fn fails_with_trace(c: &Captured) -> Verdict {
        let mut problems = common(c, false);
        if c.exit_code == Some(0) {
            problems.push("exit code 0".into());
        }
        if c.trace_errors().is_empty() {
            problems.push("no TRACE ERROR message".into());
        }
        Verdict::from_problems(problems)
    }

    /// Problems every run shares: non-protocol stdout lines, a crash, a failed exit.
    fn common(c: &Captured, expect_success: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if !c.bad_lines.is_empty() {
            problems.push(format!(
                "{} stdout lines are not protocol messages, e.g. {:?}",
                c.bad_lines.len(),
                c.bad_lines[0]
            ));
        }
        if let Some(schema) = crate::testing::protocol_schema()
            && let Some((line, e)) = c
                .stdout
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| schema.validate_message(&v).err().map(|e| (v, e)))
        {
            problems.push(format!(
                "a message does not match the protocol: {e}: {line}"
            ));
        }
        match c.exit_code {
            None => problems.push("the connector was killed by a signal (crash)".into()),
            Some(101) => problems.push("the connector panicked (exit code 101)".into()),
            Some(code) if expect_success && code != 0 => problems.push(format!("exit code {code}")),
            _ => {}
        }
        if expect_success && let Some(e) = c.trace_errors().first() {
            problems.push(format!("TRACE ERROR: {}", e.message));
        }
        problems
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
            problems.push(format!("stream '{d}': statuses {kinds:?}, expected STARTED, RUNNING (with records), COMPLETE"));
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

    fn is_of(r: &AirbyteRecordMessage, d: &StreamDescriptor) -> bool {
        r.stream == d.name && r.namespace == d.namespace
    }

    fn record_bag(c: &Captured) -> BTreeMap<String, Vec<String>> {
        let mut bag: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in c.records() {
            let d = StreamDescriptor::new(r.stream.clone(), r.namespace.clone());
            bag.entry(d.to_string())
                .or_default()
                .push(canonical(&r.data));
        }
        bag
    }

    /// JSON text with sorted keys, for comparing records.
    fn canonical(v: &Value) -> String {
        // serde_json's Map is ordered by key unless `preserve_order` is on; sort to be sure.
        fn sort(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    let sorted: BTreeMap<&String, Value> =
                        m.iter().map(|(k, v)| (k, sort(v))).collect();
                    serde_json::to_value(sorted).unwrap_or(Value::Null)
                }
                Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
                other => other.clone(),
            }
        }
        sort(v).to_string()
    }

    fn max_cursor<'a>(
        records: impl Iterator<Item = &'a AirbyteRecordMessage>,
        cursor: &[String],
    ) -> Option<Value> {
        records
            .filter_map(|r| value_at(&r.data, cursor).filter(|v| !v.is_null()).cloned())
            .reduce(|a, b| {
                if cmp_json(&b, &a) == Some(std::cmp::Ordering::Greater) {
                    b
                } else {
                    a
                }
            })
    }

    /// Orders numbers numerically and strings lexically (RFC 3339 timestamps sort so).
    fn cmp_json(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        }
    }

    pub(super) fn value_at<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
        path.iter().try_fold(data, |v, key| v.get(key))
    }

    fn schema_has_path(schema: &Value, path: &[String]) -> bool {
        path.iter()
            .try_fold(schema, |s, key| s.get("properties")?.get(key))
            .is_some()
    }
}
