//! source-postgres: reads tables, views and materialized views of a PostgreSQL database with
//! the config, catalog and state shapes of Airbyte's source-postgres. Full refresh is a
//! resumable load in physical (ctid) chunks; incremental is that load followed by reads on a
//! user-chosen cursor column, on `xmin` (Xmin), or of the changes of a pgoutput logical
//! replication slot (CDC). Tables are streamed with binary COPY in read-only snapshot
//! transactions.

mod cdc;
mod config;
mod connect;
mod copy;
mod discover;
mod read;
mod state;
mod types;
mod values;
mod xmin;

use std::sync::Arc;
use std::time::Duration;

use cdk::output::Output;
use cdk::protocol::{AirbyteCatalog, ConfiguredAirbyteCatalog, InputState, SyncMode};
use cdk::{Error, ReadOptions, Result, Source, Stream};

pub use config::{PostgresConfig, ReplicationMethod};
use connect::{Purpose, query_error};
use read::{ReadEnv, TableStream};

pub struct SourcePostgres;

#[cdk::async_trait]
impl Source for SourcePostgres {
    type Config = PostgresConfig;

    async fn check(&self, config: &PostgresConfig) -> Result<()> {
        let client = connect::connector(config)?.connect(Purpose::Check).await?;
        let schemas = config.schema_list();
        let rows = client
            .query(
                "SELECT nspname::text, has_schema_privilege(oid, 'USAGE') \
                 FROM pg_catalog.pg_namespace WHERE nspname = ANY($1)",
                &[&schemas],
            )
            .await
            .map_err(|e| query_error(&e, "cannot list schemas"))?;
        let found: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let missing: Vec<&String> = schemas
            .iter()
            .filter(|s| !found.iter().any(|(f, _)| f == *s))
            .collect();
        if !missing.is_empty() {
            return Err(Error::config(format!(
                "schema(s) {} not found in database '{}' (names are case sensitive)",
                quoted_list(missing.iter().map(|s| s.as_str())),
                config.database
            )));
        }
        if let Some((s, _)) = found.iter().find(|(_, usage)| !usage) {
            return Err(Error::config(format!(
                "user '{}' has no USAGE privilege on schema '{s}'",
                config.username
            )));
        }
        let tables = discover::tables(&client, &schemas).await?;
        let unreadable: Vec<String> = tables
            .iter()
            .filter(|t| !t.readable)
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect();
        if !tables.is_empty() && unreadable.len() == tables.len() {
            return Err(Error::config(format!(
                "user '{}' has no SELECT privilege on any table of schema(s) {}: {}",
                config.username,
                quoted_list(schemas.iter().map(String::as_str)),
                quoted_list(unreadable.iter().map(String::as_str))
            )));
        }
        if !unreadable.is_empty() {
            tracing::warn!(
                "user '{}' has no SELECT privilege on {}; they are left out of the catalog",
                config.username,
                quoted_list(unreadable.iter().map(String::as_str))
            );
        }
        if let ReplicationMethod::Cdc(cdc) = &config.replication_method {
            cdc::preflight(&client, config, cdc).await?;
        }
        Ok(())
    }

    async fn discover(&self, config: &PostgresConfig) -> Result<AirbyteCatalog> {
        let client = connect::connector(config)?.connect(Purpose::Sync).await?;
        let tables = discover::readable_tables(&client, &config.schema_list()).await?;
        let streams = match &config.replication_method {
            ReplicationMethod::Standard => tables.iter().map(|t| t.airbyte_stream()).collect(),
            ReplicationMethod::Xmin => tables.iter().map(|t| t.xmin_stream()).collect(),
            ReplicationMethod::Cdc(cdc) => {
                let published = cdc::published(&client, &cdc.publication).await?;
                tables.iter().map(|t| t.cdc_stream(&published)).collect()
            }
        };
        Ok(AirbyteCatalog { streams })
    }

    fn read_options(&self, config: &PostgresConfig) -> ReadOptions {
        ReadOptions {
            checkpoint_interval: config.sync_checkpoint_records,
            max_concurrent_streams: config.max_db_connections,
        }
    }

    async fn read(
        &self,
        config: &PostgresConfig,
        catalog: &ConfiguredAirbyteCatalog,
        state: &InputState,
        output: &Output,
    ) -> Result<()> {
        match &config.replication_method {
            ReplicationMethod::Cdc(cdc) => {
                let (cdc_streams, others): (Vec<_>, Vec<_>) =
                    catalog.streams.iter().partition(|s| cdc::is_cdc_stream(s));
                if !others.is_empty() {
                    let full = ConfiguredAirbyteCatalog {
                        streams: others.into_iter().cloned().collect(),
                    };
                    self.read_tables(config, &full, state, output).await?;
                }
                if cdc_streams.is_empty() {
                    return Ok(());
                }
                cdc::read(config, cdc, &cdc_streams, state, output).await
            }
            ReplicationMethod::Xmin => {
                // Xmin needs no cursor column: give incremental streams a placeholder so the
                // read driver reads them incrementally.
                let mut catalog = catalog.clone();
                for s in &mut catalog.streams {
                    if s.sync_mode == SyncMode::Incremental && s.resolved_cursor_field().is_none() {
                        s.stream.source_defined_cursor = Some(false);
                        s.cursor_field = Some(vec!["xmin".into()]);
                    }
                }
                self.read_tables(config, &catalog, state, output).await
            }
            ReplicationMethod::Standard => self.read_tables(config, catalog, state, output).await,
        }
    }
}

impl SourcePostgres {
    /// Reads the streams of `catalog` table by table (full refresh, cursor or Xmin).
    async fn read_tables(
        &self,
        config: &PostgresConfig,
        catalog: &ConfiguredAirbyteCatalog,
        state: &InputState,
        output: &Output,
    ) -> Result<()> {
        let connector = connect::connector(config)?;
        // The coordinator exports one snapshot every table is read in, and holds it open
        // until the last stream has started.
        let coordinator = connector.connect(Purpose::Sync).await?;
        coordinator
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(|e| query_error(&e, "cannot start a read-only transaction"))?;
        let snapshot = match coordinator
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
        {
            Ok(row) => Some(row.get::<_, String>(0)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot export a snapshot; each table is read in its own");
                let _ = coordinator
                    .batch_execute("ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await;
                None
            }
        };
        let tables = discover::tables(&coordinator, &config.schema_list()).await?;
        let env = Arc::new(ReadEnv {
            connector,
            snapshot,
            checkpoint_every: Duration::from_secs(config.sync_checkpoint_seconds.max(1)),
            chunk_bytes: config.chunk_size_mb.max(1) << 20,
            xmin: matches!(config.replication_method, ReplicationMethod::Xmin),
        });
        let streams: Vec<Arc<dyn Stream>> = tables
            .into_iter()
            .map(|t| {
                Arc::new(TableStream {
                    table: Arc::new(t),
                    env: env.clone(),
                }) as Arc<dyn Stream>
            })
            .collect();
        let result =
            cdk::source::read_streams(streams, catalog, state, &self.read_options(config), output)
                .await;
        let _ = coordinator.batch_execute("COMMIT").await;
        result
    }
}

fn quoted_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
