//! The README's first command: `cdk sync examples/connections/customers-to-parquet.yaml`
//! (run on a copy, so the repository stays clean) syncs the bundled customers into Parquet
//! files, and a second job syncs nothing new.

use std::path::Path;

use crate::common::{cdk_sync, files_ending, jobs};

#[tokio::test(flavor = "multi_thread")]
async fn bundled_connection_syncs_once_then_nothing_new() {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/connections");
    let work = tempfile::tempdir().unwrap();
    for name in ["customers-to-parquet.yaml", "customers.csv"] {
        std::fs::copy(bundled.join(name), work.path().join(name)).unwrap();
    }
    let file = work.path().join("customers-to-parquet.yaml");
    for _ in 0..2 {
        let out = cdk_sync(&[file.as_os_str()], &[]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all = jobs(&work.path().join(".cdk/customers-to-parquet"));
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["status"], "succeeded");
    assert_eq!(all[0]["recordsSynced"], 8, "{}", all[0]);
    assert_eq!(all[1]["recordsSynced"], 0, "{}", all[1]);
    let files = files_ending(
        &work.path().join("output/lake/bronze/customers"),
        ".parquet",
    );
    assert_eq!(files.len(), 1, "{files:?}");
}
