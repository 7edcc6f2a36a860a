//! Stopping a destination on SIGTERM or SIGINT between commits, never inside one: the commit
//! in progress finishes and is acknowledged, and what came after it is rolled back. A kill
//! could land between a commit and its acknowledgement, leaving records durable that the
//! platform will send again.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::Error;

/// The signals that ask a destination to stop.
pub struct StopSignals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl StopSignals {
    /// Listens from now on (a signal that cannot be listened to keeps its default action).
    pub fn listen() -> Self {
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves when a stop signal arrives, with the error the load ends with.
    pub async fn recv(&mut self) -> Error {
        let name = tokio::select! {
            Some(()) = recv(&mut self.term) => "SIGTERM",
            Some(()) = recv(&mut self.int) => "SIGINT",
            else => return std::future::pending().await,
        };
        Error::transient(format!(
            "stopped by {name}: what was acknowledged is kept, the rest rolled back"
        ))
    }
}

async fn recv(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
