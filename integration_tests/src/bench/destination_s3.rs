//! Benchmark of destination_s3.

use anyhow::Result;

use super::Bench;

pub fn run(_bench: &Bench) -> Result<()> {
    anyhow::bail!("the destination_s3 benchmark is not written yet")
}
