//! `cdk sync` end to end on N rows of a 10-column table: source-postgres → destination-postgres
//! (append) beside `psql \copy (select …) to` a CSV file + `psql \copy … from` it into the
//! destination, and source-postgres → destination-s3 Parquet (SNAPPY, local file target). The
//! connectors' peak RSS comes from the job record `cdk sync` writes. The Postgres figures are
//! each the best of three runs, taken in turns (the pair's: its fastest run, both copies).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use cdk::testing::postgres::{TestDatabase, TestPostgres};
use serde_json::{Value, json};

use super::{Bench, Measurement, goal, measure, report, report_ratio};

const PSQL: &str = "/usr/bin/psql";
/// The Postgres measurements are the best of this many runs (the machine is shared and noisy).
const RUNS: usize = 3;

pub fn run(bench: &Bench) -> Result<()> {
    let n = bench.records;
    let runtime = tokio::runtime::Runtime::new()?;
    let pg = TestPostgres::shared();
    let source = runtime.block_on(pg.fresh_database("bench_sync_src"));
    let target = runtime.block_on(pg.fresh_database("bench_sync_dst"));
    runtime.block_on(source.execute(&format!(
        "CREATE TABLE bench_sync (id bigint PRIMARY KEY, name varchar, email varchar, \
         amount decimal, quantity bigint, active boolean, created_at timestamptz, \
         birth_date date, score decimal, note varchar);
         INSERT INTO bench_sync SELECT i, 'name ' || i, 'user' || i || '@example.com', \
         (i % 10000) / 100.0, i % 1000, i % 2 = 0, \
         '2024-01-01'::timestamptz + i * interval '1 second', \
         '1990-01-01'::date + (i % 10000), (i % 997) * 1.5, \
         CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || (i % 100) END \
         FROM generate_series(1, {n}) i;"
    )));
    runtime.block_on(source.execute("VACUUM ANALYZE bench_sync"));
    runtime.block_on(target.execute(
        "CREATE TABLE reference (id bigint, name varchar, email varchar, amount decimal, \
         quantity bigint, active boolean, created_at timestamptz, birth_date date, \
         score decimal, note varchar)",
    ));

    // The physical reference: psql to a CSV file, then psql from it.
    let csv = bench.scratch_file("sync-reference.csv");
    let reference = || -> Result<(Measurement, Measurement)> {
        runtime.block_on(target.execute("TRUNCATE reference"));
        let copy_to = measure(
            &mut psql(
                &source,
                &format!(
                    "\\copy (select * from bench_sync) to '{}' csv",
                    csv.display()
                ),
            ),
            None,
        )?;
        let copy_from = measure(
            &mut psql(
                &target,
                &format!("\\copy reference from '{}' csv", csv.display()),
            ),
            None,
        )?;
        Ok((copy_to, copy_from))
    };

    let mut source_config = source.connector_config();
    source_config["ssl_mode"] = json!({"mode": "disable"});
    let mut target_config = target.connector_config();
    target_config["ssl_mode"] = json!({"mode": "disable"});
    // Best of RUNS, in turns: the pair, then a sync into a fresh table. The pair's best is
    // its fastest whole run (to the file, then from it), as the sync's is. Between runs (not
    // timed) the table just loaded is vacuumed and the server checkpoints, so neither an
    // autovacuum of the last run's table nor its dirty pages land in the next run's time.
    let settle = |table: &str| {
        runtime.block_on(target.execute(&format!("VACUUM ANALYZE {table}")));
        // A server of CDK_TEST_POSTGRES_URL may not let its user checkpoint.
        if let Err(e) =
            runtime.block_on(async { target.connect().await.batch_execute("CHECKPOINT").await })
        {
            eprintln!("no checkpoint between runs: {e}");
        }
    };
    let mut best_pair: Option<(Measurement, Measurement)> = None;
    let mut best_sync: Option<(Measurement, Value)> = None;
    for _ in 0..RUNS {
        let (copy_to, copy_from) = reference()?;
        settle("reference");
        best_pair = Some(match best_pair {
            Some((to, from))
                if to.elapsed + from.elapsed <= copy_to.elapsed + copy_from.elapsed =>
            {
                (keep(to, &copy_to), keep(from, &copy_from))
            }
            Some((to, from)) => (keep(copy_to, &to), keep(copy_from, &from)),
            None => (copy_to, copy_from),
        });
        runtime.block_on(target.execute("DROP TABLE IF EXISTS public.bench_sync"));
        let (m, job) = sync(
            bench,
            "pg-to-pg",
            &source_config,
            "destination-postgres",
            target_config.clone(),
        )?;
        settle("public.bench_sync");
        best_sync = Some(match best_sync {
            Some((sm, sjob)) if sm.elapsed <= m.elapsed => (sm.best_with(m), sjob),
            Some((sm, _)) => (m.best_with(sm), job),
            None => (m, job),
        });
    }
    let ((copy_to, copy_from), (m, job)) = best_pair.zip(best_sync).context("no run")?;
    let pair = Measurement {
        elapsed: copy_to.elapsed + copy_from.elapsed,
        peak_rss_mib: copy_to.peak_rss_mib.max(copy_from.peak_rss_mib),
    };
    let csv_bytes = std::fs::metadata(&csv)?.len();
    report(
        "psql \\copy to CSV (reference)",
        n,
        Some(csv_bytes),
        &copy_to,
    );
    report(
        "psql \\copy from CSV (reference)",
        n,
        Some(csv_bytes),
        &copy_from,
    );
    report("psql pair (reference)", n, Some(csv_bytes), &pair);
    figures("cdk sync postgres → postgres append", n, &m, &job)?;
    report_ratio("cdk sync postgres → postgres", &m, "the psql pair", &pair);
    let rate = m.per_second(n);
    goal(
        &format!("≥ 200,000 records/s into Postgres (is {rate:.0})"),
        rate >= 200_000.0,
    );
    goal("no more time than the psql pair", m.elapsed <= pair.elapsed);

    let lake = bench.scratch_file("sync-lake");
    std::fs::create_dir_all(&lake)?;
    let s3 = json!({
        "s3_bucket_name": "lake", "s3_bucket_path": "bronze",
        "s3_endpoint": format!("file://{}", lake.display()),
        "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"}
    });
    let (m, job) = sync(bench, "pg-to-parquet", &source_config, "destination-s3", s3)?;
    figures("cdk sync postgres → S3 Parquet (local)", n, &m, &job)?;
    let rate = m.per_second(n);
    goal(
        &format!("≥ 350,000 records/s into Parquet (is {rate:.0})"),
        rate >= 350_000.0,
    );
    Ok(())
}

/// `kept`'s time with the higher peak memory of the two runs.
fn keep(kept: Measurement, other: &Measurement) -> Measurement {
    Measurement {
        elapsed: kept.elapsed,
        peak_rss_mib: kept.peak_rss_mib.max(other.peak_rss_mib),
    }
}

fn psql(db: &TestDatabase, command: &str) -> Command {
    let mut cmd = Command::new(PSQL);
    cmd.env("PGPASSWORD", &db.password)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &db.host])
        .args(["-p", &db.port.to_string(), "-U", &db.user, "-d", &db.name])
        .arg("-c")
        .arg(command);
    cmd
}

/// One `cdk sync` of `bench_sync` (full refresh, append) into `destination`; returns the
/// measurement of the whole `cdk sync` and its job record.
fn sync(
    bench: &Bench,
    name: &str,
    source_config: &Value,
    destination: &str,
    destination_config: Value,
) -> Result<(Measurement, Value)> {
    let file = bench.scratch_file(&format!("{name}.json"));
    let connection = json!({
        "name": name,
        "source": {"connector": bench.binary("source-postgres")?, "config": source_config},
        "destination": {"connector": bench.binary(destination)?, "config": destination_config},
        "streams": [{"name": "bench_sync", "namespace": "public", "syncMode": "full_refresh",
                     "destinationSyncMode": "append"}]
    });
    std::fs::write(&file, connection.to_string())?;
    let state = bench.scratch_file("sync-state");
    let mut cmd = Command::new(bench.binary("cdk")?);
    cmd.arg("sync").arg(&file).arg("--state-dir").arg(&state);
    let m = measure(&mut cmd, None)?;
    let job = last_job(&state.join(name))?;
    if job["status"] != "succeeded" {
        bail!("the {name} job did not succeed: {job}");
    }
    Ok((m, job))
}

fn last_job(dir: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(dir.join("jobs.jsonl"))
        .with_context(|| format!("no jobs.jsonl in {}", dir.display()))?;
    let line = text.lines().last().context("no job")?;
    Ok(serde_json::from_str(line)?)
}

/// Records/s and MB/s of the sync, and both connectors' peak RSS from the job record.
fn figures(what: &str, n: u64, m: &Measurement, job: &Value) -> Result<()> {
    let synced = job["recordsSynced"].as_u64().unwrap_or(0);
    if synced != n {
        bail!("{what}: {synced} records synced, not {n}: {job}");
    }
    report(what, n, job["bytesSynced"].as_u64(), m);
    let rss = |side: &str| job["peakRssMib"][side].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:<44} peak RSS: source {:.1} MiB, destination {:.1} MiB",
        "",
        rss("source"),
        rss("destination")
    );
    Ok(())
}
