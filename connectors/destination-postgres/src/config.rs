//! The destination's config: connection, TLS, where tables go, and the table layout options.

use cdk::{Error, JsonSchema, Result, Secret};
pub use postgres_common::SslMode;
pub use postgres_common::tunnel::TunnelMethod;
use serde::Deserialize;

/// Loads records into typed PostgreSQL tables.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "Postgres Destination Spec")]
pub struct PostgresConfig {
    /// Hostname of the database.
    #[schemars(title = "Host", extend("order" = 0))]
    pub host: String,
    /// Port of the database.
    #[serde(default = "default_port")]
    #[schemars(title = "Port", range(min = 0, max = 65536), extend("order" = 1))]
    pub port: u16,
    /// Name of the database.
    #[schemars(title = "DB Name", extend("order" = 2))]
    pub database: String,
    /// The default schema tables are written to when a stream has no namespace.
    #[serde(default = "default_schema")]
    #[schemars(title = "Default Schema", extend("order" = 3))]
    pub schema: String,
    /// Username to use to access the database.
    #[schemars(title = "User", extend("order" = 4))]
    pub username: String,
    /// Password associated with the username.
    #[schemars(title = "Password", extend("order" = 5))]
    pub password: Option<Secret>,
    /// Deprecated boolean form of ssl_mode (true: require; otherwise prefer), used only when
    /// ssl_mode is not set.
    #[serde(default)]
    #[schemars(title = "SSL Connection", extend("order" = 6))]
    pub ssl: bool,
    /// SSL connection modes. Read more in the docs:
    /// https://www.postgresql.org/docs/current/libpq-ssl.html
    #[schemars(title = "SSL modes", extend("order" = 7))]
    pub ssl_mode: Option<SslMode>,
    /// Whether to initiate an SSH tunnel before connecting to the database, and if so, which
    /// kind of authentication to use.
    #[schemars(title = "SSH Tunnel Method")]
    pub tunnel_method: Option<TunnelMethod>,
    /// Additional properties to pass to the JDBC URL string when connecting to the database
    /// formatted as 'key=value' pairs separated by the symbol '&'. (example:
    /// key1=value1&key2=value2&key3=value3). Keys and values may be percent-encoded.
    /// Understood here: options, currentSchema, ApplicationName / application_name,
    /// connectTimeout / connect_timeout / loginTimeout (seconds), sslmode (when ssl_mode is
    /// not set); others are ignored.
    #[schemars(title = "JDBC URL Params", extend("order" = 8))]
    pub jdbc_url_params: Option<String>,
    /// Schema for the destination's own tables: overwrite tables being loaded before they are
    /// swapped in, and the raw tables of `disable_type_dedupe`.
    #[serde(default = "default_raw_data_schema")]
    #[schemars(title = "Airbyte Internal Schema", extend("order" = 9))]
    pub raw_data_schema: String,
    /// Write only raw tables (`_airbyte_data` JSONB plus the `_airbyte_*` columns) in the
    /// internal schema instead of typed tables; deduplication then falls back to append.
    #[serde(default)]
    #[schemars(title = "Disable Final Tables", extend("order" = 10))]
    pub disable_type_dedupe: bool,
    /// Drop tables with CASCADE when they are replaced (dependent views are dropped too).
    #[serde(default)]
    #[schemars(title = "Drop tables with CASCADE", extend("order" = 11))]
    pub drop_cascade: bool,
    /// Whether rows whose `_ab_cdc_deleted_at` is set delete their key in deduplicated streams
    /// ("Hard delete") or are kept as rows with the marker ("Soft delete").
    #[serde(default)]
    #[schemars(title = "CDC deletion mode", extend("order" = 12))]
    pub cdc_deletion_mode: CdcDeletionMode,
    /// How nested values are stored: as JSONB (`none`, the default) or flattened into prefixed
    /// columns and child tables (`flattened`, the old "basic normalization").
    #[schemars(title = "Normalization", extend("order" = 13))]
    pub normalization: Option<Normalization>,
}

/// What a row with `_ab_cdc_deleted_at` set does in a deduplicated stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum CdcDeletionMode {
    // The key is deleted from the table.
    #[default]
    #[serde(rename = "Hard delete")]
    HardDelete,
    // The row is kept, with `_ab_cdc_deleted_at` set.
    #[serde(rename = "Soft delete")]
    SoftDelete,
}

/// How nested values are laid out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Normalization {
    /// Nested objects and arrays are JSONB columns.
    #[schemars(title = "none")]
    None,
    /// Nested objects become prefixed columns (`contact.email` → `contact_email`); arrays of
    /// objects become child tables `<stream>_<field>` linked by `_airbyte_<stream>_hashid`.
    #[serde(alias = "basic")]
    #[schemars(title = "flattened")]
    Flattened,
}

fn default_port() -> u16 {
    5432
}

fn default_schema() -> String {
    "public".into()
}

fn default_raw_data_schema() -> String {
    "airbyte_internal".into()
}

impl PostgresConfig {
    /// Cross-field rules the JSON schema cannot say.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("host", &self.host),
            ("database", &self.database),
            ("username", &self.username),
            ("schema", &self.schema),
            ("raw_data_schema", &self.raw_data_schema),
        ] {
            if value.trim().is_empty() {
                return Err(Error::config(format!("'{field}' must not be empty")));
            }
        }
        crate::connect::connector(self)?;
        Ok(())
    }

    pub fn flattened(&self) -> bool {
        matches!(self.normalization, Some(Normalization::Flattened))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> PostgresConfig {
        let mut base = json!({"host": "h", "database": "d", "username": "u"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn defaults_follow_airbyte() {
        let c = config(json!({}));
        assert_eq!(
            (c.port, c.schema.as_str(), c.raw_data_schema.as_str()),
            (5432, "public", "airbyte_internal")
        );
        assert!(!c.flattened() && !c.disable_type_dedupe && !c.drop_cascade);
    }

    #[test]
    fn normalization_modes() {
        assert!(config(json!({"normalization": {"mode": "flattened"}})).flattened());
        assert!(config(json!({"normalization": {"mode": "basic"}})).flattened());
        assert!(!config(json!({"normalization": {"mode": "none"}})).flattened());
    }
}
