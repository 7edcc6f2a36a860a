//! The `ssl_mode` config field both connectors take: Airbyte's oneOf on `mode` (libpq's six
//! modes), with a CA and an optional client certificate for the verifying ones.

use cdk::{Error, JsonSchema, Result, Secret};
use serde::Deserialize;

/// How the connection is encrypted and the server verified.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum SslMode {
    /// Disables encryption of communication between Airbyte and the database.
    #[schemars(title = "disable")]
    Disable,
    /// Connects without encryption first, and with encryption only when the database refuses
    /// an unencrypted connection. The server's certificate is not verified.
    #[schemars(title = "allow")]
    Allow,
    /// Connects with encryption first, and without it only when the database does not support
    /// or refuses an encrypted connection. The server's certificate is not verified.
    #[schemars(title = "prefer")]
    Prefer,
    /// Always require encryption. If the database server does not support encryption,
    /// connection will fail. The server's certificate is not verified.
    #[schemars(title = "require")]
    Require,
    /// Always require encryption and verifies that the database server has a valid SSL
    /// certificate (signed by the given CA; the host name is not checked).
    #[schemars(title = "verify-ca")]
    VerifyCa(TlsCertificates),
    /// This is the most secure mode. Always require encryption and verifies the identity of
    /// the database server (a certificate signed by the given CA, for the host name).
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
    /// Client key (PEM): unencrypted PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8 ("BEGIN
    /// ENCRYPTED PRIVATE KEY"), which the client key password decrypts.
    #[schemars(title = "Client Key", extend("multiline" = true, "order" = 3))]
    pub client_key: Option<Secret>,
    /// Password of an encrypted (PKCS#8) client key. Airbyte's Java connectors use it for the
    /// keystore they build; with an unencrypted key it is not needed and is ignored.
    #[schemars(title = "Client key password", extend("order" = 4))]
    pub client_key_password: Option<Secret>,
}

impl SslMode {
    /// The mode in effect: `ssl_mode` when set; else `sslmode` from `jdbc_url_params`; else
    /// `require` when the deprecated boolean `ssl` is true; else `prefer` (libpq's default).
    /// `ssl_mode` and a different `sslmode` parameter together are a config error.
    pub fn resolve(
        ssl_mode: Option<&SslMode>,
        ssl: bool,
        jdbc_sslmode: Option<&str>,
    ) -> Result<Self> {
        let from_params = jdbc_sslmode.map(Self::from_name).transpose()?;
        match (ssl_mode, from_params) {
            (Some(mode), Some(param)) if mode.name() != param.name() => {
                Err(Error::config(format!(
                    "jdbc_url_params: sslmode '{}' contradicts ssl_mode '{}'; set only ssl_mode",
                    param.name(),
                    mode.name()
                )))
            }
            (Some(mode), _) => Ok(mode.clone()),
            (None, Some(param)) => Ok(param),
            (None, None) if ssl => Ok(SslMode::Require),
            (None, None) => Ok(SslMode::Prefer),
        }
    }

    /// libpq's name of the mode.
    pub fn name(&self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa(_) => "verify-ca",
            SslMode::VerifyFull(_) => "verify-full",
        }
    }

    /// A mode named in `jdbc_url_params`; the verifying ones need a CA, which only
    /// `ssl_mode` can give.
    fn from_name(name: &str) -> Result<Self> {
        match name {
            "disable" => Ok(SslMode::Disable),
            "allow" => Ok(SslMode::Allow),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" | "verify-full" => Err(Error::config(format!(
                "jdbc_url_params: sslmode '{name}' needs a CA certificate; use ssl_mode instead"
            ))),
            other => Err(Error::config(format!(
                "jdbc_url_params: sslmode '{other}' is not one of disable, allow, prefer, \
                 require, verify-ca, verify-full"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mode(v: serde_json::Value) -> SslMode {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn airbyte_shapes_parse() {
        let m = mode(json!({"mode": "verify-full", "ca_certificate": "ca",
            "client_certificate": "c", "client_key": "k", "client_key_password": "p"}));
        let SslMode::VerifyFull(c) = m else {
            panic!("expected verify-full")
        };
        assert_eq!(c.client_key_password.unwrap().expose(), "p");
        assert!(serde_json::from_value::<SslMode>(json!({"mode": "verify-ca"})).is_err());
        assert_eq!(mode(json!({"mode": "allow"})).name(), "allow");
    }

    #[test]
    fn the_mode_in_effect() {
        let name = |m: Option<&SslMode>, ssl, p| SslMode::resolve(m, ssl, p).map(|m| m.name());
        assert_eq!(name(None, false, None).unwrap(), "prefer");
        assert_eq!(name(None, true, None).unwrap(), "require");
        assert_eq!(name(None, true, Some("allow")).unwrap(), "allow");
        assert_eq!(
            name(Some(&SslMode::Disable), true, None).unwrap(),
            "disable"
        );
        assert_eq!(
            name(Some(&SslMode::Require), false, Some("require")).unwrap(),
            "require"
        );
        let e = name(Some(&SslMode::Require), false, Some("disable")).unwrap_err();
        assert!(e.message.contains("contradicts ssl_mode 'require'"), "{e}");
        let e = name(None, false, Some("verify-full")).unwrap_err();
        assert!(e.message.contains("needs a CA certificate"), "{e}");
        assert!(name(None, false, Some("bogus")).is_err());
    }
}
