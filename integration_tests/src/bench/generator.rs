//! Benchmark of generator.

use anyhow::Result;

use super::Bench;

pub fn run(_bench: &Bench) -> Result<()> {
    anyhow::bail!("the generator benchmark is not written yet")
}
