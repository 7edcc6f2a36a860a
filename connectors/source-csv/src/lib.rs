//! source-csv: CSV (and JSON Lines, JSON, Parquet) files from local disk, HTTPS or S3 (plain,
//! gzip, zstd or bzip2) as one stream, with typed columns inferred from a sample, and incremental reads by file
//! last-modified time in the state shape of Airbyte's file-based sources.

mod config;
mod emit;
mod infer;
mod json;
mod pandas;
mod parquet_file;
mod parse;
mod rewrite;
mod rows;
mod state;
mod storage;
mod stream;
mod values;

use std::sync::Arc;

use cdk::protocol::AirbyteCatalog;
use cdk::{Result, Source, Stream};

pub use config::CsvConfig;
use stream::CsvStream;

pub struct SourceCsv;

#[cdk::async_trait]
impl Source for SourceCsv {
    type Config = CsvConfig;

    async fn check(&self, config: &CsvConfig) -> Result<()> {
        CsvStream::new(config.clone())?.probe().await
    }

    async fn streams(&self, config: &CsvConfig) -> Result<Vec<Arc<dyn Stream>>> {
        Ok(vec![Arc::new(CsvStream::new(config.clone())?)])
    }

    async fn discover(&self, config: &CsvConfig) -> Result<AirbyteCatalog> {
        let mut stream = CsvStream::new(config.clone())?;
        stream.infer_schema().await?;
        Ok(AirbyteCatalog {
            streams: vec![stream.airbyte_stream()],
        })
    }
}
