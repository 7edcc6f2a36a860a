//! Integration tests of the kit: the read driver, the loader, and the acceptance checks
//! themselves (each shown to catch a broken output).

mod cli;
mod driver;
mod loader;
mod loader_threads;
mod new;
mod suite;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cdk::Output;
use cdk::protocol::AirbyteMessage;

/// An output tests can read back.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn output(&self) -> Output {
        Output::new(self.clone())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("output is UTF-8")
    }

    /// Every line parsed; panics on a line that is not a message.
    pub fn messages(&self) -> Vec<AirbyteMessage> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("corrupt line ({e}): {l}")))
            .collect()
    }
}
