//! Benchmark of the read driver's output path: the generator source to /dev/null.

use std::process::Command;

use anyhow::Result;
use serde_json::json;

use super::{Bench, goal, measure, measure_best, report};

pub fn run(bench: &Bench) -> Result<()> {
    let bin = bench.binary("source-generator")?;
    let n = bench.records;
    let config = bench.scratch_file("generator.json");
    std::fs::write(
        &config,
        json!({"count": n, "checkpoint_interval": 100_000}).to_string(),
    )?;
    let catalog = bench.scratch_file("generator-catalog.json");
    std::fs::write(
        &catalog,
        json!({"streams": [{
        "stream": {"name": "users", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh", "destination_sync_mode": "append"}]})
        .to_string(),
    )?;
    let read = || {
        let mut cmd = Command::new(&bin);
        cmd.arg("read")
            .arg("--config")
            .arg(&config)
            .arg("--catalog")
            .arg(&catalog);
        cmd
    };
    let m = measure_best(3, read, None)?;
    report("source-generator read > /dev/null, best of 3", n, None, &m);
    goal("≥ 2,000,000 records/s", m.per_second(n) >= 2_000_000.0);

    // `spec` is what the platform runs most often; it should feel instant.
    let runs = 20;
    let mut slowest = std::time::Duration::ZERO;
    let mut total = std::time::Duration::ZERO;
    for _ in 0..runs {
        let m = measure(Command::new(&bin).arg("spec"), None)?;
        slowest = slowest.max(m.elapsed);
        total += m.elapsed;
    }
    let mean = total / runs;
    println!(
        "{:<44} mean {:.1} ms, slowest {:.1} ms over {runs} runs",
        "source-generator spec",
        mean.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3
    );
    goal("spec < 20 ms", mean.as_millis() < 20);
    Ok(())
}
