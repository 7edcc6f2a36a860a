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
    /// Reads changes from the write-ahead log (logical replication). Not supported yet.
    #[serde(rename = "CDC")]
    #[schemars(title = "Read Changes using Write-Ahead Log (CDC)")]
    Cdc(CdcSettings),
    /// Detects changes through the xmin system column. Not supported yet.
    #[schemars(title = "Detect Changes with Xmin System Column")]
    Xmin,
}

/// Settings of change data capture (accepted so Airbyte configs validate; not supported yet).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CdcSettings {
    /// A plugin logical replication slot.
    #[schemars(title = "Replication Slot")]
    pub replication_slot: String,
    /// A Postgres publication used for consuming changes.
    #[schemars(title = "Publication")]
    pub publication: String,
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

impl PostgresConfig {
    /// Rules the JSON Schema cannot say.
    pub fn validate(&self) -> Result<()> {
        match &self.replication_method {
            ReplicationMethod::Standard => {}
            ReplicationMethod::Cdc(_) => {
                return Err(Error::config(
                    "replication method 'CDC' is not supported yet; use 'Standard' \
                     (a user-defined cursor column)",
                ));
            }
            ReplicationMethod::Xmin => {
                return Err(Error::config(
                    "replication method 'Xmin' is not supported yet; use 'Standard' \
                     (a user-defined cursor column)",
                ));
            }
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

    /// The schemas to read, or `public` when the list is empty.
    pub fn schema_list(&self) -> Vec<String> {
        if self.schemas.is_empty() {
            default_schemas()
        } else {
            self.schemas.clone()
        }
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
        c.validate().unwrap();
        assert_eq!(c.schemas, ["public"]);
        assert_eq!(c.ssl, Some(false));
    }

    #[test]
    fn cdc_is_a_clear_config_error() {
        let c = parse(json!({"host": "h", "database": "d", "username": "u",
            "replication_method": {"method": "CDC", "replication_slot": "s", "publication": "p"}}))
        .unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.failure_type, cdk::protocol::FailureType::ConfigError);
        assert!(
            e.message.contains("'CDC' is not supported yet"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ssl_modes_parse() {
        let c = parse(json!({"host": "h", "database": "d", "username": "u",
            "ssl_mode": {"mode": "verify-full", "ca_certificate": "-----BEGIN"}}))
        .unwrap();
        assert!(matches!(c.ssl_mode, Some(SslMode::VerifyFull(_))));
        assert!(
            parse(json!({"host": "h", "database": "d", "username": "u",
            "ssl_mode": {"mode": "verify-ca"}}))
            .is_err()
        );
    }
}
