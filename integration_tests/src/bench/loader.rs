//! Benchmark of the destination loader's stdin parsing: a message file of generated records
//! through destination-jsonl, and through the loader alone (a writer that drops batches), on
//! one thread and on the decoder threads, and with 5× the records to show memory stays flat.

use std::io::{BufWriter, Write};
use std::process::Command;

use anyhow::Result;
use serde_json::json;

use super::{Bench, Measurement, goal, measure, measure_best, report, report_ratio};

pub fn run(bench: &Bench) -> Result<()> {
    let n = bench.records;
    let input = bench.scratch_file("messages.jsonl");
    let bytes = write_messages(&input, n)?;
    let catalog = bench.scratch_file("loader-catalog.json");
    std::fs::write(
        &catalog,
        json!({"streams": [{
        "stream": {"name": "users", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh", "destination_sync_mode": "append"}]})
        .to_string(),
    )?;

    // The loader alone: parse, group and batch, no storage; first decoding on its own task
    // (the single-threaded path), then on the decoder threads (the default).
    let one = measure_parse_only_with(bench, &catalog, &input, &[("CDK_DECODE_THREADS", "0")])?;
    report(
        "loader parse, one thread (CDK_DECODE_THREADS=0)",
        n,
        Some(bytes),
        &one,
    );
    let m = measure_parse_only(bench, &catalog, &input)?;
    report(
        "loader parse of stdin (no storage), best of 3",
        n,
        Some(bytes),
        &m,
    );
    report_ratio("loader parse", &m, "one thread", &one);
    goal("≥ 3,000,000 records/s", m.per_second(n) >= 3_000_000.0);

    // 5× the records: memory must stay where it was.
    let big = bench.scratch_file("messages-5x.jsonl");
    let big_bytes = write_messages(&big, 5 * n)?;
    let five = measure_parse_only(bench, &catalog, &big)?;
    std::fs::remove_file(&big)?;
    report("loader parse, 5x records", 5 * n, Some(big_bytes), &five);
    goal(
        "5x records peak RSS within 15% of 1x (+8 MiB)",
        five.peak_rss_mib <= m.peak_rss_mib * 1.15 + 8.0,
    );

    // And a real destination on top of it.
    let out_dir = bench.scratch_file("jsonl-out");
    let config = bench.scratch_file("jsonl.json");
    std::fs::write(&config, json!({"destination_path": out_dir}).to_string())?;
    let mut cmd = Command::new(bench.binary("destination-jsonl")?);
    cmd.arg("write")
        .arg("--config")
        .arg(&config)
        .arg("--catalog")
        .arg(&catalog);
    let m = measure(&mut cmd, Some(&input))?;
    report("destination-jsonl write", n, Some(bytes), &m);
    Ok(())
}

/// The best of 3 runs of the loader alone (`bench __parse_only`) over `input`.
pub fn measure_parse_only(
    bench: &Bench,
    catalog: &std::path::Path,
    input: &std::path::Path,
) -> Result<Measurement> {
    measure_parse_only_with(bench, catalog, input, &[])
}

/// [`measure_parse_only`] with environment variables set (the loader's knobs).
pub fn measure_parse_only_with(
    bench: &Bench,
    catalog: &std::path::Path,
    input: &std::path::Path,
    env: &[(&str, &str)],
) -> Result<Measurement> {
    let bin = bench.binary("bench")?;
    let parse = || {
        let mut cmd = Command::new(&bin);
        cmd.arg("__parse_only")
            .arg(catalog)
            .envs(env.iter().copied());
        cmd
    };
    measure_best(3, parse, Some(input))
}

/// Writes `n` RECORD lines (10 typed columns) with a STATE every 10,000; returns the size.
fn write_messages(path: &std::path::Path, n: u64) -> Result<u64> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for i in 1..=n {
        let line = json!({"type": "RECORD", "record": {"stream": "users", "emitted_at": 1_700_000_000_000u64 + i,
            "data": {"id": i, "name": format!("user {i}"), "email": format!("user{i}@example.com"),
                "score": i as f64 / 8.0, "active": i % 3 == 0, "age": i % 90, "city": "Lisbon",
                "created_at": "2024-01-01T00:00:00Z", "balance": "1234.56", "tags": ["a", "b"]}}});
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
        if i % 10_000 == 0 {
            let state = json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": "users"}, "stream_state": {"id": i}}}});
            serde_json::to_writer(&mut w, &state)?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    // On disk before measuring, so write-back doesn't compete with the read.
    w.get_ref().sync_all()?;
    Ok(std::fs::metadata(path)?.len())
}

/// `bench __parse_only CATALOG < messages`: the loader with a writer that drops batches.
pub fn parse_only(catalog: &std::path::Path) -> Result<()> {
    use cdk::destination::{
        Batch, BatchWriter, Input, LoaderOptions, Outcome, StreamId, StreamPlan, load,
    };
    use cdk::protocol::{ConfiguredAirbyteCatalog, ConfiguredAirbyteStream, DestinationSyncMode};

    struct Drop;
    #[cdk::async_trait]
    impl BatchWriter for Drop {
        async fn open(
            &mut self,
            _: StreamId,
            _: &ConfiguredAirbyteStream,
            _: StreamPlan,
        ) -> cdk::Result<()> {
            Ok(())
        }
        async fn write(&mut self, _: StreamId, batch: Batch) -> cdk::Result<()> {
            std::hint::black_box(batch.len());
            Ok(())
        }
        async fn commit(&mut self, _: &[StreamId]) -> cdk::Result<()> {
            Ok(())
        }
        async fn close(&mut self, _: StreamId, _: Outcome) -> cdk::Result<()> {
            Ok(())
        }
    }
    let catalog: ConfiguredAirbyteCatalog = serde_json::from_slice(&std::fs::read(catalog)?)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let output = cdk::Output::stdout();
        load(
            Input::stdin(),
            &catalog,
            &[DestinationSyncMode::Append, DestinationSyncMode::Overwrite],
            &mut Drop,
            LoaderOptions::default(),
            &output,
        )
        .await?;
        output.flush();
        Ok::<_, cdk::Error>(())
    })?;
    Ok(())
}
