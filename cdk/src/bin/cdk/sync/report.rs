//! What a run shows on stderr: per-stream progress (an indicatif bar per stream on a terminal,
//! plain lines every few seconds otherwise) and the connectors' logs (WARN and ERROR; INFO
//! with `-v`, DEBUG with `-vv`), with server NOTICEs demoted to DEBUG and source-file paths of
//! the machine that built the connector left out.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cdk::protocol::{AirbyteLogMessage, LogLevel};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Reporter {
    verbosity: u8,
    names: Vec<String>,
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    plain: Mutex<Plain>,
    started: Instant,
}

struct Plain {
    last: Instant,
    counts: Vec<(u64, u64)>,
}

impl Reporter {
    /// A reporter for the run's streams (as the source names them).
    pub fn new(names: Vec<String>, verbosity: u8) -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template(
                "{prefix:>24} {bar:30} {human_pos} records ({per_sec}) {msg} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bars = names
                .iter()
                .map(|n| {
                    let bar = multi.add(ProgressBar::no_length().with_style(style.clone()));
                    bar.set_prefix(n.clone());
                    bar
                })
                .collect();
            (multi, bars)
        });
        let counts = vec![(0, 0); names.len()];
        Self {
            verbosity,
            names,
            bars,
            plain: Mutex::new(Plain {
                last: Instant::now(),
                counts,
            }),
            started: Instant::now(),
        }
    }

    /// The records and bytes read so far from stream `idx`.
    pub fn progress(&self, idx: usize, records: u64, bytes: u64) {
        if let Some((_, bars)) = &self.bars {
            if let Some(bar) = bars.get(idx) {
                bar.set_position(records);
                bar.set_message(HumanBytes(bytes).to_string());
            }
            return;
        }
        let Ok(mut plain) = self.plain.lock() else {
            return;
        };
        if let Some(c) = plain.counts.get_mut(idx) {
            *c = (records, bytes);
        }
        if plain.last.elapsed() >= PLAIN_EVERY {
            plain.last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let parts: Vec<String> = self
                .names
                .iter()
                .zip(&plain.counts)
                .filter(|(_, (r, _))| *r > 0)
                .map(|(n, (r, b))| format!("{n}: {r} records, {}", HumanBytes(*b)))
                .collect();
            let total: u64 = plain.counts.iter().map(|c| c.0).sum();
            eprintln!(
                "… {total} records read ({:.0}/s); {}",
                total as f64 / secs,
                parts.join("; ")
            );
        }
    }

    /// The source's estimate of a stream's size.
    pub fn estimate(&self, idx: usize, rows: u64) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.get(idx)
        {
            bar.set_length(rows);
        }
    }

    /// A stream is done: its bar stops.
    pub fn finish(&self, idx: usize) {
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.get(idx)
        {
            bar.finish();
        }
    }

    /// Prints a line above the bars.
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// A connector's LOG message, if its level is shown.
    pub fn log(&self, who: &str, log: &AirbyteLogMessage) {
        let (level, message) = classify(log);
        let shown = match level {
            LogLevel::Fatal | LogLevel::Error | LogLevel::Warn => true,
            LogLevel::Info => self.verbosity >= 1,
            LogLevel::Debug | LogLevel::Trace => self.verbosity >= 2,
        };
        if shown {
            self.line(&format!("{who}: {} {message}", level_name(level)));
        }
    }

    /// Stops drawing the bars.
    pub fn clear(&self) {
        if let Some((multi, bars)) = &self.bars {
            bars.iter().for_each(ProgressBar::finish);
            let _ = multi.clear();
        }
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Fatal => "FATAL",
        LogLevel::Error => "ERROR",
        LogLevel::Warn => "WARN",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBUG",
        LogLevel::Trace => "TRACE",
    }
}

/// The level a message is shown at and its text: a database server's NOTICE is DEBUG whatever
/// level the connector gave it, and source paths (`/…/src/x.rs:12`) are left out.
fn classify(log: &AirbyteLogMessage) -> (LogLevel, String) {
    let message: Vec<&str> = log
        .message
        .split(' ')
        .filter(|word| !is_source_path(word))
        .collect();
    let message = message.join(" ");
    let notice = [
        "NOTICE:",
        "NOTICE ",
        "notice:",
        "DbError { severity: \"NOTICE\"",
    ]
    .iter()
    .any(|m| message.contains(m));
    let level = if notice { LogLevel::Debug } else { log.level };
    (level, message.trim().to_string())
}

/// `/home/x/.cargo/registry/src/…/connection.rs:123` and the like.
fn is_source_path(word: &str) -> bool {
    let word = word.trim_matches(|c: char| c == '(' || c == ')' || c == ',');
    let Some(at) = word.find(".rs") else {
        return false;
    };
    let rest = &word[at + 3..];
    word.contains('/') && rest.chars().all(|c| c.is_ascii_digit() || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_become_debug_without_paths() {
        let log = AirbyteLogMessage {
            level: LogLevel::Info,
            message: "NOTICE: relation \"x\" already exists, skipping /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-postgres-0.7.18/src/connection.rs:335"
                .into(),
            stack_trace: None,
        };
        let (level, message) = classify(&log);
        assert_eq!(level, LogLevel::Debug);
        assert_eq!(message, "NOTICE: relation \"x\" already exists, skipping");
    }

    #[test]
    fn ordinary_lines_keep_their_level() {
        let log = AirbyteLogMessage {
            level: LogLevel::Warn,
            message: "slow query on sales.rs_table".into(),
            stack_trace: None,
        };
        assert_eq!(classify(&log).0, LogLevel::Warn);
        assert_eq!(classify(&log).1, "slow query on sales.rs_table");
    }
}
