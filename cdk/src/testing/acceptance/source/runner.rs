//! Runs a [`SourceSuite`]: each command against the real binary, each output through its
//! check, every verdict into the [`Report`].

use std::collections::HashMap;

use serde_json::{Value, json};

use super::SourceSuite;
use super::checks;
use crate::protocol::*;
use crate::testing::acceptance::{Report, Verdict};
use crate::testing::capture::Run;

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
