//! `cdk sync --due` honours each schedule kind (manual, every N hours, cron), `cdk jobs` lists
//! the jobs, and Ctrl-C (SIGINT to `cdk`) ends a job `cancelled` with a state the next job
//! resumes from (source-generator → destination-jsonl: no duplicate, nothing lost).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{bin, cdk_sync, jobs, last_job};

/// A connection file of the generator into JSON-lines files under `dir/out`.
fn connection(dir: &Path, name: &str, count: u64, schedule: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\nsource:\n  connector: {}\n  config: {{count: {count}, checkpoint_interval: 500}}\n\
         destination:\n  connector: {}\n  config: {{destination_path: {}}}\nschedule: {schedule}\n",
        bin("source-generator").display(),
        bin("destination-jsonl").display(),
        dir.join("out").join(name).display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

async fn due(file: &Path, now: &str) -> Vec<Value> {
    let args = [
        file.as_os_str(),
        "--due".as_ref(),
        "--now".as_ref(),
        now.as_ref(),
    ];
    let out = cdk_sync(&args, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    jobs(
        &file
            .parent()
            .unwrap()
            .join(".cdk")
            .join(file.file_stem().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn due_honours_each_schedule_kind() {
    let work = tempfile::tempdir().unwrap();
    let manual = connection(work.path(), "manual", 5, "manual");
    let hourly = connection(work.path(), "every-24h", 5, "{units: 24, timeUnit: hours}");
    let cron = connection(work.path(), "cron", 5, "\"0 2 * * *\"");

    assert_eq!(
        due(&manual, "2030-01-01T00:00:00Z").await.len(),
        0,
        "manual never runs"
    );

    // Never run: due at once. Then not before 24 hours have passed since that job started.
    let first = due(&hourly, "2030-01-01T00:00:00Z").await;
    assert_eq!(first.len(), 1);
    let started: chrono::DateTime<chrono::Utc> =
        first[0]["startedAt"].as_str().unwrap().parse().unwrap();
    let at = |d: chrono::Duration| (started + d).to_rfc3339();
    assert_eq!(
        due(&hourly, &at(chrono::Duration::hours(23))).await.len(),
        1
    );
    assert_eq!(
        due(&hourly, &at(chrono::Duration::hours(24))).await.len(),
        2
    );

    // Cron: due at the next 02:00 after the last job, not before.
    assert_eq!(due(&cron, "2030-01-01T00:00:00Z").await.len(), 1);
    let started: chrono::DateTime<chrono::Utc> =
        last_job(&work.path().join(".cdk/cron"))["startedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let two =
        |d: chrono::DateTime<chrono::Utc>| d.date_naive().and_hms_opt(2, 0, 0).unwrap().and_utc();
    let next_two = if two(started) > started {
        two(started)
    } else {
        two(started + chrono::Duration::days(1))
    };
    let just_before = next_two - chrono::Duration::seconds(1);
    assert_eq!(due(&cron, &just_before.to_rfc3339()).await.len(), 1);
    assert_eq!(due(&cron, &next_two.to_rfc3339()).await.len(), 2);

    // `cdk jobs` lists them with the next due time.
    let out = tokio::process::Command::new(bin("cdk"))
        .args(["jobs".as_ref(), hourly.as_os_str(), manual.as_os_str()])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("every-24h (every 24 hours; next due: "),
        "{text}"
    );
    assert!(
        text.contains("manual (manual; next due: when run by hand)"),
        "{text}"
    );
    assert_eq!(text.matches("succeeded").count(), 2, "{text}");
}

/// Ids in the JSON-lines file the destination wrote, with duplicates.
fn ids_in(file: &Path) -> Vec<u64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["_airbyte_data"]["id"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_and_the_next_job_resumes() {
    let work = tempfile::tempdir().unwrap();
    let count = 20_000;
    let file = connection(work.path(), "cancel", count, "manual");
    let state_dir = work.path().join(".cdk/cancel");
    let child = tokio::process::Command::new(bin("cdk"))
        .arg("sync")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a first acknowledged state, then press Ctrl-C.
    let state = state_dir.join("state.json");
    let acked = |s: &str| serde_json::from_str::<Value>(s).is_ok_and(|v| v != json!([]));
    for _ in 0..3000 {
        if std::fs::read_to_string(&state).is_ok_and(|s| acked(&s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let job = last_job(&state_dir);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(job["status"], "cancelled", "{job}\n{stderr}");
    let synced = job["recordsSynced"].as_u64().unwrap();
    assert!(synced > 0 && synced < count, "{job}");

    // The next job resumes: every id once.
    let out = cdk_sync(&[file.as_os_str()], &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = last_job(&state_dir);
    assert_eq!(resumed["status"], "succeeded");
    assert_eq!(
        resumed["recordsSynced"].as_u64().unwrap() + synced,
        count,
        "{resumed}"
    );
    let ids = ids_in(&work.path().join("out/cancel/_airbyte_raw_users.jsonl"));
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicates after Ctrl-C");
    assert_eq!(unique, (1..=count).collect());
}
