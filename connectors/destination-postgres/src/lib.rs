//! destination-postgres: loads records into typed PostgreSQL tables in the layout of Airbyte's
//! destination-postgres 3.x ("direct load"), by COPY, with append, overwrite (load then swap)
//! and append_dedup (stage then upsert), raw JSON tables on request, and an optional flattened
//! layout (the old "basic normalization").

pub mod config;
mod connect;
mod copy;
pub mod names;
mod record;
mod rows;
pub mod schema;
mod sql;
mod value;
mod writer;

use cdk::destination::{Input, LoaderOptions, load};

/// States are acknowledged (after a commit) every this many bytes of input (or 15 s): each
/// commit drains both COPY streams, so fewer of them keep the server busy. With a dedup
/// stream, the kit's 64 MiB: rows encoded while a merge runs are held until the commit.
fn commit_bytes(catalog: &ConfiguredAirbyteCatalog) -> usize {
    let dedups = catalog
        .streams
        .iter()
        .any(|s| s.destination_sync_mode == DestinationSyncMode::AppendDedup);
    match dedups {
        true => LoaderOptions::default().commit_bytes,
        false => 256 << 20,
    }
}
use cdk::protocol::*;
use cdk::{Destination, Error, Output, Result};

pub use config::PostgresConfig;

pub struct DestinationPostgres;

#[cdk::async_trait]
impl Destination for DestinationPostgres {
    type Config = PostgresConfig;

    fn supported_sync_modes(&self) -> Vec<DestinationSyncMode> {
        vec![
            DestinationSyncMode::Overwrite,
            DestinationSyncMode::Append,
            DestinationSyncMode::AppendDedup,
        ]
    }

    /// Connects, then creates, writes and drops a table in the default schema.
    async fn check(&self, config: &PostgresConfig) -> Result<()> {
        let client = connect::connector(config)?
            .connect(connect::Purpose::Check)
            .await?;
        let schema = names::compatible(&config.schema);
        let table = names::TableName::new(
            &schema,
            format!("_airbyte_connection_test_{}", uuid::Uuid::new_v4().simple()),
        );
        let script = format!(
            "{};\nCREATE TABLE {} (test integer);\nINSERT INTO {} VALUES (1);\nDROP TABLE {}",
            sql_create_schema(&schema),
            table.sql(),
            table.sql(),
            table.sql()
        );
        client.batch_execute(&script).await.map_err(|e| {
            let e = connect::pg_error(e);
            Error::config(format!("cannot write to schema '{schema}': {}", e.message))
        })
    }

    async fn write(
        &self,
        config: &PostgresConfig,
        catalog: &ConfiguredAirbyteCatalog,
        input: Input,
        output: &Output,
    ) -> Result<()> {
        let connector = connect::connector(config)?;
        let client = connector.connect(connect::Purpose::Sync).await?;
        let mut writer = writer::PgWriter::new(client, config.clone());
        if copy_streams() > 1
            && catalog
                .streams
                .iter()
                .any(|s| s.destination_sync_mode != DestinationSyncMode::AppendDedup)
        {
            let second = connector.connect(connect::Purpose::Sync).await?;
            writer = writer.with_second_connection(second);
        }
        if copy_streams() > 1
            && !config.disable_type_dedupe
            && catalog
                .streams
                .iter()
                .any(|s| s.destination_sync_mode == DestinationSyncMode::AppendDedup)
        {
            let dedup = connector.connect(connect::Purpose::Sync).await?;
            writer = writer.with_dedup_connection(dedup);
        }
        load(
            input,
            catalog,
            &self.supported_sync_modes(),
            &mut writer,
            LoaderOptions {
                commit_bytes: commit_bytes(catalog),
                record_fields: true,
                ..LoaderOptions::default()
            },
            output,
        )
        .await
    }
}

/// COPY connections for streams without a stage, and for the keys of dedup streams (split by
/// a hash of the key): `DESTINATION_POSTGRES_COPY_STREAMS` (1 or 2), else 2.
fn copy_streams() -> usize {
    std::env::var("DESTINATION_POSTGRES_COPY_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn sql_create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", names::quote(schema))
}
