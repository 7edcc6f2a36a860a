//! Benchmark of loader.

use anyhow::Result;

use super::Bench;

pub fn run(_bench: &Bench) -> Result<()> {
    anyhow::bail!("the loader benchmark is not written yet")
}
