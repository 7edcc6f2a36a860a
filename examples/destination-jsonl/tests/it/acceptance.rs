//! The shared destination checks, and proof that they catch a broken destination.

use std::path::PathBuf;

use cdk::testing::acceptance::{DestinationReader, DestinationSuite, Verdict};
use serde_json::{Value, json};

use super::{BIN, stored};

struct Files(PathBuf);

#[cdk::async_trait]
impl DestinationReader for Files {
    async fn read(&self, stream: &str) -> Result<Vec<Value>, String> {
        stored(&self.0, stream)
    }
}

fn suite(dir: &std::path::Path) -> DestinationSuite {
    DestinationSuite {
        bin: BIN.into(),
        config: json!({"destination_path": dir}),
        supports_dedup: false,
        ..DestinationSuite::default()
    }
}

#[tokio::test]
async fn passes_the_destination_suite() {
    let dir = tempfile::tempdir().unwrap();
    let report = suite(dir.path()).run(&Files(dir.path().into())).await;
    println!("{}", report.table());
    report.assert_all_passed();
    assert_eq!(
        report.verdict("destination: state acknowledged after its records"),
        Some(&Verdict::Pass)
    );
}

/// A view of the destination that sees nothing until the end (as if states were echoed
/// before records were written) and one that sees every row twice (a failed dedup).
struct Broken {
    dir: PathBuf,
    duplicate: bool,
}

#[cdk::async_trait]
impl DestinationReader for Broken {
    async fn read(&self, stream: &str) -> Result<Vec<Value>, String> {
        let rows = stored(&self.dir, stream)?;
        if self.duplicate {
            return Ok(rows.iter().chain(&rows).cloned().collect());
        }
        Ok(if stream.ends_with("durable") {
            Vec::new()
        } else {
            rows
        })
    }
}

#[tokio::test]
async fn the_suite_catches_broken_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let early = Broken {
        dir: dir.path().into(),
        duplicate: false,
    };
    let report = suite(dir.path()).run(&early).await;
    let verdict = report
        .verdict("destination: state acknowledged after its records")
        .unwrap();
    assert!(
        matches!(verdict, Verdict::Fail(r) if r.contains("echoed before its records")),
        "{verdict:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let twice = Broken {
        dir: dir.path().into(),
        duplicate: true,
    };
    let report = suite(dir.path()).run(&twice).await;
    assert!(
        report
            .verdict("destination: append keeps both syncs")
            .unwrap()
            .is_fail()
    );
    assert!(
        report
            .verdict("destination: overwrite twice keeps only the second sync")
            .unwrap()
            .is_fail()
    );
}
