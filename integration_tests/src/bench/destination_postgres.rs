//! Benchmark of destination_postgres.

use anyhow::Result;

use super::Bench;

pub fn run(_bench: &Bench) -> Result<()> {
    anyhow::bail!("the destination_postgres benchmark is not written yet")
}
