//! The one place messages leave the process: one JSON object per line on stdout, buffered,
//! flushed at every STATE and at exit. Human-readable text in LOG, TRACE and CONNECTION_STATUS
//! messages is masked for secrets here, so no caller can forget to.

use std::io::{BufWriter, ErrorKind, Write};
use std::sync::{Arc, Mutex, OnceLock};

use crate::protocol::*;
use crate::secrets::mask_in_place;

/// A cheap, cloneable handle to the message writer. Concurrent writers hand over whole lines,
/// so lines never interleave.
#[derive(Clone)]
pub struct Output {
    inner: Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
}

static GLOBAL: OnceLock<Output> = OnceLock::new();

/// The process-wide output (stdout unless [`Output::install`] chose another writer first).
pub fn global() -> &'static Output {
    GLOBAL.get_or_init(Output::stdout)
}

impl Output {
    /// Output to the process's stdout.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    /// Output to `writer` (buffered), e.g. a `Vec` in tests.
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self {
            inner: Arc::new(Mutex::new(BufWriter::with_capacity(
                256 << 10,
                Box::new(writer),
            ))),
        }
    }

    /// Makes this the process-wide output used by logging and panic reports.
    pub fn install(self) -> &'static Output {
        let _ = GLOBAL.set(self);
        global()
    }

    /// Writes one message as a line; masks its human-readable text; flushes after a STATE.
    pub fn send(&self, mut message: AirbyteMessage) {
        mask_message(&mut message);
        let flush = matches!(message, AirbyteMessage::State { .. });
        let mut line = serde_json::to_vec(&message).unwrap_or_default();
        line.push(b'\n');
        self.write_lines(&line);
        if flush {
            self.flush();
        }
    }

    /// Writes bytes that are already complete message lines (the fast path for records).
    pub fn write_lines(&self, lines: &[u8]) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write_all(lines) {
            handle_write_error(e);
        }
    }

    /// Hands buffered lines to the writer.
    pub fn flush(&self) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.flush() {
            handle_write_error(e);
        }
    }

    /// A LOG message.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.send(AirbyteMessage::Log {
            log: AirbyteLogMessage {
                level,
                message: message.into(),
                stack_trace: None,
            },
        });
    }

    /// A TRACE message with `payload`, stamped now.
    pub fn trace(&self, payload: TracePayload) {
        self.send(AirbyteMessage::Trace {
            trace: AirbyteTraceMessage {
                emitted_at: now_millis() as f64,
                payload,
            },
        });
    }

    /// A TRACE ERROR for `error`, with its failure type and stream.
    pub fn error(&self, error: &crate::Error) {
        self.trace(TracePayload::Error {
            error: AirbyteErrorTraceMessage {
                message: error.message.clone(),
                internal_message: error.internal.clone(),
                stack_trace: None,
                failure_type: Some(error.failure_type),
                stream_descriptor: error.stream.clone(),
            },
        });
    }

    /// A STREAM_STATUS trace for `stream`.
    pub fn stream_status(&self, stream: &StreamDescriptor, status: AirbyteStreamStatus) {
        self.trace(stream_status_payload(stream, status, Vec::new()));
    }

    /// A CONNECTION_STATUS message (the answer to `check`).
    pub fn connection_status(&self, status: ConnectionStatus, message: Option<String>) {
        self.send(AirbyteMessage::ConnectionStatus {
            connection_status: AirbyteConnectionStatus { status, message },
        });
    }

    /// A CONTROL message asking the platform to persist an updated config. Not masked: the
    /// new secret must reach the platform.
    pub fn config_update(&self, config: serde_json::Map<String, serde_json::Value>) {
        let line = AirbyteMessage::Control {
            control: AirbyteControlMessage {
                control_type: ControlType::ConnectorConfig,
                emitted_at: now_millis() as f64,
                connector_config: Some(AirbyteControlConnectorConfigMessage { config }),
            },
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        self.write_lines(&bytes);
        self.flush();
    }
}

pub(crate) fn stream_status_payload(
    stream: &StreamDescriptor,
    status: AirbyteStreamStatus,
    reasons: Vec<AirbyteStreamStatusReason>,
) -> TracePayload {
    TracePayload::StreamStatus {
        stream_status: AirbyteStreamStatusTraceMessage {
            stream_descriptor: stream.clone(),
            status,
            reasons,
        },
    }
}

/// The reader of stdout went away: nothing more can be said, so end quietly.
fn handle_write_error(e: std::io::Error) {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    // Anything else (a full disk behind a redirect) is a real failure; stdout is unusable,
    // so stderr is the only place left to say so.
    eprintln!("cannot write to stdout: {e}");
    std::process::exit(1);
}

fn mask_message(message: &mut AirbyteMessage) {
    match message {
        AirbyteMessage::Log { log } => {
            mask_in_place(&mut log.message);
            log.stack_trace.as_mut().map(mask_in_place);
        }
        AirbyteMessage::Trace { trace } => {
            if let TracePayload::Error { error } = &mut trace.payload {
                mask_in_place(&mut error.message);
                error.internal_message.as_mut().map(mask_in_place);
                error.stack_trace.as_mut().map(mask_in_place);
            }
        }
        AirbyteMessage::ConnectionStatus { connection_status } => {
            connection_status.message.as_mut().map(mask_in_place);
        }
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuf {
        pub fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("every line is JSON"))
                .collect()
        }
    }

    #[test]
    fn masks_text_and_flushes_on_state() {
        crate::secrets::register("p4ssw0rd-xyz");
        let buf = SharedBuf::default();
        let out = Output::new(buf.clone());
        out.log(LogLevel::Info, "connecting with p4ssw0rd-xyz");
        out.connection_status(ConnectionStatus::Failed, Some("bad p4ssw0rd-xyz".into()));
        out.flush();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("p4ssw0rd-xyz"), "{text}");
        assert_eq!(buf.lines().len(), 2);
        assert_eq!(buf.lines()[1]["connectionStatus"]["message"], "bad ****");
    }
}
