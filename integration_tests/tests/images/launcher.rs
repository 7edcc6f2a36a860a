//! Images run the way Airbyte's Kubernetes launcher runs them: `sh -c 'eval
//! "$AIRBYTE_ENTRYPOINT <args>" > out 2> err'`, config files mounted read-only, stdin piped for
//! destinations, the host network to reach the test servers. Each run checks the container
//! wrote nothing outside /airbyte and /tmp.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use cdk::testing::postgres::TestPostgres;
use cdk::testing::s3::TestS3;
use serde_json::{Value, json};

use super::{bin, changed_paths, docker, docker_ok, engine_changes, image, root};

/// What one launcher-style run gave.
struct Launched {
    code: i32,
    out: String,
    err: String,
}

impl Launched {
    fn messages(&self) -> Vec<Value> {
        self.out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["type"] == kind)
            .collect()
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, 0, "--- out\n{}\n--- err\n{}", self.out, self.err);
    }
}

/// A file for /config holding `value` as JSON.
fn json_file(name: &str, value: &Value) -> (String, Vec<u8>) {
    (name.to_string(), serde_json::to_vec(value).unwrap())
}

/// Runs `image` as the launcher does with `args`, the `files` mounted read-only at /config.
fn launch(image: &str, args: &str, files: &[(String, Vec<u8>)], stdin: Option<&[u8]>) -> Launched {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let config_dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let path = config_dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // The connector runs as uid 1000: it must be able to read the mounted folder.
    std::fs::set_permissions(config_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = format!(
        "cdk-launch-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mount = format!("{}:/config:ro", config_dir.path().display());
    let script = format!(r#"eval "$AIRBYTE_ENTRYPOINT {args}" > /airbyte/out 2> /airbyte/err"#);
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--name", &name, "--network", "host", "-v", &mount]);
    if stdin.is_some() {
        cmd.arg("-i");
    }
    cmd.args(["--entrypoint", "sh", image, "-c", &script])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot run docker");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
    }
    let status = child.wait_with_output().unwrap();
    let copied = tempfile::tempdir().unwrap();
    let read_back = |file: &str| {
        let to = copied.path().join(file);
        docker_ok(&[
            "cp",
            &format!("{name}:/airbyte/{file}"),
            &to.display().to_string(),
        ]);
        std::fs::read_to_string(to).unwrap()
    };
    let launched = Launched {
        code: status.status.code().unwrap_or(-1),
        out: read_back("out"),
        err: read_back("err"),
    };
    let baseline = engine_changes(image);
    let outside: Vec<String> = changed_paths(&name)
        .into_iter()
        // The engine makes the mount point.
        .filter(|p| !baseline.contains(p) && p != "/config")
        .filter(|p| !(p.starts_with("/airbyte") || p.starts_with("/tmp")))
        .collect();
    docker_ok(&["rm", "-f", &name]);
    assert!(
        outside.is_empty(),
        "{image} {args} wrote outside /airbyte and /tmp: {outside:?}"
    );
    launched
}

/// A catalog of the streams `discover` found, each read as asked.
fn configure(catalog: &Value, sync_mode: &str) -> Value {
    let streams: Vec<Value> = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"stream": s, "sync_mode": sync_mode, "destination_sync_mode": "append"}))
        .collect();
    json!({ "streams": streams })
}

fn postgres_source_config(db: &cdk::testing::postgres::TestDatabase) -> Value {
    let mut config = db.connector_config();
    config["schemas"] = json!(["public"]);
    config["ssl_mode"] = json!({"mode": "disable"});
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn source_postgres_reads_the_test_server() {
    let db = TestPostgres::shared().fresh_database("image_read").await;
    db.execute(
        "create table items (id int primary key, name text);
         insert into items select g, 'item ' || g from generate_series(1, 1500) g;",
    )
    .await;
    let tag = image("connectors/source-postgres");
    let config = postgres_source_config(&db);
    let discovered = launch(
        &tag,
        "discover --config /config/config.json",
        &[json_file("config.json", &config)],
        None,
    );
    discovered.assert_ok();
    let catalog = discovered.of_type("CATALOG").remove(0)["catalog"].clone();
    // full_refresh, then incremental without a cursor (what PyAirbyte asks of a plain table).
    for mode in ["full_refresh", "incremental"] {
        let configured = configure(&catalog, mode);
        let read = launch(
            &tag,
            "read --config /config/config.json --catalog /config/catalog.json",
            &[
                json_file("config.json", &config),
                json_file("catalog.json", &configured),
            ],
            None,
        );
        read.assert_ok();
        assert_eq!(read.of_type("RECORD").len(), 1500, "{mode}: {}", read.err);
        let states = read.of_type("STATE");
        assert!(!states.is_empty(), "{mode}");
        if mode == "incremental" {
            let last = &states.last().unwrap()["state"]["stream"]["stream_state"];
            assert_eq!(last, &json!({"__ab_no_cursor_state_message": true}));
            assert!(read.out.contains("has no cursor field"), "{}", read.out);
        }
    }
}

#[test]
fn source_csv_reads_local_files() {
    let tag = image("connectors/source-csv");
    let samples = root().join("connectors/source-csv/integration_tests/sample");
    let mut expected = 0;
    // The files are mounted with the config (read-only), as a volume would be.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&samples).unwrap().map(Result::unwrap) {
        let mut reader = csv::Reader::from_path(entry.path()).unwrap();
        expected += reader.records().count();
        let name = entry.file_name().to_string_lossy().into_owned();
        files.push((name, std::fs::read(entry.path()).unwrap()));
    }
    assert!(expected > 0);
    let config = json!({"dataset_name": "sales_data", "format": "csv",
        "url": "/config/sales_*.csv", "provider": {"storage": "local"}});
    let catalog =
        read_json(&root().join("connectors/source-csv/integration_tests/configured_catalog.json"));
    files.push(json_file("config.json", &config));
    files.push(json_file("catalog.json", &catalog));
    let read = launch(
        &tag,
        "read --config /config/config.json --catalog /config/catalog.json",
        &files,
        None,
    );
    read.assert_ok();
    assert_eq!(read.of_type("RECORD").len(), expected, "{}", read.err);
    assert!(!read.of_type("STATE").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_postgres_writes_and_acknowledges_every_state() {
    let db = TestPostgres::shared().fresh_database("image_write").await;
    let fixtures = root().join("connectors/destination-postgres/integration_tests");
    let catalog = read_json(&fixtures.join("configured_catalog.json"));
    let messages = std::fs::read(fixtures.join("messages.jsonl")).unwrap();
    let mut config = db.connector_config();
    config["schema"] = json!("public");
    config["ssl_mode"] = json!({"mode": "disable"});
    let tag = image("connectors/destination-postgres");
    let written = launch(
        &tag,
        "write --config /config/config.json --catalog /config/catalog.json",
        &[
            json_file("config.json", &config),
            json_file("catalog.json", &catalog),
        ],
        Some(&messages),
    );
    written.assert_ok();
    assert_states_echoed(&messages, &written);
    let client = db.connect().await;
    for stream in catalog["streams"].as_array().unwrap() {
        let name = stream["stream"]["name"].as_str().unwrap();
        let rows: i64 = client
            .query_one(&format!("select count(*) from public.\"{name}\""), &[])
            .await
            .unwrap_or_else(|e| panic!("table {name}: {e}"))
            .get(0);
        assert!(rows > 0, "{name} is empty");
    }
}

#[test]
fn destination_s3_writes_and_acknowledges_every_state() {
    let s3 = TestS3::shared();
    let bucket = s3.fresh_bucket("image-write");
    let fixtures = root().join("connectors/destination-s3/integration_tests");
    let catalog = read_json(&fixtures.join("configured_catalog.json"));
    let messages = std::fs::read(fixtures.join("messages.jsonl")).unwrap();
    let config = json!({"s3_bucket_name": bucket, "s3_bucket_path": "data",
        "s3_bucket_region": s3.region, "s3_endpoint": s3.endpoint,
        "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
        "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"}});
    let tag = image("connectors/destination-s3");
    let written = launch(
        &tag,
        "write --config /config/config.json --catalog /config/catalog.json",
        &[
            json_file("config.json", &config),
            json_file("catalog.json", &catalog),
        ],
        Some(&messages),
    );
    written.assert_ok();
    assert_states_echoed(&messages, &written);
    let objects = walk(&s3.root.join(&bucket));
    assert!(
        objects.iter().any(|p| p.contains("data/")),
        "no objects written: {objects:?}"
    );
}

/// A failing check answers as the binary does: same exit code, same status.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_check_exits_as_the_binary_does() {
    let db = TestPostgres::shared().fresh_database("image_check").await;
    let mut wrong = postgres_source_config(&db);
    wrong["password"] = json!("not-the-password");
    let not_a_config = json!("not an object");
    let tag = image("connectors/source-postgres");
    for config in [&wrong, &not_a_config] {
        let launched = launch(
            &tag,
            "check --config /config/config.json",
            &[json_file("config.json", config)],
            None,
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
        let direct = Command::new(bin("source-postgres"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            Some(launched.code),
            direct.status.code(),
            "{config}: {}",
            launched.err
        );
        let status = |out: &str| -> Vec<String> {
            out.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|m| m["connectionStatus"]["status"].as_str().map(String::from))
                .collect()
        };
        assert_eq!(
            status(&launched.out),
            status(&String::from_utf8_lossy(&direct.stdout))
        );
    }
    assert!(docker(&["image", "inspect", &tag]).status.success());
}

/// Every STATE of the input comes back, in order.
fn assert_states_echoed(input: &[u8], written: &Launched) {
    let sent: Vec<Value> = String::from_utf8_lossy(input)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] == "STATE")
        .map(|m| m["state"]["stream"]["stream_state"].clone())
        .collect();
    let echoed: Vec<Value> = written
        .of_type("STATE")
        .into_iter()
        .map(|m| m["state"]["stream"]["stream_state"].clone())
        .collect();
    assert!(!sent.is_empty());
    assert_eq!(echoed, sent, "--- err\n{}", written.err);
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every file under `dir`, as paths relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                found.push(rel);
            }
        }
    }
    found
}
