//! Crash safety of `cdk sync`: the source, then the destination, is killed at 5 random points
//! each (3 seeds), every job resuming from the last acknowledged state; then a last job
//! completes. PostgreSQL → PostgreSQL dedup (SIGKILL): nothing lost, no duplicate key.
//! PostgreSQL → S3 Parquet append (SIGKILL): nothing lost, duplicates only from the records a
//! killed job sent past its last acknowledged state. PostgreSQL → destination-jsonl append
//! (the source SIGKILLed, the destination SIGTERMed as `kill` and container runtimes do): no
//! duplicate at all, since a destination built with the kit stops between commits. (A SIGKILL
//! of the destination itself can land between a commit and its acknowledgement: one
//! checkpoint written twice; only a destination that kept the state could close that.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdk::testing::postgres::{TestDatabase, TestPostgres};
use cdk::testing::s3::TestS3;
use serde_json::{Value, json};

use crate::common::{bin, jobs};
use crate::seed_connection::parquet_ids;

/// Enough rows that a job is still running (and its source still reading) when its kill
/// comes, a few checkpoints in.
const ROWS: i64 = 120_000;

/// A small deterministic generator (xorshift), so a failing seed can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The pid of `cdk`'s child process running `name`'s `read` or `write` (not its `check`), if
/// there is one now.
fn child_named(parent: u32, name: &str) -> Option<i32> {
    let comm: String = name.chars().take(15).collect();
    let verb = if name.starts_with("source") {
        "read"
    } else {
        "write"
    };
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, tail) = stat.rsplit_once(") ")?;
        let ppid: u32 = tail.split(' ').nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let running = cmdline.split(|b| *b == 0).any(|arg| arg == verb.as_bytes());
        (ppid == parent && head.ends_with(&format!("({comm}")) && running).then_some(pid)
    })
}

/// One job; when `kill` names a connector, it is killed once it has run for a while: after
/// a random number of acknowledged states, or a random time, whichever comes first, then a
/// random delay (if the job has not ended by then). The destinations commit every 5 ms
/// (destination-jsonl: at each state, its own setting).
async fn job(file: &Path, state_dir: &Path, kill: Option<(&str, i32)>, rng: &mut Rng) {
    let mut cmd = tokio::process::Command::new(bin("cdk"));
    if !file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .contains("jsonl")
    {
        cmd.env("CDK_COMMIT_INTERVAL_MS", "5");
    }
    // Acknowledgements are counted from the state this job starts with.
    let state = state_dir.join("state.json");
    let mut last = std::fs::read_to_string(&state).unwrap_or_default();
    let mut child = cmd
        .arg("sync")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    if let Some((name, signal)) = kill {
        let acks = 1 + rng.below(3);
        let patience = Duration::from_millis(100 + rng.below(500));
        let delay = Duration::from_millis(rng.below(20));
        let (mut seen, mut running_since) = (0, None);
        while seen < acks && child.try_wait().unwrap().is_none() {
            let now = std::fs::read_to_string(&state).unwrap_or_default();
            if now != last {
                (seen, last) = (seen + 1, now);
            }
            if running_since.is_none() && child_named(pid, name).is_some() {
                running_since = Some(std::time::Instant::now());
            }
            if running_since.is_some_and(|t| t.elapsed() >= patience) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(delay).await;
        if let Some(target) = child_named(pid, name) {
            // SAFETY: a process this test's `cdk` started.
            unsafe { libc::kill(target, signal) };
        }
    }
    child.wait().await.unwrap();
}

/// Runs 5 jobs killing the source (SIGKILL), 5 sending `signal` to the destination, then one
/// to completion; returns every job record.
async fn kill_and_resume(
    file: &Path,
    source: &str,
    (destination, signal): (&str, i32),
    seed: u64,
) -> Vec<Value> {
    let state_dir = file
        .parent()
        .unwrap()
        .join(".cdk")
        .join(file.file_stem().unwrap());
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for target in [(source, libc::SIGKILL), (destination, signal)] {
        for _ in 0..5 {
            job(file, &state_dir, Some(target), &mut rng).await;
        }
    }
    job(file, &state_dir, None, &mut rng).await;
    let all = jobs(&state_dir);
    assert_eq!(all.len(), 11);
    most_kills_landed(&all, seed);
    assert_eq!(all[10]["status"], "succeeded", "the last job: {}", all[10]);
    all
}

/// A kill lands unless the job ended first: most of the 10 must have failed, or the test
/// proves little.
fn most_kills_landed(jobs: &[Value], seed: u64) {
    let failed = jobs.iter().filter(|j| j["status"] == "failed").count();
    let summary: Vec<String> = jobs
        .iter()
        .map(|j| {
            let (status, failure) = (&j["status"], &j["failure"]["message"]);
            let (emitted, synced) = (&j["recordsEmitted"], &j["recordsSynced"]);
            format!("{status} {emitted} emitted {synced} synced {failure}")
        })
        .collect();
    assert!(
        failed >= 8,
        "seed {seed}: only {failed} of 10 kills landed: {summary:#?}"
    );
}

/// Checks that every duplicate comes from a killed job's unacknowledged window: the records
/// past the ones acknowledged so far that the job sent (the table is read in id order).
fn duplicates_only_from_unacknowledged_windows(ids: &[i64], jobs: &[Value]) {
    let mut windows = Vec::new();
    let mut acked = 0;
    for job in jobs {
        let synced = job["recordsSynced"].as_i64().unwrap();
        let emitted = job["recordsEmitted"].as_i64().unwrap();
        windows.push((acked + synced, acked + emitted));
        acked += synced;
    }
    assert_eq!(
        acked, ROWS,
        "acknowledged records add up to the table: {jobs:?}"
    );
    let mut counts = BTreeMap::new();
    ids.iter()
        .for_each(|id| *counts.entry(*id).or_insert(0) += 1);
    assert_eq!(counts.len() as i64, ROWS, "every row arrived");
    assert_eq!(counts.keys().next(), Some(&1));
    for (id, n) in counts.iter().filter(|(_, n)| **n > 1) {
        let inside = windows
            .iter()
            .filter(|(lo, hi)| lo < id && id <= hi)
            .count();
        assert!(
            n - 1 <= inside,
            "id {id} is there {n} times, but only {inside} unacknowledged windows hold it: {windows:?}"
        );
    }
}

async fn source_table(name: &str, rows: i64) -> TestDatabase {
    let db = TestPostgres::shared().fresh_database(name).await;
    db.execute(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, payload text, updated_at timestamptz);
         INSERT INTO items SELECT i, md5(i::text), '2025-01-01'::timestamptz + i * interval '1 s'
             FROM generate_series(1, {rows}) i;"
    ))
    .await;
    db
}

/// A connection file of `items`, incremental on `id`.
fn connection(dir: &Path, source: &TestDatabase, destination: Value, mode: &str) -> PathBuf {
    let mut config = source.connector_config();
    config["sync_checkpoint_records"] = json!(250);
    let name = destination["connector"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next();
    let file = dir.join(format!("items-to-{}.json", name.unwrap_or_default()));
    let text = json!({
        "source": {"connector": bin("source-postgres"), "config": config},
        "destination": destination,
        "streams": [{"name": "items", "namespace": "public", "syncMode": "incremental",
                     "cursorField": ["id"], "destinationSyncMode": mode, "primaryKey": [["id"]]}]
    });
    std::fs::write(&file, text.to_string()).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_postgres_dedup_survives_kills() {
    for seed in 1..=3 {
        let source = source_table(&format!("kill_pg_src_{seed}"), ROWS).await;
        let dest = TestPostgres::shared()
            .fresh_database(&format!("kill_pg_dst_{seed}"))
            .await;
        let work = tempfile::tempdir().unwrap();
        let destination =
            json!({"connector": bin("destination-postgres"), "config": dest.connector_config()});
        let file = connection(work.path(), &source, destination, "append_dedup");
        let all = kill_and_resume(
            &file,
            "source-postgres",
            ("destination-postgres", libc::SIGKILL),
            seed,
        )
        .await;
        let row = dest
            .connect()
            .await
            .query_one(
                "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.items",
                &[],
            )
            .await
            .unwrap();
        let (count, distinct): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!((count, distinct), (ROWS, ROWS), "seed {seed}: {all:?}");
        assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (1, ROWS));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_s3_parquet_append_survives_kills() {
    for seed in 1..=3 {
        let source = source_table(&format!("kill_s3_src_{seed}"), ROWS).await;
        let s3 = TestS3::shared();
        let bucket = s3.fresh_bucket(&format!("kill-{seed}"));
        let destination = json!({"connector": bin("destination-s3"), "config": {
            "s3_bucket_name": bucket, "s3_bucket_path": "lake",
            "s3_bucket_region": s3.region, "s3_endpoint": s3.endpoint,
            "access_key_id": s3.access_key, "secret_access_key": s3.secret_key,
            "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"}
        }});
        let work = tempfile::tempdir().unwrap();
        let file = connection(work.path(), &source, destination, "append");
        let all = kill_and_resume(
            &file,
            "source-postgres",
            ("destination-s3", libc::SIGKILL),
            seed,
        )
        .await;
        let ids = parquet_ids(&s3.store(&bucket), "lake/public/items", "id").await;
        duplicates_only_from_unacknowledged_windows(&ids, &all);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_to_jsonl_append_has_no_duplicates_after_kills() {
    for seed in 1..=3 {
        let source = source_table(&format!("kill_jsonl_src_{seed}"), ROWS).await;
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("out");
        let destination = json!({"connector": bin("destination-jsonl"),
                                 "config": {"destination_path": out}});
        let file = connection(work.path(), &source, destination, "append");
        let target = ("destination-jsonl", libc::SIGTERM);
        let all = kill_and_resume(&file, "source-postgres", target, seed).await;
        let text = std::fs::read_to_string(out.join("public/_airbyte_raw_items.jsonl")).unwrap();
        let ids: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["_airbyte_data"]["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (1..=ROWS).collect::<Vec<_>>(),
            "seed {seed}: {all:?}"
        );
    }
}
