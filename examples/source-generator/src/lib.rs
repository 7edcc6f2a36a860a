//! An example source: generates `count` records per stream of a few typed columns,
//! incremental on the `id` cursor. It shows the smallest complete use of the kit.

mod config;
mod row;

use std::sync::Arc;

use cdk::{Estimate, ReadContext, RecordWriter, Result, Source, Stream};
use serde_json::{Value, json};

pub use config::GeneratorConfig;
use row::RowGenerator;

pub struct SourceGenerator;

#[cdk::async_trait]
impl Source for SourceGenerator {
    type Config = GeneratorConfig;

    /// Nothing to reach: the kit has already validated the config.
    async fn check(&self, _config: &GeneratorConfig) -> Result<()> {
        Ok(())
    }

    async fn streams(&self, config: &GeneratorConfig) -> Result<Vec<Arc<dyn Stream>>> {
        Ok(config
            .streams
            .iter()
            .map(|name| {
                Arc::new(GeneratedStream {
                    name: name.clone(),
                    count: config.count,
                    fail_after: config.fail_after,
                }) as Arc<dyn Stream>
            })
            .collect())
    }

    fn read_options(&self, config: &GeneratorConfig) -> cdk::ReadOptions {
        cdk::ReadOptions {
            checkpoint_interval: config.checkpoint_interval,
            max_concurrent_streams: config.max_concurrent_streams,
        }
    }
}

/// One generated stream: records with ids `1..=count`.
struct GeneratedStream {
    name: String,
    count: u64,
    fail_after: Option<u64>,
}

#[cdk::async_trait]
impl Stream for GeneratedStream {
    fn name(&self) -> &str {
        &self.name
    }

    fn json_schema(&self) -> Value {
        row::json_schema()
    }

    fn primary_key(&self) -> Vec<Vec<String>> {
        vec![vec!["id".into()]]
    }

    fn default_cursor_field(&self) -> Option<Vec<String>> {
        Some(vec!["id".into()])
    }

    async fn estimate(&self, ctx: &ReadContext) -> Option<Estimate> {
        Some(Estimate {
            rows: (self.count + 1).saturating_sub(first_id(ctx)) as i64,
            bytes: None,
        })
    }

    async fn read(&self, ctx: &ReadContext, out: &mut RecordWriter) -> Result<()> {
        let first = first_id(ctx);
        let mut rows = RowGenerator::default();
        for id in first..=self.count {
            if self.fail_after.is_some_and(|n| id > first + n - 1) {
                return Err(cdk::Error::system(format!(
                    "generator asked to fail after {} records",
                    id - first
                )));
            }
            out.record_with_state(&rows.row(id), || json!({ "id": id }))?;
        }
        out.checkpoint(json!({ "id": self.count.max(first - 1) }));
        Ok(())
    }
}

/// The first id to generate: after the state's cursor on incremental reads.
fn first_id(ctx: &ReadContext) -> u64 {
    let after = ctx
        .is_incremental()
        .then(|| ctx.state.as_ref()?.get("id")?.as_u64())
        .flatten()
        .unwrap_or(0);
    after + 1
}
