//! Destination checks: states echoed once, in order, with counts; a state acknowledged only
//! after its records are readable; overwrite, append and append_dedup semantics, verified
//! through a connector-provided [`DestinationReader`].

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{Report, Verdict};
use crate::protocol::*;
use crate::testing::capture::{Captured, Run};

/// Reads back what a destination wrote.
#[async_trait]
pub trait DestinationReader: Send + Sync {
    /// The rows now stored for `stream` (in the config's default namespace), as JSON objects of
    /// the record's fields; `_airbyte_*` columns may be present and are ignored.
    async fn read(&self, stream: &str) -> Result<Vec<Value>, String>;
}

/// A destination binary and a config pointing at a test server or directory.
#[derive(Debug, Clone, Default)]
pub struct DestinationSuite {
    /// The destination's binary.
    pub bin: PathBuf,
    /// A config pointing at the test server or directory.
    pub config: Value,
    /// Whether `append_dedup` is supported (and so checked).
    pub supports_dedup: bool,
    /// Environment variables for every command.
    pub env: Vec<(String, String)>,
    /// Prefix of the stream names the suite writes (`acceptance` by default).
    pub stream_prefix: Option<String>,
}

/// One generated row: `(id, name, seq)`.
type Row = (i64, &'static str, i64);

impl DestinationSuite {
    fn stream(&self, name: &str) -> String {
        format!(
            "{}_{name}",
            self.stream_prefix.as_deref().unwrap_or("acceptance")
        )
    }

    fn write(&self, catalog: &Value, lines: &[String]) -> Captured {
        let mut run = Run::new(&self.bin);
        for (k, v) in &self.env {
            run = run.env(k, v);
        }
        run.stdin_lines(lines).write(&self.config, catalog)
    }

    /// Runs every check; `reader` looks at what landed.
    pub async fn run(&self, reader: &dyn DestinationReader) -> Report {
        let mut report = Report::default();
        self.state_echo(reader, &mut report).await;
        self.durable_before_ack(reader, &mut report).await;
        self.overwrite(reader, &mut report).await;
        self.append(reader, &mut report).await;
        if self.supports_dedup {
            self.dedup(reader, &mut report).await;
        } else {
            report.push(
                "append_dedup",
                Verdict::Skip("not supported by this destination".into()),
                None,
            );
        }
        report
    }

    async fn state_echo(&self, reader: &dyn DestinationReader, report: &mut Report) {
        let (a, b) = (self.stream("echo_a"), self.stream("echo_b"));
        let catalog = catalog(&[
            (&a, DestinationSyncMode::Append, 0, 0),
            (&b, DestinationSyncMode::Append, 0, 0),
        ]);
        let mut lines = Vec::new();
        let mut states = Vec::new();
        let mut id = 0;
        for round in 0..3 {
            for (stream, n) in [(&a, 2 + round), (&b, 1)] {
                for _ in 0..n {
                    id += 1;
                    lines.push(record(stream, (id, "echo", id)));
                }
                if round == 1 && stream == &b {
                    lines.push("this line is not a protocol message".into());
                    lines.push("{\"type\": \"RECORD\", \"record\": ".into());
                }
                let state = state(stream, json!({"round": round}));
                lines.push(state.clone());
                states.push((
                    serde_json::from_str::<Value>(&state).unwrap_or_default(),
                    n as f64,
                ));
            }
        }
        let out = self.write(&catalog, &lines);
        let mut verdict = checks::states_echoed(&out, &states);
        if !verdict.is_fail() {
            let expected_a: Vec<Row> = (1..=id)
                .filter(|i| !matches!(i, 3 | 7 | 12))
                .map(|i| (i, "echo", i))
                .collect();
            let expected_b: Vec<Row> = [3, 7, 12].into_iter().map(|i| (i, "echo", i)).collect();
            verdict = checks::rows_equal(reader.read(&a).await, &expected_a);
            if !verdict.is_fail() {
                verdict = checks::rows_equal(reader.read(&b).await, &expected_b);
            }
        }
        report.push(
            "destination: states echoed in order with counts",
            verdict,
            Some(out.describe()),
        );
    }

    async fn durable_before_ack(&self, reader: &dyn DestinationReader, report: &mut Report) {
        let name = self.stream("durable");
        let catalog = catalog(&[(&name, DestinationSyncMode::Append, 0, 0)]);
        let rows: Vec<Row> = (1..=50).map(|i| (i, "durable", i)).collect();
        let mut lines: Vec<String> = rows.iter().map(|r| record(&name, *r)).collect();
        lines.push(state(&name, json!({"seq": 50})));
        let verdict = match self.write_and_peek(&catalog, &lines, &name, reader).await {
            Ok(Some(landed)) => checks::rows_contain(landed, &rows),
            Ok(None) => {
                Verdict::Skip("the destination acknowledges states only at end of input".into())
            }
            Err(e) => Verdict::Fail(e),
        };
        report.push(
            "destination: state acknowledged after its records",
            verdict,
            None,
        );
    }

    /// Feeds `lines` without closing stdin; when a STATE comes back, reads the destination at
    /// that moment. `None` when no state was echoed before end of input.
    async fn write_and_peek(
        &self,
        catalog: &Value,
        lines: &[String],
        stream: &str,
        reader: &dyn DestinationReader,
    ) -> Result<Option<Result<Vec<Value>, String>>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (config_path, catalog_path) = (
            dir.path().join("config.json"),
            dir.path().join("catalog.json"),
        );
        std::fs::write(&config_path, self.config.to_string()).map_err(|e| e.to_string())?;
        std::fs::write(&catalog_path, catalog.to_string()).map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(&self.bin)
            .arg("write")
            .arg("--config")
            .arg(&config_path)
            .arg("--catalog")
            .arg(&catalog_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("CDK_COMMIT_INTERVAL_MS", "200")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut text = lines.join("\n");
        text.push('\n');
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stdin.flush().await.map_err(|e| e.to_string())?;
        let echoed = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if line.contains("\"type\":\"STATE\"") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        let landed = if echoed {
            Some(reader.read(stream).await)
        } else {
            None
        };
        drop(stdin);
        while let Ok(Some(_)) = stdout.next_line().await {}
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the destination exited with {status}"));
        }
        Ok(landed)
    }

    async fn overwrite(&self, reader: &dyn DestinationReader, report: &mut Report) {
        let name = self.stream("overwrite");
        let first: Vec<Row> = (1..=3).map(|i| (i, "first", i)).collect();
        let second: Vec<Row> = (4..=5).map(|i| (i, "second", i)).collect();
        let one = self.sync(&name, DestinationSyncMode::Overwrite, 1, 1, &first);
        let two = self.sync(&name, DestinationSyncMode::Overwrite, 2, 2, &second);
        let verdict = match both_ok(&one, &two) {
            Some(fail) => fail,
            None => checks::rows_equal(reader.read(&name).await, &second),
        };
        report.push(
            "destination: overwrite twice keeps only the second sync",
            verdict,
            Some(format!("{}\n{}", one.describe(), two.describe())),
        );
    }

    async fn append(&self, reader: &dyn DestinationReader, report: &mut Report) {
        let name = self.stream("append");
        let first: Vec<Row> = (1..=3).map(|i| (i, "first", i)).collect();
        let second: Vec<Row> = (4..=5).map(|i| (i, "second", i)).collect();
        let one = self.sync(&name, DestinationSyncMode::Append, 0, 1, &first);
        let two = self.sync(&name, DestinationSyncMode::Append, 0, 2, &second);
        let all: Vec<Row> = first.iter().chain(&second).copied().collect();
        let verdict = match both_ok(&one, &two) {
            Some(fail) => fail,
            None => checks::rows_equal(reader.read(&name).await, &all),
        };
        report.push(
            "destination: append keeps both syncs",
            verdict,
            Some(format!("{}\n{}", one.describe(), two.describe())),
        );
    }

    async fn dedup(&self, reader: &dyn DestinationReader, report: &mut Report) {
        let name = self.stream("dedup");
        let first: Vec<Row> = vec![(1, "a", 1), (2, "a", 1), (3, "a", 1)];
        let second: Vec<Row> = vec![(2, "b", 2), (3, "b", 2), (4, "b", 2), (2, "c", 3)];
        let one = self.sync(&name, DestinationSyncMode::AppendDedup, 0, 1, &first);
        let two = self.sync(&name, DestinationSyncMode::AppendDedup, 0, 2, &second);
        let latest: Vec<Row> = vec![(1, "a", 1), (2, "c", 3), (3, "b", 2), (4, "b", 2)];
        let verdict = match both_ok(&one, &two) {
            Some(fail) => fail,
            None => checks::rows_equal(reader.read(&name).await, &latest),
        };
        report.push(
            "destination: append_dedup keeps the latest row per key",
            verdict,
            Some(format!("{}\n{}", one.describe(), two.describe())),
        );
    }

    fn sync(
        &self,
        name: &str,
        mode: DestinationSyncMode,
        min_generation: i64,
        generation: i64,
        rows: &[Row],
    ) -> Captured {
        let catalog = catalog(&[(name, mode, min_generation, generation)]);
        let mut lines: Vec<String> = rows.iter().map(|r| record(name, *r)).collect();
        lines.push(state(name, json!({"seq": rows.last().map(|r| r.2)})));
        self.write(&catalog, &lines)
    }
}

fn both_ok(one: &Captured, two: &Captured) -> Option<Verdict> {
    [one, two]
        .into_iter()
        .find(|c| c.exit_code != Some(0))
        .map(|c| {
            let error = c
                .trace_errors()
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            Verdict::Fail(format!("a sync failed (exit {:?}): {error}", c.exit_code))
        })
}

fn catalog(streams: &[(&str, DestinationSyncMode, i64, i64)]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, mode, min_generation, generation)| {
            json!({
                "stream": {
                    "name": name,
                    "json_schema": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "name": {"type": "string"}, "seq": {"type": "integer"}}},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": if *mode == DestinationSyncMode::Overwrite { "full_refresh" } else { "incremental" },
                "destination_sync_mode": mode,
                "cursor_field": ["seq"],
                "primary_key": [["id"]],
                "generation_id": generation,
                "minimum_generation_id": min_generation,
                "sync_id": 100 + generation,
            })
        })
        .collect();
    json!({ "streams": streams })
}

fn record(stream: &str, (id, name, seq): Row) -> String {
    json!({"type": "RECORD", "record": {"stream": stream, "emitted_at": 1_700_000_000_000i64 + seq,
        "data": {"id": id, "name": name, "seq": seq}}})
    .to_string()
}

fn state(stream: &str, blob: Value) -> String {
    json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
        "stream_descriptor": {"name": stream}, "stream_state": blob}}})
    .to_string()
}

/// The destination checks over captured output and read-back rows.
pub mod checks {
    use super::*;

    /// Every input state echoed once, in order, each with the expected record count.
    pub fn states_echoed(c: &Captured, sent: &[(Value, f64)]) -> Verdict {
        let mut problems = Vec::new();
        if c.exit_code != Some(0) {
            problems.push(format!("exit code {:?}", c.exit_code));
        }
        if !c.bad_lines.is_empty() {
            problems.push(format!(
                "stdout lines that are not protocol messages: {:?}",
                c.bad_lines[0]
            ));
        }
        let echoed: Vec<&AirbyteStateMessage> = c.states();
        if echoed.len() != sent.len() {
            problems.push(format!(
                "{} states sent, {} echoed",
                sent.len(),
                echoed.len()
            ));
        }
        for (i, (state, (input, count))) in echoed.iter().zip(sent).enumerate() {
            let blob = serde_json::to_value(&state.stream).unwrap_or_default();
            if Some(&blob) != input.get("state").and_then(|s| s.get("stream")) {
                problems.push(format!("state #{i} echoed out of order or changed: {blob}"));
                break;
            }
            let got = state.destination_stats.and_then(|s| s.record_count);
            if got != Some(*count) {
                problems.push(format!(
                    "state #{i}: destinationStats.recordCount {got:?}, expected {count}"
                ));
            }
        }
        if !c.logs().iter().any(|l| {
            matches!(l.level, LogLevel::Warn | LogLevel::Error)
                && l.message.contains("not a protocol message")
        }) {
            problems.push("malformed input lines were not reported in a log message".into());
        }
        Verdict::from_problems(problems)
    }

    /// The stored rows are exactly `expected` (as a multiset; `_airbyte_*` ignored).
    pub fn rows_equal(got: Result<Vec<Value>, String>, expected: &[Row]) -> Verdict {
        match got {
            Err(e) => Verdict::Fail(format!("cannot read the destination: {e}")),
            Ok(rows) => {
                let got = normalise(&rows);
                let want = normalise_rows(expected);
                if got == want {
                    Verdict::Pass
                } else {
                    Verdict::Fail(format!("stored rows {got:?}, expected {want:?}"))
                }
            }
        }
    }

    /// Every row of `expected` is stored.
    pub fn rows_contain(got: Result<Vec<Value>, String>, expected: &[Row]) -> Verdict {
        match got {
            Err(e) => Verdict::Fail(format!("cannot read the destination: {e}")),
            Ok(rows) => {
                let got = normalise(&rows);
                let missing: Vec<_> = normalise_rows(expected)
                    .into_iter()
                    .filter(|r| !got.contains(r))
                    .collect();
                if missing.is_empty() {
                    Verdict::Pass
                } else {
                    Verdict::Fail(format!(
                        "a state was echoed before its records were stored: {} missing, e.g. {:?}",
                        missing.len(),
                        missing[0]
                    ))
                }
            }
        }
    }

    /// Rows as sorted `(id, name, seq)` texts, so `1` and `"1"` compare equal.
    fn normalise(rows: &[Value]) -> Vec<(String, String, String)> {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "<missing>".into(),
        };
        let mut out: Vec<_> = rows
            .iter()
            .map(|r| (text(r.get("id")), text(r.get("name")), text(r.get("seq"))))
            .collect();
        out.sort();
        out
    }

    fn normalise_rows(rows: &[Row]) -> Vec<(String, String, String)> {
        let values: Vec<Value> = rows
            .iter()
            .map(|(i, n, s)| json!({"id": i, "name": n, "seq": s}))
            .collect();
        normalise(&values)
    }
}
