//! Benchmark of source_rest_api.

use anyhow::Result;

use super::Bench;

pub fn run(_bench: &Bench) -> Result<()> {
    anyhow::bail!("the source_rest_api benchmark is not written yet")
}
