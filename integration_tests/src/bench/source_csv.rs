//! Benchmark of source_csv.

use anyhow::Result;

use super::Bench;

pub fn run(_bench: &Bench) -> Result<()> {
    anyhow::bail!("the source_csv benchmark is not written yet")
}
