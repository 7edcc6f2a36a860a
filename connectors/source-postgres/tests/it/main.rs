//! Integration tests of source-postgres, against a real throwaway PostgreSQL cluster.

mod acceptance;
mod cdc;
mod cdc_resume;
mod check;
mod golden;
mod hostile;
mod incremental;
mod resume;
mod spec;
mod tls;
mod tunnel;
mod xmin;

use cdk::protocol::{AirbyteCatalog, ConfiguredAirbyteStream, DestinationSyncMode, SyncMode};
use cdk::testing::Run;
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_source-postgres");

pub async fn database(prefix: &str) -> TestDatabase {
    TestPostgres::shared().fresh_database(prefix).await
}

/// The connector config for a test database, with extra fields merged in.
pub fn config(db: &TestDatabase, extra: Value) -> Value {
    let mut c = db.connector_config();
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

pub fn discover(config: &Value) -> AirbyteCatalog {
    let run = Run::new(BIN).discover(config);
    run.assert_success().assert_protocol();
    run.catalog().clone()
}

/// A configured catalog of the named streams: (name, sync mode, cursor).
pub fn configure(catalog: &AirbyteCatalog, streams: &[(&str, SyncMode, Option<&str>)]) -> Value {
    let configured: Vec<ConfiguredAirbyteStream> = streams
        .iter()
        .map(|(name, mode, cursor)| {
            let stream = catalog
                .streams
                .iter()
                .find(|s| s.name == *name)
                .unwrap_or_else(|| panic!("stream {name} not discovered"))
                .clone();
            let dest = match mode {
                SyncMode::FullRefresh => DestinationSyncMode::Overwrite,
                SyncMode::Incremental => DestinationSyncMode::Append,
            };
            let mut s = ConfiguredAirbyteStream::new(stream, *mode, dest);
            s.cursor_field = cursor.map(|c| vec![c.to_string()]);
            s
        })
        .collect();
    json!({ "streams": configured })
}

/// Starts `read` with its stdout piped (stderr dropped); the returned directory holds the
/// config, catalog and state files and must outlive the start.
pub fn spawn_read(
    cfg: &Value,
    catalog: &Value,
    state: Option<&Value>,
) -> (std::process::Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("read")
        .arg("--config")
        .arg(write("config.json", cfg))
        .arg("--catalog")
        .arg(write("catalog.json", catalog));
    if let Some(s) = state {
        cmd.arg("--state").arg(write("state.json", s));
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (child, dir)
}
