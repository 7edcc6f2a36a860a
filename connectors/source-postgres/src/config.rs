//! The typed config of source-postgres: the fields, names and shapes of Airbyte's
//! source-postgres spec (so a config moves between the two unchanged), plus optional tuning.

use cdk::{Error, JsonSchema, Result, Secret};
pub use postgres_common::SslMode;
pub use postgres_common::tunnel::TunnelMethod;
use serde::Deserialize;

/// Reads tables, views and materialized views of a PostgreSQL database.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "Postgres Source Spec")]
pub struct PostgresConfig {
    /// Hostname of the database.
    #[schemars(title = "Host", extend("order" = 0))]
    pub host: String,
    /// Port of the database.
    #[serde(default = "default_port")]
    #[schemars(title = "Port", extend("order" = 1, "examples" = ["5432"]))]
    pub port: u16,
    /// Name of the database.
    #[schemars(title = "Database Name", extend("order" = 2))]
    pub database: String,
    /// The list of schemas (case sensitive) to sync from. Defaults to public.
    #[serde(default = "default_schemas")]
    #[schemars(title = "Schemas", extend("order" = 3, "uniqueItems" = true, "minItems" = 0))]
    pub schemas: Vec<String>,
    /// Username to access the database.
    #[schemars(title = "Username", extend("order" = 4))]
    pub username: String,
    /// Password associated with the username.
    #[schemars(title = "Password", extend("order" = 5, "always_show" = true))]
    pub password: Option<Secret>,
    /// Additional properties to pass to the JDBC URL string when connecting to the database
    /// formatted as 'key=value' pairs separated by the symbol '&'. (example:
    /// key1=value1&key2=value2&key3=value3). Keys and values may be percent-encoded.
    /// Understood here: options, currentSchema, ApplicationName / application_name,
    /// connectTimeout / connect_timeout / loginTimeout (seconds), sslmode (when ssl_mode is
    /// not set); others are ignored.
    #[schemars(title = "JDBC URL Parameters (Advanced)", extend("order" = 6))]
    pub jdbc_url_params: Option<String>,
    /// SSL connection modes. Read more in the docs:
    /// https://www.postgresql.org/docs/current/libpq-ssl.html
    #[schemars(title = "SSL Modes", extend("order" = 8))]
    pub ssl_mode: Option<SslMode>,
    /// Whether to initiate an SSH tunnel before connecting to the database, and if so, which
    /// kind of authentication to use.
    #[schemars(title = "SSH Tunnel Method")]
    pub tunnel_method: Option<TunnelMethod>,
    /// Deprecated boolean form of ssl_mode (true: require; otherwise prefer), used only when
    /// ssl_mode is not set.
    #[schemars(title = "Connect using SSL (deprecated)", extend("airbyte_hidden" = true))]
    pub ssl: Option<bool>,
    /// Configures how data is extracted from the database.
    #[serde(default = "default_replication_method")]
    #[schemars(title = "Update Method", extend("order" = 9, "display_type" = "radio"))]
    pub replication_method: ReplicationMethod,
    /// Records between two state messages of a stream (checkpoints a sync can resume from).
    #[serde(default = "default_checkpoint_records")]
    #[schemars(title = "Records Between Checkpoints", range(min = 1), extend("order" = 10))]
    pub sync_checkpoint_records: u64,
    /// Longest time, in seconds, between two state messages of a stream that is reading.
    #[serde(default = "default_checkpoint_seconds")]
    #[schemars(title = "Seconds Between Checkpoints", range(min = 1), extend("order" = 11))]
    pub sync_checkpoint_seconds: u64,
    /// Tables read at the same time, each on its own connection (one more connection holds
    /// the snapshot they share).
    #[serde(default = "default_max_db_connections")]
    #[schemars(title = "Tables Read Concurrently", range(min = 1, max = 64), extend("order" = 12))]
    pub max_db_connections: usize,
    /// Size, in megabytes of table storage, of one chunk of the resumable initial load (a
    /// state is emitted at the end of every chunk).
    #[serde(default = "default_chunk_size_mb")]
    #[schemars(title = "Initial Load Chunk Size (MB)", range(min = 1), extend("order" = 13))]
    pub chunk_size_mb: u64,
}

/// How rows are selected for each sync.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "method")]
pub enum ReplicationMethod {
    /// Incrementally detects new inserts and updates using the cursor column chosen when
    /// configuring a connection (e.g. created_at, updated_at).
    #[schemars(title = "Scan Changes with User Defined Cursor")]
    Standard,
    /// <i>Recommended</i> - Incrementally reads new inserts, updates, and deletes using the
    /// Postgres write-ahead log (logical replication with the pgoutput plugin).
    #[serde(rename = "CDC")]
    #[schemars(title = "Read Changes using Write-Ahead Log (CDC)")]
    Cdc(CdcSettings),
    /// <i>Recommended</i> - Incrementally reads new inserts and updates via Postgres Xmin
    /// system column. Suitable for databases that have low transaction pressure.
    #[schemars(title = "Detect Changes with Xmin System Column")]
    Xmin,
}

/// Settings of change data capture (Airbyte's names, titles and defaults).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CdcSettings {
    /// A plugin logical replication slot, created with
    /// `SELECT pg_create_logical_replication_slot('<slot>', 'pgoutput');`.
    #[schemars(title = "Replication Slot", extend("order" = 2))]
    pub replication_slot: String,
    /// A Postgres publication used for consuming changes, created with
    /// `CREATE PUBLICATION <publication> FOR TABLE <tables>;`.
    #[schemars(title = "Publication", extend("order" = 3))]
    pub publication: String,
    /// A logical decoding plugin installed on the PostgreSQL server.
    #[serde(default)]
    #[schemars(title = "Plugin", extend("order" = 1, "default" = "pgoutput"))]
    pub plugin: Plugin,
    /// The amount of time the connector will wait when it launches to determine if there is
    /// new data to sync or not. This connector never waits: a read ends once it has read
    /// the log up to the server's position at its start.
    #[serde(default = "default_initial_waiting_seconds")]
    #[schemars(title = "Initial Waiting Time in Seconds (Advanced)", range(min = 120, max = 2400),
        extend("order" = 5))]
    pub initial_waiting_seconds: u64,
    /// The most changes buffered between the log reader and the output.
    #[serde(default = "default_queue_size")]
    #[schemars(title = "Size of the queue (Advanced)", range(min = 1000, max = 10000),
        extend("order" = 6))]
    pub queue_size: u64,
    /// Determines when Airbyte should flush the LSN of processed WAL logs in the source
    /// database. `After loading Data in the destination` is default. If `While reading Data`
    /// is selected, in case of a downstream failure (while loading data into the
    /// destination), next sync would result in a full sync.
    #[serde(default)]
    #[schemars(title = "LSN commit behaviour",
        extend("order" = 7, "default" = "After loading Data in the destination"))]
    pub lsn_commit_behaviour: LsnCommitBehaviour,
    /// Specifies a query that the connector runs before reading the log, to keep the slot
    /// moving on a database where the published tables rarely change (see Airbyte's
    /// documentation). Empty: none.
    #[serde(default)]
    #[schemars(title = "Debezium heartbeat query (Advanced)", extend("order" = 8))]
    pub heartbeat_action_query: String,
    /// Determines whether Airbyte should fail or re-sync data in case of an stale/invalid
    /// cursor value into the WAL. If 'Fail sync' is chosen, a user will have to manually
    /// reset the connection before being able to continue syncing data. If 'Re-sync data' is
    /// chosen, Airbyte will automatically trigger a refresh but could lead to higher cloud
    /// costs and data loss.
    #[serde(default)]
    #[schemars(title = "Invalid CDC position behavior (Advanced)",
        extend("order" = 9, "default" = "Fail sync"))]
    pub invalid_cdc_cursor_position_behavior: InvalidCursorBehavior,
    /// The amount of time an initial load is allowed to continue for before catching up on
    /// CDC logs.
    #[serde(default = "default_initial_load_timeout_hours")]
    #[schemars(title = "Initial Load Timeout in Hours (Advanced)", range(min = 4, max = 24),
        extend("order" = 10))]
    pub initial_load_timeout_hours: u64,
}

/// The logical decoding plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Plugin {
    #[default]
    #[serde(rename = "pgoutput")]
    Pgoutput,
}

/// When the replication slot is moved past changes that were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum LsnCommitBehaviour {
    #[serde(rename = "While reading Data")]
    WhileReading,
    #[default]
    #[serde(rename = "After loading Data in the destination")]
    AfterLoading,
}

/// What a sync does when the state's log position is no longer in the slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum InvalidCursorBehavior {
    #[default]
    #[serde(rename = "Fail sync")]
    FailSync,
    #[serde(rename = "Re-sync data")]
    ResyncData,
}

fn default_initial_waiting_seconds() -> u64 {
    1200
}

fn default_queue_size() -> u64 {
    10_000
}

fn default_initial_load_timeout_hours() -> u64 {
    8
}

fn default_port() -> u16 {
    5432
}

fn default_schemas() -> Vec<String> {
    vec!["public".to_string()]
}

fn default_replication_method() -> ReplicationMethod {
    ReplicationMethod::Standard
}

fn default_checkpoint_records() -> u64 {
    10_000
}

fn default_checkpoint_seconds() -> u64 {
    900
}

fn default_max_db_connections() -> usize {
    4
}

fn default_chunk_size_mb() -> u64 {
    1024
}

impl CdcSettings {
    fn validate(&self) -> Result<()> {
        if self.replication_slot.trim().is_empty() {
            return Err(Error::config(
                "'replication_method.replication_slot' is empty",
            ));
        }
        if self.publication.trim().is_empty() {
            return Err(Error::config("'replication_method.publication' is empty"));
        }
        Ok(())
    }
}

impl PostgresConfig {
    /// The schemas to read, or `public` when the list is empty.
    pub fn schema_list(&self) -> Vec<String> {
        if self.schemas.is_empty() {
            default_schemas()
        } else {
            self.schemas.clone()
        }
    }
}

/// Rules the JSON Schema cannot say.
impl cdk::config::Validate for PostgresConfig {
    fn validate(&self) -> Result<()> {
        if let ReplicationMethod::Cdc(c) = &self.replication_method {
            c.validate()?;
        }
        if self.host.trim().is_empty() {
            return Err(Error::config("'host' is empty"));
        }
        if self.schemas.iter().any(|s| s.is_empty()) {
            return Err(Error::config("'schemas' contains an empty schema name"));
        }
        crate::connect::connector(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<PostgresConfig> {
        let spec = cdk::spec::connection_specification::<PostgresConfig>();
        cdk::config::from_value(&v, &spec)
    }

    #[test]
    fn seed_example_is_accepted() {
        let c = parse(
            json!({"host": "postgres", "port": 5432, "database": "ecommerce",
            "username": "postgres", "password": "postgres", "ssl": false,
            "replication_method": {"method": "Standard"}}),
        )
        .unwrap();
        assert_eq!(c.schemas, ["public"]);
        assert_eq!(c.ssl, Some(false));
    }

    #[test]
    fn cdc_settings_take_airbyte_defaults() {
        let c = parse(json!({"host": "h", "database": "d", "username": "u",
            "replication_method": {"method": "CDC", "replication_slot": "s", "publication": "p"}}))
        .unwrap();
        let ReplicationMethod::Cdc(cdc) = c.replication_method else {
            panic!("not cdc")
        };
        assert_eq!(cdc.initial_waiting_seconds, 1200);
        assert_eq!(cdc.lsn_commit_behaviour, LsnCommitBehaviour::AfterLoading);
        assert_eq!(
            cdc.invalid_cdc_cursor_position_behavior,
            InvalidCursorBehavior::FailSync
        );
        let e = parse(json!({"host": "h", "database": "d", "username": "u",
            "replication_method": {"method": "CDC", "replication_slot": " ", "publication": "p"}}))
        .unwrap_err();
        assert!(e.message.contains("replication_slot"), "{}", e.message);
    }

    #[test]
    fn ssl_modes_parse() {
        // The shape only: validation also reads the certificate, which this one is not.
        let c: PostgresConfig = serde_json::from_value(json!({"host": "h", "database": "d",
            "username": "u", "ssl_mode": {"mode": "verify-full", "ca_certificate": "-----BEGIN"}}))
        .unwrap();
        assert!(matches!(c.ssl_mode, Some(SslMode::VerifyFull(_))));
        let e = parse(json!({"host": "h", "database": "d", "username": "u",
            "ssl_mode": {"mode": "verify-full", "ca_certificate": "-----BEGIN"}}))
        .unwrap_err();
        assert!(
            e.message.contains("ssl_mode.ca_certificate"),
            "{}",
            e.message
        );
        assert!(
            parse(json!({"host": "h", "database": "d", "username": "u",
            "ssl_mode": {"mode": "verify-ca"}}))
            .is_err()
        );
    }
}
