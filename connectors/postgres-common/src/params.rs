//! `jdbc_url_params`: Airbyte's `key1=value1&key2=value2` (keys and values percent-decoded,
//! as in a JDBC URL), and the few of pgjdbc's parameters a libpq-style connection can honour.

use std::time::Duration;

use cdk::{Error, Result};
use percent_encoding::percent_decode_str;

/// The parameters understood; others are ignored with a warning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JdbcParams {
    /// `options` (and `currentSchema` as `-c search_path=...`), in the order given.
    pub options: Vec<String>,
    /// `ApplicationName` / `application_name`.
    pub application_name: Option<String>,
    /// `connectTimeout` / `connect_timeout` / `loginTimeout`, in whole seconds (at least 1).
    pub connect_timeout: Option<Duration>,
    /// `sslmode`: a libpq mode name, used when `ssl_mode` is not set.
    pub sslmode: Option<String>,
}

impl JdbcParams {
    /// Parses the field (absent or empty: no parameters). Errors name the offending pair.
    pub fn parse(text: Option<&str>) -> Result<Self> {
        let mut params = JdbcParams::default();
        for (key, value) in pairs(text.unwrap_or(""))? {
            match key.as_str() {
                "options" => params.options.push(value),
                "currentSchema" => params
                    .options
                    .push(format!("-c search_path={}", value.replace(' ', "\\ "))),
                "ApplicationName" | "application_name" => params.application_name = Some(value),
                "connectTimeout" | "connect_timeout" | "loginTimeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        Error::config(format!(
                            "jdbc_url_params: '{key}' must be a number of seconds, got '{value}'"
                        ))
                    })?;
                    params.connect_timeout = Some(Duration::from_secs(secs.max(1)));
                }
                "sslmode" => params.sslmode = Some(value),
                other => tracing::warn!(parameter = other, "jdbc_url_params: parameter ignored"),
            }
        }
        Ok(params)
    }

    /// Whether the user's `options` set `name` (then the session setup leaves it alone).
    pub fn sets(&self, name: &str) -> bool {
        self.options.iter().any(|o| o.contains(name))
    }
}

/// The decoded `key=value` pairs; empty pairs (`a=1&&b=2`) are skipped.
pub fn pairs(text: &str) -> Result<Vec<(String, String)>> {
    text.split('&')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((decode(k.trim(), pair)?, decode(v.trim(), pair)?))
            }
            _ => Err(Error::config(format!(
                "jdbc_url_params: '{pair}' is not a key=value pair (pairs are separated by '&')"
            ))),
        })
        .collect()
}

fn decode(text: &str, pair: &str) -> Result<String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Error::config(format!(
                "jdbc_url_params: '{pair}' does not decode to UTF-8 text"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_decoded_and_checked() {
        assert_eq!(
            pairs(" a=1&b=x%3Dy%20z&&c=%E2%82%AC ").unwrap(),
            [
                ("a".into(), "1".into()),
                ("b".into(), "x=y z".into()),
                ("c".into(), "€".into())
            ]
        );
        assert!(pairs("").unwrap().is_empty());
        let e = pairs("a=1&novalue").unwrap_err();
        assert!(
            e.message.contains("'novalue' is not a key=value pair"),
            "{e}"
        );
        assert!(pairs("=1").is_err());
        assert!(pairs("a=%FF").unwrap_err().message.contains("UTF-8"));
    }

    #[test]
    fn understood_parameters() {
        let p = JdbcParams::parse(Some(
            "options=-c%20work_mem%3D64MB&currentSchema=my schema&ApplicationName=etl\
             &connectTimeout=0&sslmode=require&prepareThreshold=0",
        ))
        .unwrap();
        assert_eq!(
            p.options,
            ["-c work_mem=64MB", "-c search_path=my\\ schema"]
        );
        assert_eq!(p.application_name.as_deref(), Some("etl"));
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert!(p.sets("work_mem") && !p.sets("statement_timeout"));
        let e = JdbcParams::parse(Some("loginTimeout=soon")).unwrap_err();
        assert!(e.message.contains("'loginTimeout' must be a number"), "{e}");
        assert_eq!(JdbcParams::parse(None).unwrap(), JdbcParams::default());
    }
}
