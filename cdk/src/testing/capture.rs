//! Running a connector binary the way the platform does (files for config, catalog and state,
//! messages on stdin) and looking at what it said. Every assertion helper prints the command,
//! exit status, stdout and stderr when it fails.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::protocol::*;

/// A connector invocation being prepared.
pub struct Run {
    bin: PathBuf,
    dir: tempfile::TempDir,
    files: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    extra_args: Vec<String>,
}

impl Run {
    /// `bin` is the connector executable (`env!("CARGO_BIN_EXE_source-x")` in tests).
    pub fn new(bin: impl AsRef<Path>) -> Self {
        Self {
            bin: bin.as_ref().to_path_buf(),
            dir: tempfile::tempdir().expect("cannot create a temp dir"),
            files: Vec::new(),
            stdin: None,
            env: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// Writes `content` to a file of the run's temp dir.
    fn file(&mut self, name: &str, content: String) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, &content).expect("cannot write a fixture file");
        self.files.push((name.to_string(), content));
        path
    }

    /// An environment variable for the command.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Extra arguments appended to the command (e.g. `--manifest-path m.yaml`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Messages (or any lines) fed on stdin, one per line.
    pub fn stdin_lines<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line.as_ref().as_bytes());
            bytes.push(b'\n');
        }
        self.stdin = Some(bytes);
        self
    }

    /// Raw bytes fed on stdin.
    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Runs `spec`.
    pub fn spec(self) -> Captured {
        self.run(vec!["spec".into()])
    }

    /// `check --config` with `config` (any JSON; written verbatim when a string).
    pub fn check(mut self, config: &Value) -> Captured {
        let c = self.config_file(config);
        self.run(vec!["check".into(), "--config".into(), c])
    }

    /// `discover --config` with `config`.
    pub fn discover(mut self, config: &Value) -> Captured {
        let c = self.config_file(config);
        self.run(vec!["discover".into(), "--config".into(), c])
    }

    /// `read --config --catalog [--state]`.
    pub fn read(mut self, config: &Value, catalog: &Value, state: Option<&Value>) -> Captured {
        let mut args = vec!["read".into(), "--config".into(), self.config_file(config)];
        args.push("--catalog".into());
        args.push(
            self.file("catalog.json", catalog.to_string())
                .display()
                .to_string(),
        );
        if let Some(state) = state {
            args.push("--state".into());
            args.push(
                self.file("state.json", state.to_string())
                    .display()
                    .to_string(),
            );
        }
        self.run(args)
    }

    /// `write --config --catalog` with the stdin given before.
    pub fn write(mut self, config: &Value, catalog: &Value) -> Captured {
        let mut args = vec!["write".into(), "--config".into(), self.config_file(config)];
        args.push("--catalog".into());
        args.push(
            self.file("catalog.json", catalog.to_string())
                .display()
                .to_string(),
        );
        self.run(args)
    }

    /// A JSON string value is written as raw text, so tests can pass malformed configs.
    fn config_file(&mut self, config: &Value) -> String {
        let text = match config {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        self.file("config.json", text).display().to_string()
    }

    fn run(mut self, mut args: Vec<String>) -> Captured {
        args.append(&mut self.extra_args);
        let mut cmd = Command::new(&self.bin);
        cmd.args(&args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let command = format!("{} {}", self.bin.display(), args.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        let writer = self.stdin.take().map(|bytes| {
            let mut stdin = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            })
        });
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{command} failed: {e}"));
        if let Some(w) = writer {
            let _ = w.join();
        }
        Captured::new(
            command,
            out.status.code(),
            out.stdout,
            out.stderr,
            self.files,
        )
    }
}

/// What a connector run printed, parsed.
#[derive(Debug)]
pub struct Captured {
    /// The command line, for failure reports.
    pub command: String,
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
    /// Every stdout line that parsed as a message, in order.
    pub messages: Vec<AirbyteMessage>,
    /// Stdout lines that are not protocol messages (there should be none).
    pub bad_lines: Vec<String>,
    files: Vec<(String, String)>,
}

impl Captured {
    /// Parses what a run printed; `files` are the fixture files it was given (for reports).
    pub fn new(
        command: String,
        exit_code: Option<i32>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        files: Vec<(String, String)>,
    ) -> Self {
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let mut messages = Vec::new();
        let mut bad_lines = Vec::new();
        for line in stdout.lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) if map.contains_key("type") => {
                    match serde_json::from_value(Value::Object(map)) {
                        Ok(AirbyteMessage::Unknown) | Err(_) => bad_lines.push(line.to_string()),
                        Ok(m) => messages.push(m),
                    }
                }
                _ => bad_lines.push(line.to_string()),
            }
        }
        Self {
            command,
            exit_code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            messages,
            bad_lines,
            files,
        }
    }

    /// Everything needed to understand a failure.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "command: {}\nexit code: {:?}\n",
            self.command, self.exit_code
        );
        for (name, content) in &self.files {
            let shown: String = content.chars().take(2000).collect();
            s.push_str(&format!("--- {name}:\n{shown}\n"));
        }
        let tail = |t: &str| -> String {
            let lines: Vec<&str> = t.lines().collect();
            let skip = lines.len().saturating_sub(60);
            lines[skip..].join("\n")
        };
        s.push_str(&format!(
            "--- stdout (last 60 lines):\n{}\n",
            tail(&self.stdout)
        ));
        s.push_str(&format!(
            "--- stderr (last 60 lines):\n{}\n",
            tail(&self.stderr)
        ));
        s
    }

    /// Panics with [`Captured::describe`] unless `ok`.
    pub fn ensure(&self, ok: bool, what: &str) -> &Self {
        if !ok {
            panic!("{what}\n{}", self.describe());
        }
        self
    }

    /// Panics, showing the run, unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        self.ensure(self.exit_code == Some(0), "expected exit code 0")
    }

    /// Panics, showing the run, unless it exited non-zero.
    pub fn assert_failure(&self) -> &Self {
        self.ensure(self.exit_code != Some(0), "expected a non-zero exit code")
    }

    /// Every stdout line is a protocol message (and, when the protocol definition is
    /// available, validates against it).
    pub fn assert_protocol(&self) -> &Self {
        self.ensure(
            self.bad_lines.is_empty(),
            "stdout has lines that are not protocol messages",
        );
        if let Some(schema) = super::protocol_schema() {
            for line in self.stdout.lines() {
                let value: Value = serde_json::from_str(line).expect("checked above");
                if let Err(errors) = schema.validate_message(&value) {
                    panic!(
                        "message does not match the protocol: {errors}\n{line}\n{}",
                        self.describe()
                    );
                }
            }
        }
        self
    }

    /// The RECORD messages, in order.
    pub fn records(&self) -> impl Iterator<Item = &AirbyteRecordMessage> {
        self.messages.iter().filter_map(|m| match m {
            AirbyteMessage::Record { record } => Some(record),
            _ => None,
        })
    }

    /// Record data of one stream, in order.
    pub fn records_of(&self, stream: &str) -> Vec<&Value> {
        self.records()
            .filter(|r| r.stream == stream)
            .map(|r| &r.data)
            .collect()
    }

    /// Each stream's record data, by stream name.
    pub fn records_by_stream(&self) -> BTreeMap<String, Vec<&Value>> {
        let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for r in self.records() {
            map.entry(r.stream.clone()).or_default().push(&r.data);
        }
        map
    }

    /// The STATE messages, in order.
    pub fn states(&self) -> Vec<&AirbyteStateMessage> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                AirbyteMessage::State { state } => Some(state),
                _ => None,
            })
            .collect()
    }

    /// STATE messages of one stream (STREAM type only).
    pub fn states_of(&self, stream: &str) -> Vec<&AirbyteStateMessage> {
        self.states()
            .into_iter()
            .filter(|s| {
                s.stream
                    .as_ref()
                    .is_some_and(|s| s.stream_descriptor.name == stream)
            })
            .collect()
    }

    /// The last state of each stream, as a `--state` file would hold them.
    pub fn final_state(&self) -> Value {
        let mut last: BTreeMap<String, &AirbyteStateMessage> = BTreeMap::new();
        let mut global = None;
        for s in self.states() {
            match (&s.stream, &s.global) {
                (Some(st), _) => {
                    last.insert(st.stream_descriptor.to_string(), s);
                }
                (None, Some(_)) => global = Some(s),
                _ => {}
            }
        }
        let mut out: Vec<Value> = Vec::new();
        for s in last.values().copied().chain(global) {
            let mut s = s.clone();
            s.source_stats = None;
            s.destination_stats = None;
            out.push(serde_json::to_value(s).expect("states serialise"));
        }
        Value::Array(out)
    }

    /// The TRACE messages, in order.
    pub fn traces(&self) -> impl Iterator<Item = &AirbyteTraceMessage> {
        self.messages.iter().filter_map(|m| match m {
            AirbyteMessage::Trace { trace } => Some(trace),
            _ => None,
        })
    }

    /// The TRACE ERROR messages.
    pub fn trace_errors(&self) -> Vec<&AirbyteErrorTraceMessage> {
        self.traces()
            .filter_map(|t| match &t.payload {
                TracePayload::Error { error } => Some(error),
                _ => None,
            })
            .collect()
    }

    /// Stream statuses of one stream, in order.
    pub fn statuses_of(&self, stream: &str) -> Vec<AirbyteStreamStatus> {
        self.traces()
            .filter_map(|t| match &t.payload {
                TracePayload::StreamStatus { stream_status }
                    if stream_status.stream_descriptor.name == stream =>
                {
                    Some(stream_status.status)
                }
                _ => None,
            })
            .collect()
    }

    /// The LOG messages.
    pub fn logs(&self) -> Vec<&AirbyteLogMessage> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                AirbyteMessage::Log { log } => Some(log),
                _ => None,
            })
            .collect()
    }

    /// The first message `pick` takes; panics, showing the run, when there is no `kind` message.
    fn first_of<'a, T>(
        &'a self,
        kind: &str,
        pick: impl FnMut(&'a AirbyteMessage) -> Option<&'a T>,
    ) -> &'a T {
        self.messages
            .iter()
            .find_map(pick)
            .unwrap_or_else(|| panic!("no {kind} message\n{}", self.describe()))
    }

    /// The SPEC message; panics, showing the run, when there is none.
    pub fn spec(&self) -> &ConnectorSpecification {
        self.first_of("SPEC", |m| match m {
            AirbyteMessage::Spec { spec } => Some(spec),
            _ => None,
        })
    }

    /// The CATALOG message; panics, showing the run, when there is none.
    pub fn catalog(&self) -> &AirbyteCatalog {
        self.first_of("CATALOG", |m| match m {
            AirbyteMessage::Catalog { catalog } => Some(catalog),
            _ => None,
        })
    }

    /// The CONNECTION_STATUS message; panics, showing the run, when there is none.
    pub fn connection_status(&self) -> &AirbyteConnectionStatus {
        self.first_of("CONNECTION_STATUS", |m| match m {
            AirbyteMessage::ConnectionStatus { connection_status } => Some(connection_status),
            _ => None,
        })
    }
}
