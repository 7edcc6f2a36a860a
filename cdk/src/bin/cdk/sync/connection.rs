//! Connection files: YAML or JSON describing a source, a destination, the streams, the
//! namespace rules and the schedule. Airbyte's API shape (`syncCatalog.streams[].stream` +
//! `.config`, camelCase keys) is read as it is; `${ENV_VAR}` in connector settings is expanded.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cdk::protocol::{DestinationSyncMode, StreamDescriptor, SyncMode};
use serde::Deserialize;
use serde_json::Value;

use super::connector::Connector;
use super::schedule::Schedule;

/// A connection ready to run.
pub struct Connection {
    pub name: String,
    pub source: Endpoint,
    pub destination: Endpoint,
    /// The streams' settings; `None`: every discovered stream, incremental where it can.
    pub streams: Option<Vec<StreamSettings>>,
    pub namespace: NamespaceRule,
    /// Put before every stream name in the destination.
    pub prefix: String,
    pub schedule: Schedule,
    /// `false` when the file says `status: inactive` (never due).
    pub active: bool,
    /// Where the state, generations and job history are kept.
    pub state_dir: PathBuf,
}

/// One end of a connection: the connector and its config.
pub struct Endpoint {
    pub connector: Connector,
    pub config: Value,
}

/// What the connection says of one stream (absent fields: the discovered defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamSettings {
    pub name: String,
    pub namespace: Option<String>,
    #[serde(alias = "sync_mode")]
    pub sync_mode: Option<SyncMode>,
    #[serde(alias = "destination_sync_mode")]
    pub destination_sync_mode: Option<DestinationSyncMode>,
    #[serde(alias = "cursor_field")]
    pub cursor_field: Option<Vec<String>>,
    #[serde(alias = "primary_key")]
    pub primary_key: Option<Vec<Vec<String>>>,
    pub selected: Option<bool>,
}

impl StreamSettings {
    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor::new(&self.name, self.namespace.clone())
    }
}

/// Where the destination puts each stream (Airbyte's `namespaceDefinition`).
#[derive(Debug, Clone, PartialEq)]
pub enum NamespaceRule {
    /// The source's namespace (the default).
    Source,
    /// The destination's own default namespace.
    Destination,
    /// A format in which `${SOURCE_NAMESPACE}` stands for the source's namespace.
    Custom(String),
}

/// The file as written; both our shape and Airbyte's API shape.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    name: Option<String>,
    source: Option<EndpointFile>,
    destination: Option<EndpointFile>,
    #[serde(default)]
    streams: Option<Vec<StreamSettings>>,
    sync_catalog: Option<SyncCatalog>,
    #[serde(alias = "namespace_definition")]
    namespace_definition: Option<String>,
    #[serde(alias = "namespace_format")]
    namespace_format: Option<String>,
    prefix: Option<String>,
    schedule: Option<Value>,
    schedule_type: Option<String>,
    schedule_data: Option<Value>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct SyncCatalog {
    streams: Vec<ApiStream>,
}

#[derive(Deserialize)]
struct ApiStream {
    stream: ApiStreamName,
    #[serde(default)]
    config: StreamSettings,
}

#[derive(Deserialize)]
struct ApiStreamName {
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointFile {
    /// A connector name (beside `cdk` or on PATH) or a path.
    connector: Option<String>,
    /// A container image, run through the docker CLI.
    image: Option<String>,
    /// With `image`: run the container in the host's network.
    #[serde(default, alias = "network_host")]
    network_host: bool,
    /// The config: inline, or the path of a JSON or YAML file.
    #[serde(default)]
    config: Option<Value>,
}

impl Connection {
    /// Reads a connection file; the state lives in `state_root/<file stem>` when given, else in
    /// `.cdk/<file stem>` beside the file.
    pub fn load(path: &Path, state_root: Option<&Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the connection file {}", path.display()))?;
        let file: File = parse_text(path, &text)?;
        let dir = std::path::absolute(path)?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "connection".into());
        let state_dir = match state_root {
            Some(root) => root.join(&stem),
            None => dir.join(".cdk").join(&stem),
        };
        let vars = Vars { dir: &dir };
        let endpoint = |e: Option<EndpointFile>, what: &str| -> Result<Endpoint> {
            let e = e.with_context(|| format!("{}: no `{what}`", path.display()))?;
            endpoint(e, &dir, &vars).with_context(|| format!("{}: `{what}`", path.display()))
        };
        let streams = match (file.streams, file.sync_catalog) {
            (Some(s), _) => Some(s),
            (None, Some(c)) => Some(c.streams.into_iter().map(ApiStream::settings).collect()),
            (None, None) => None,
        };
        let schedule = Schedule::from_file(
            file.schedule.as_ref(),
            file.schedule_type.as_deref(),
            file.schedule_data.as_ref(),
        )
        .with_context(|| format!("{}: `schedule`", path.display()))?;
        Ok(Self {
            name: file.name.unwrap_or_else(|| stem.clone()),
            source: endpoint(file.source, "source")?,
            destination: endpoint(file.destination, "destination")?,
            streams,
            namespace: namespace_rule(file.namespace_definition, file.namespace_format)?,
            prefix: file.prefix.unwrap_or_default(),
            schedule,
            active: file.status.as_deref() != Some("inactive"),
            state_dir,
        })
    }
}

impl ApiStream {
    fn settings(self) -> StreamSettings {
        StreamSettings {
            name: self.stream.name,
            namespace: self.stream.namespace,
            ..self.config
        }
    }
}

fn parse_text<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    let json = path.extension().is_some_and(|e| e == "json");
    if json {
        serde_json::from_str(text).with_context(|| format!("{} is not valid", path.display()))
    } else {
        serde_yaml::from_str(text).with_context(|| format!("{} is not valid", path.display()))
    }
}

fn endpoint(e: EndpointFile, dir: &Path, vars: &Vars) -> Result<Endpoint> {
    let connector = match (e.connector, e.image) {
        (Some(name), None) => Connector::binary(&vars.expand(&name)?, dir)?,
        (None, Some(image)) => Connector::Image {
            image: vars.expand(&image)?,
            network_host: e.network_host,
        },
        (Some(_), Some(_)) => bail!("give `connector` or `image`, not both"),
        (None, None) => bail!("no `connector` (a name or path) nor `image`"),
    };
    let config = match e.config {
        None => Value::Object(Default::default()),
        Some(Value::String(file)) => {
            let path = dir.join(vars.expand(&file)?);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            parse_text(&path, &text)?
        }
        Some(inline) => inline,
    };
    Ok(Endpoint {
        connector,
        config: vars.expand_all(config)?,
    })
}

fn namespace_rule(definition: Option<String>, format: Option<String>) -> Result<NamespaceRule> {
    let definition = definition.map(|d| d.to_ascii_lowercase().replace(['_', '-'], ""));
    Ok(match definition.as_deref() {
        None | Some("source") => NamespaceRule::Source,
        Some("destination") => NamespaceRule::Destination,
        Some("customformat") => NamespaceRule::Custom(format.unwrap_or_default()),
        Some(other) => {
            bail!("namespaceDefinition '{other}' is not source, destination or customformat")
        }
    })
}

/// Placeholders that connectors fill in themselves (destination-s3's path variables, the
/// namespace format's): never taken from the environment.
const CONNECTOR_PLACEHOLDERS: &[&str] = &[
    "NAMESPACE",
    "STREAM_NAME",
    "SOURCE_NAMESPACE",
    "YEAR",
    "MONTH",
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "MILLISECOND",
    "EPOCH",
    "UUID",
    "FORMAT_TYPE",
];

/// `${NAME}` expansion: environment variables, and `CONNECTION_DIR` (the directory of the file).
struct Vars<'a> {
    dir: &'a Path,
}

impl Vars<'_> {
    fn expand_all(&self, value: Value) -> Result<Value> {
        Ok(match value {
            Value::String(s) => Value::String(self.expand(&s)?),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.expand_all(v))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k, self.expand_all(v)?)))
                    .collect::<Result<_>>()?,
            ),
            other => other,
        })
    }

    fn expand(&self, text: &str) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            match self.lookup(name)? {
                Some(v) => out.push_str(&v),
                None => out.push_str(&rest[start..start + 3 + end]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, name: &str) -> Result<Option<String>> {
        if CONNECTOR_PLACEHOLDERS.contains(&name) {
            return Ok(None);
        }
        if name == "CONNECTION_DIR" {
            return Ok(Some(self.dir.display().to_string()));
        }
        match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(_) => bail!("the environment variable '{name}' is not set"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_but_not_connector_placeholders() {
        let vars = Vars {
            dir: Path::new("/conn"),
        };
        // SAFETY: the test sets a variable no other test reads.
        unsafe { std::env::set_var("CDK_SYNC_TEST_SECRET", "s3cr3t") };
        let got = vars
            .expand("${CONNECTION_DIR}/x ${CDK_SYNC_TEST_SECRET} ${NAMESPACE}/${STREAM_NAME}")
            .unwrap();
        assert_eq!(got, "/conn/x s3cr3t ${NAMESPACE}/${STREAM_NAME}");
        let err = vars.expand("${CDK_SYNC_TEST_UNSET}").unwrap_err();
        assert!(err.to_string().contains("'CDK_SYNC_TEST_UNSET'"), "{err}");
    }

    #[test]
    fn namespace_definitions_in_any_spelling() {
        assert_eq!(
            namespace_rule(
                Some("customformat".into()),
                Some("p_${SOURCE_NAMESPACE}".into())
            )
            .unwrap(),
            NamespaceRule::Custom("p_${SOURCE_NAMESPACE}".into())
        );
        assert_eq!(
            namespace_rule(Some("DESTINATION".into()), None).unwrap(),
            NamespaceRule::Destination
        );
        assert!(namespace_rule(Some("nowhere".into()), None).is_err());
    }
}
