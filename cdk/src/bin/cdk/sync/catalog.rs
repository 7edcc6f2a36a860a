//! The run's catalogs: discover the source, apply the connection's stream settings, and map
//! each stream to its place in the destination (namespace rule and prefix).

use std::path::Path;

use anyhow::{Result, bail};
use cdk::protocol::*;

use super::connection::{NamespaceRule, StreamSettings};
use super::connector::Connector;

/// Runs `discover` and returns the source's catalog (or its error message).
pub fn discover(source: &Connector, config: &Path, container: &str) -> Result<AirbyteCatalog> {
    let stdout = source.output("discover", &[("config", config)], container)?;
    let mut error = None;
    for line in String::from_utf8_lossy(&stdout).lines() {
        match serde_json::from_str::<AirbyteMessage>(line) {
            Ok(AirbyteMessage::Catalog { catalog }) => return Ok(catalog),
            Ok(AirbyteMessage::Trace { trace }) => {
                if let TracePayload::Error { error: e } = trace.payload {
                    error = Some(e.message);
                }
            }
            _ => {}
        }
    }
    match error {
        Some(message) => bail!("discover failed: {message}"),
        None => bail!("discover gave no catalog"),
    }
}

/// The configured catalog: every discovered stream (incremental + append where it can, else
/// full refresh + overwrite) when `settings` is `None`, else the selected streams as set.
pub fn configure(
    discovered: AirbyteCatalog,
    settings: Option<&[StreamSettings]>,
) -> Result<ConfiguredAirbyteCatalog> {
    let Some(settings) = settings else {
        let streams = discovered
            .streams
            .into_iter()
            .map(|s| configure_stream(s, &StreamSettings::default()))
            .collect::<Result<_>>()?;
        return Ok(ConfiguredAirbyteCatalog { streams });
    };
    let mut streams = Vec::new();
    for wanted in settings.iter().filter(|s| s.selected != Some(false)) {
        let found = discovered.streams.iter().find(|s| {
            s.name == wanted.name && (wanted.namespace.is_none() || s.namespace == wanted.namespace)
        });
        let Some(stream) = found else {
            let names: Vec<String> = discovered
                .streams
                .iter()
                .map(|s| s.descriptor().to_string())
                .collect();
            bail!(
                "stream '{}' is not in the source's catalog (it has: {})",
                wanted.descriptor(),
                names.join(", ")
            );
        };
        streams.push(configure_stream(stream.clone(), wanted)?);
    }
    Ok(ConfiguredAirbyteCatalog { streams })
}

fn configure_stream(
    stream: AirbyteStream,
    set: &StreamSettings,
) -> Result<ConfiguredAirbyteStream> {
    let name = stream.descriptor();
    let can_increment = stream.supported_sync_modes.contains(&SyncMode::Incremental);
    let cursor = set
        .cursor_field
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            stream
                .default_cursor_field
                .clone()
                .filter(|c| !c.is_empty())
        });
    let sync_mode = set
        .sync_mode
        .unwrap_or(if can_increment && cursor.is_some() {
            SyncMode::Incremental
        } else {
            SyncMode::FullRefresh
        });
    if sync_mode == SyncMode::Incremental && !can_increment {
        bail!("stream '{name}' does not support incremental syncs");
    }
    if sync_mode == SyncMode::Incremental && cursor.is_none() {
        bail!("stream '{name}' is incremental but has no cursor field (set `cursorField`)");
    }
    let destination_mode = set.destination_sync_mode.unwrap_or(match sync_mode {
        SyncMode::Incremental => DestinationSyncMode::Append,
        SyncMode::FullRefresh => DestinationSyncMode::Overwrite,
    });
    let primary_key = set
        .primary_key
        .clone()
        .filter(|k| !k.is_empty())
        .or_else(|| stream.source_defined_primary_key.clone());
    if destination_mode == DestinationSyncMode::AppendDedup
        && primary_key.as_ref().is_none_or(|k| k.is_empty())
    {
        bail!("stream '{name}' is deduplicated but has no primary key (set `primaryKey`)");
    }
    let mut configured = ConfiguredAirbyteStream::new(stream, sync_mode, destination_mode);
    configured.cursor_field = cursor.filter(|_| sync_mode == SyncMode::Incremental);
    configured.primary_key = primary_key;
    Ok(configured)
}

/// The destination's catalog (streams renamed by the namespace rule and prefix) and, per
/// stream, the (source, destination) descriptors.
pub fn for_destination(
    source: &ConfiguredAirbyteCatalog,
    rule: &NamespaceRule,
    prefix: &str,
) -> (
    ConfiguredAirbyteCatalog,
    Vec<(StreamDescriptor, StreamDescriptor)>,
) {
    let mut pairs = Vec::new();
    let mut destination = source.clone();
    for stream in &mut destination.streams {
        let from = stream.descriptor();
        let namespace = match rule {
            NamespaceRule::Source => from.namespace.clone(),
            NamespaceRule::Destination => None,
            NamespaceRule::Custom(format) => Some(format.replace(
                "${SOURCE_NAMESPACE}",
                from.namespace.as_deref().unwrap_or_default(),
            ))
            .filter(|ns| !ns.is_empty()),
        };
        stream.stream.namespace = namespace;
        stream.stream.name = format!("{prefix}{}", from.name);
        pairs.push((from, stream.descriptor()));
    }
    (destination, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn discovered() -> AirbyteCatalog {
        let mut s = AirbyteStream::new(
            "orders",
            json!({}),
            vec![SyncMode::FullRefresh, SyncMode::Incremental],
        );
        s.namespace = Some("public".into());
        s.source_defined_primary_key = Some(vec![vec!["order_id".into()]]);
        AirbyteCatalog { streams: vec![s] }
    }

    #[test]
    fn custom_namespace_format_and_prefix() {
        let set = StreamSettings {
            name: "orders".into(),
            sync_mode: Some(SyncMode::Incremental),
            cursor_field: Some(vec!["created_at".into()]),
            ..Default::default()
        };
        let configured = configure(discovered(), Some(&[set])).unwrap();
        let s = &configured.streams[0];
        assert_eq!(s.destination_sync_mode, DestinationSyncMode::Append);
        assert_eq!(s.primary_key, Some(vec![vec!["order_id".into()]]));
        let rule = NamespaceRule::Custom("production_${SOURCE_NAMESPACE}".into());
        let (dest, pairs) = for_destination(&configured, &rule, "raw_");
        assert_eq!(
            dest.streams[0].descriptor().to_string(),
            "production_public.raw_orders"
        );
        assert_eq!(pairs[0].0.to_string(), "public.orders");
    }

    #[test]
    fn incremental_without_a_cursor_is_refused() {
        let set = StreamSettings {
            name: "orders".into(),
            sync_mode: Some(SyncMode::Incremental),
            ..Default::default()
        };
        let err = configure(discovered(), Some(&[set])).unwrap_err();
        assert!(err.to_string().contains("no cursor field"), "{err}");
    }
}
