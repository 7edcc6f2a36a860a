//! `bench [NAME…] [--records N]`: runs the benchmarks (all by default) on the binaries built
//! beside it, as shipped: `cargo build --profile dist --workspace` first, then
//! `target/dist/bench` (a `release` build runs too, without the cross-crate optimisation).

use anyhow::Result;
use integration_tests::bench::{self, Bench};

type Runner = fn(&Bench) -> Result<()>;

const BENCHES: &[(&str, Runner)] = &[
    ("generator", bench::generator::run),
    ("loader", bench::loader::run),
    ("source-csv", bench::source_csv::run),
    ("source-postgres", bench::source_postgres::run),
    ("source-postgres-cdc", bench::source_postgres_cdc::run),
    ("source-rest-api", bench::source_rest_api::run),
    ("destination-postgres", bench::destination_postgres::run),
    ("destination-s3", bench::destination_s3::run),
    ("sync", bench::sync::run),
];

fn main() -> Result<()> {
    let mut names = Vec::new();
    let mut records = 1_000_000;
    let mut args = std::env::args().skip(1);
    if std::env::args().nth(1).as_deref() == Some("__parse_only") {
        let catalog = std::env::args().nth(2).unwrap_or_default();
        return bench::loader::parse_only(std::path::Path::new(&catalog));
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => records = args.next().and_then(|n| n.parse().ok()).unwrap_or(records),
            "--list" => {
                BENCHES.iter().for_each(|(n, _)| println!("{n}"));
                return Ok(());
            }
            other => names.push(other.to_string()),
        }
    }
    let bench = Bench::new(records)?;
    let mut failed = Vec::new();
    for (name, run) in BENCHES {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        println!("== {name}");
        if let Err(e) = run(&bench) {
            println!("  FAILED: {e:#}");
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("benchmarks failed: {}", failed.join(", "));
    }
    let missed = bench::goals_missed();
    if missed > 0 {
        anyhow::bail!("{missed} goal(s) not met (see NOT MET above)");
    }
    Ok(())
}
