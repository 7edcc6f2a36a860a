//! The typed config of source-postgres: the fields, names and shapes of Airbyte's
//! source-postgres spec (so a config moves between the two unchanged), plus optional tuning.

use cdk::{Error, JsonSchema, Result, Secret};
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
    /// key1=value1&key2=value2&key3=value3). Understood here: options, application_name /
    /// ApplicationName, connect_timeout / connectTimeout, currentSchema; others are ignored.
    #[schemars(title = "JDBC URL Parameters (Advanced)", extend("order" = 6))]
    pub jdbc_url_params: Option<String>,
    /// SSL connection modes. Read more in the docs:
    /// https://www.postgresql.org/docs/current/libpq-ssl.html
    #[schemars(title = "SSL Modes", extend("order" = 8))]
    pub ssl_mode: Option<SslMode>,
    /// Deprecated boolean form of ssl_mode (true: require, false: disable), used only when
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

/// How to use TLS for the connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum SslMode {
    /// Disables encryption of communication between Airbyte and source database.
    #[schemars(title = "disable")]
    Disable,
    /// Enables encryption only when required by the source database.
    #[schemars(title = "allow")]
    Allow,
    /// Allows unencrypted connection only if the source database does not support encryption.
    #[schemars(title = "prefer")]
    Prefer,
    /// Always require encryption. If the source database server does not support encryption,
    /// connection will fail.
    #[schemars(title = "require")]
    Require,
    /// Always require encryption and verifies that the source database server has a valid SSL
    /// certificate.
    #[schemars(title = "verify-ca")]
    VerifyCa(TlsCertificates),
    /// This is the most secure mode. Always require encryption and verifies the identity of
    /// the source database server.
    #[schemars(title = "verify-full")]
    VerifyFull(TlsCertificates),
}

/// Certificates for the verifying TLS modes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct TlsCertificates {
    /// CA certificate (PEM).
    #[schemars(title = "CA Certificate", extend("multiline" = true, "order" = 1))]
    pub ca_certificate: Secret,
    /// Client certificate (PEM), for servers that authenticate clients by certificate.
    #[schemars(title = "Client Certificate", extend("multiline" = true, "order" = 2))]
    pub client_certificate: Option<Secret>,
    /// Client key (PEM, unencrypted PKCS#8, PKCS#1 or SEC1).
    #[schemars(title = "Client Key", extend("multiline" = true, "order" = 3))]
    pub client_key: Option<Secret>,
    /// Password of an encrypted client key (encrypted keys are not supported yet).
    #[schemars(title = "Client key password", extend("order" = 4))]
    pub client_key_password: Option<Secret>,
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
        if let Some(SslMode::VerifyCa(c) | SslMode::VerifyFull(c)) = &self.ssl_mode
            && c.client_key_password
                .as_ref()
                .is_some_and(|p| !p.expose().is_empty())
        {
            return Err(Error::config(
                "an encrypted client key ('client_key_password') is not supported yet; \
                 provide an unencrypted key",
            ));
        }
        crate::connect::parse_jdbc_params(self.jdbc_url_params.as_deref().unwrap_or(""))?;
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
    fn cdc_is_a_clear_config_error() {
        let e = parse(json!({"host": "h", "database": "d", "username": "u",
            "replication_method": {"method": "CDC", "replication_slot": "s", "publication": "p"}}))
        .unwrap_err();
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
