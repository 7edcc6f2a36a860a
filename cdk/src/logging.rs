//! `tracing` events become LOG messages on stdout (masked for secrets by [`crate::output`]).

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::output;
use crate::protocol::LogLevel;

/// Installs the LOG-message subscriber. `debug` (the `--debug` flag, or `LOG_LEVEL=debug`)
/// lowers the level to DEBUG; `RUST_LOG` overrides both. Safe to call more than once.
pub fn init(debug: bool) {
    let debug = debug || std::env::var("LOG_LEVEL").is_ok_and(|l| l.eq_ignore_ascii_case("debug"));
    let default = if debug {
        // The HTTP and TLS stacks are very chatty at debug level.
        "debug,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info,tokio_postgres=info"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(AirbyteLogLayer)
        .try_init();
}

/// Formats each event as `message key=value …` and sends it as a LOG message.
struct AirbyteLogLayer;

impl<S: Subscriber> Layer<S> for AirbyteLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        };
        output::global().log(level, visitor.line);
    }
}

#[derive(Default)]
struct LineVisitor {
    line: String,
}

impl LineVisitor {
    fn push(&mut self, field: &Field, value: &dyn std::fmt::Display) {
        // Events bridged from the `log` crate carry its metadata (`log.target`, `log.file`, …):
        // build-machine paths that mean nothing to a user.
        if field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.line);
            let _ = write!(self.line, "{value}");
            if !rest.is_empty() {
                self.line.push(' ');
                self.line.push_str(&rest);
            }
        } else {
            if !self.line.is_empty() {
                self.line.push(' ');
            }
            let _ = write!(self.line, "{}={value}", field.name());
        }
    }
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, &format_args!("{value:?}"));
    }
}
