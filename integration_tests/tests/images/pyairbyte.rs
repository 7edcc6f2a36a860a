//! PyAirbyte runs our source-postgres image as it runs Airbyte's (`get_source(name,
//! docker_image=…, use_host_network=True)`, every stream incremental with its default cursor)
//! and reads every row of a plain table (no cursor: read in full).
//!
//! PyAirbyte is pip-installed into a virtualenv kept at `$HOME/.cache/cdk-pyairbyte-venv`
//! (made on first use; `CDK_PYAIRBYTE_VENV` points elsewhere).

use std::path::PathBuf;
use std::process::Command;

use cdk::testing::postgres::TestPostgres;
use serde_json::json;

use super::image;

const SCRIPT: &str = r#"
import json, sys
import airbyte as ab
config = json.load(open(sys.argv[1]))
source = ab.get_source("source-postgres", config=config, docker_image=sys.argv[2],
                       use_host_network=True)
source.check()
source.select_streams(["plain_items"])
cache = ab.new_local_cache(cache_name="cdk_images_test", cache_dir=sys.argv[3])
result = source.read(cache=cache)
rows = sorted(int(r["id"]) for r in result["plain_items"])
print(json.dumps({"count": len(rows), "first": rows[0], "last": rows[-1]}))
"#;

/// The virtualenv's python with `airbyte` importable, made when missing.
fn python() -> PathBuf {
    let venv = std::env::var_os("CDK_PYAIRBYTE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/cdk-pyairbyte-venv")
        });
    let python = venv.join("bin/python");
    let importable = |p: &PathBuf| {
        Command::new(p)
            .args(["-c", "import airbyte"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if importable(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is needed to make the PyAirbyte virtualenv");
    assert!(made.success(), "python3 -m venv {} failed", venv.display());
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "airbyte"])
        .status()
        .expect("cannot run pip");
    assert!(installed.success(), "pip install airbyte failed");
    assert!(
        importable(&python),
        "airbyte is not importable after pip install"
    );
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn pyairbyte_reads_every_row_through_the_image() {
    let db = TestPostgres::shared().fresh_database("pyairbyte").await;
    db.execute(
        "create table plain_items (id int primary key, name text);
         insert into plain_items select g, 'item ' || g from generate_series(1, 2000) g;",
    )
    .await;
    let tag = image("connectors/source-postgres");
    let python = python();
    let work = tempfile::tempdir().unwrap();
    let mut config = db.connector_config();
    config["schemas"] = json!(["public"]);
    config["ssl_mode"] = json!({"mode": "disable"});
    let config_path = work.path().join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let script = work.path().join("read.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(&config_path)
        .arg(&tag)
        .arg(work.path().join("cache"))
        .current_dir(work.path())
        .env("DO_NOT_TRACK", "1")
        .env("AIRBYTE_NO_UI", "1")
        .env("AIRBYTE_OFFLINE_MODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "PyAirbyte failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(last).unwrap_or_default(),
        json!({"count": 2000, "first": 1, "last": 2000}),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
