//! source-rest-api: a declarative REST source that runs Airbyte low-code manifests.
//!
//! The manifest comes from `--manifest-path`, from the config (`__injected_declarative_manifest`,
//! as Airbyte's platform passes it), or from the simple config form. It is loaded and its
//! `$ref`s resolved ([`manifest`]), decoded into typed components with `$parameters` propagated
//! ([`source`], [`stream`] and the modules by role), and read concurrently ([`read`]).

pub mod actions;
pub mod async_job;
pub mod auth;
pub mod budget;
pub mod config;
pub mod config_rules;
pub mod cursor;
pub mod decoder;
pub mod delegating;
pub mod dependency;
pub mod dynamic;
pub mod dynamic_schema;
pub mod error_handler;
pub mod expander;
pub mod file_uploader;
pub mod grouping;
pub mod http;
pub mod infer;
pub mod interpolation;
pub mod manifest;
pub mod migration;
#[cfg(test)]
mod mutate;
pub mod normalize;
pub mod paginator;
pub mod partition;
pub mod query_properties;
pub mod read;
pub mod request_option;
pub mod requester;
pub mod schema;
pub mod selector;
pub mod source;
pub mod state;
pub mod stream;
pub mod transform;

use std::path::PathBuf;
use std::sync::Arc;

use cdk::protocol::{ConfiguredAirbyteCatalog, ConnectorSpecification, InputState};
use cdk::{CliOptions, Error, Output, ReadOptions, Result, Source, Stream};
use serde_json::Value;

use config::{INJECTED_MANIFEST, SimpleConfig};
use source::Declarative;
use stream::DeclarativeStream;

/// The source. Without `--manifest-path` the manifest comes from the config.
#[derive(Debug, Default)]
pub struct SourceRestApi {
    manifest: Option<Loaded>,
}

#[derive(Debug, Clone)]
struct Loaded {
    /// With `$ref`s resolved.
    manifest: Value,
    base_dir: Option<PathBuf>,
    /// The simple form's endpoints whose schema discover infers from their first page.
    infer: Vec<String>,
    /// The config the manifest runs with: after its `config_normalization_rules`
    /// transformations (set by [`SourceRestApi::resolved`]).
    config: Value,
}

impl SourceRestApi {
    pub fn new() -> Self {
        Self::default()
    }

    /// A source for the manifest at `path`.
    pub fn with_manifest(path: &std::path::Path) -> Result<Self> {
        let mut s = Self::new();
        s.load(path)?;
        Ok(s)
    }

    fn load(&mut self, path: &std::path::Path) -> Result<()> {
        let raw = manifest::refs::read_file(path)?;
        let resolved = manifest::refs::resolve(&raw)?;
        source::manifest_spec(&resolved)?;
        self.manifest = Some(Loaded {
            manifest: resolved,
            base_dir: path.parent().map(|p| p.to_path_buf()),
            infer: Vec::new(),
            config: Value::Null,
        });
        Ok(())
    }

    /// The manifest to run for `config`.
    fn loaded(&self, config: &Value) -> Result<Loaded> {
        if let Some(m) = &self.manifest {
            return Ok(m.clone());
        }
        if let Some(injected) = config.get(INJECTED_MANIFEST) {
            if !injected.is_object() {
                return Err(Error::config(format!(
                    "'{INJECTED_MANIFEST}' must be a mapping"
                )));
            }
            let resolved = manifest::refs::resolve(injected)?;
            let spec = source::manifest_spec(&resolved)?.connection_specification;
            cdk::secrets::register_from_config(&spec, config);
            cdk::config::validate(&spec, config)?;
            return Ok(Loaded {
                manifest: resolved,
                base_dir: None,
                infer: Vec::new(),
                config: Value::Null,
            });
        }
        let simple = SimpleConfig::from_config(config)?;
        Ok(Loaded {
            manifest: simple.to_manifest(),
            base_dir: None,
            infer: simple
                .endpoints
                .iter()
                .filter(|e| e.infers_schema())
                .map(|e| e.name.clone())
                .collect(),
            config: Value::Null,
        })
    }

    /// The manifest to run for `config`, with the config its `config_normalization_rules`
    /// transform and validate, and its dynamic streams resolved.
    async fn resolved(&self, config: &Value) -> Result<Loaded> {
        let mut loaded = self.loaded(config)?;
        loaded.config = config.clone();
        if let Some(rules) = config_rules::of(&loaded.manifest) {
            config_rules::transform(rules, &mut loaded.config)?;
            config_rules::validate(rules, &loaded.config)?;
        }
        loaded.manifest =
            dynamic::expand(&loaded.manifest, &loaded.config, loaded.base_dir.clone()).await?;
        Ok(loaded)
    }

    /// Applies the manifest's `config_migrations` to the config file: when they change it,
    /// the file is rewritten and the new config announced in a CONTROL message, as
    /// airbyte-cdk does before the config is read.
    fn migrate_config_file(&self, path: &std::path::Path) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        let Ok(mut config) = serde_json::from_str::<Value>(&text) else {
            return Ok(());
        };
        let injected;
        let manifest = match (&self.manifest, config.get(INJECTED_MANIFEST)) {
            (Some(m), _) => &m.manifest,
            (None, Some(m)) => {
                injected = manifest::refs::resolve(m)?;
                &injected
            }
            (None, None) => return Ok(()),
        };
        let Some(rules) = config_rules::of(manifest) else {
            return Ok(());
        };
        let rules = rules.clone();
        if !config_rules::migrate(&rules, &mut config)? {
            return Ok(());
        }
        std::fs::write(path, serde_json::to_vec(&config)?).map_err(|e| {
            Error::system(format!(
                "cannot write the migrated config to {}: {e}",
                path.display()
            ))
        })?;
        if let Value::Object(map) = config {
            cdk::output::global().config_update(map);
        }
        Ok(())
    }

    async fn declarative(&self, config: &Value) -> Result<Declarative> {
        let loaded = self.resolved(config).await?;
        Declarative::decode(&loaded.manifest, &loaded.config, loaded.base_dir)
    }

    /// The streams with their schemas, those of the simple form without one inferred from
    /// their first page.
    async fn discovered(&self, config: &Value) -> Result<Declarative> {
        let mut loaded = self.resolved(config).await?;
        loaded.manifest = dynamic_schema::resolve(
            &loaded.manifest,
            &loaded.config,
            loaded.base_dir.clone(),
            None,
        )
        .await?;
        let d = Declarative::decode(&loaded.manifest, &loaded.config, loaded.base_dir.clone())?;
        if loaded.infer.is_empty() {
            return Ok(d);
        }
        for s in &d.streams {
            if !loaded.infer.contains(&s.name) {
                continue;
            }
            let records = s.first_page().await.map_err(|e| {
                Error::config(format!(
                    "cannot detect the schema of stream '{}' from its first page: {}",
                    s.name, e.message
                ))
            })?;
            let schema = infer::infer(&records);
            if let Some(streams) = loaded.manifest["streams"].as_array_mut()
                && let Some(m) = streams.iter_mut().find(|m| m["name"] == s.name.as_str())
            {
                m["schema_loader"]["schema"] = schema;
            }
        }
        Declarative::decode(&loaded.manifest, &loaded.config, loaded.base_dir)
    }

    fn streams_of(d: &Declarative) -> Vec<Arc<dyn Stream>> {
        d.streams
            .iter()
            .map(|s| {
                let group = d.groups.get(&s.name).cloned();
                Arc::new(DeclarativeStream(s.clone(), group)) as Arc<dyn Stream>
            })
            .collect()
    }
}

#[cdk::async_trait]
impl Source for SourceRestApi {
    type Config = Value;

    fn spec(&self) -> ConnectorSpecification {
        match &self.manifest {
            Some(m) => source::manifest_spec(&m.manifest)
                .unwrap_or_else(|_| ConnectorSpecification::new(config::generic_spec())),
            None => {
                let mut spec = ConnectorSpecification::new(config::generic_spec());
                spec.documentation_url =
                    Some("https://docs.airbyte.com/platform/connector-development/config-based/low-code-cdk-overview".into());
                spec
            }
        }
    }

    fn configure(&mut self, options: &CliOptions) -> Result<()> {
        if let Some(path) = &options.manifest_path {
            self.load(path)?;
        }
        match &options.config_path {
            Some(path) => self.migrate_config_file(path),
            None => Ok(()),
        }
    }

    async fn check(&self, config: &Value) -> Result<()> {
        let loaded = self.resolved(config).await?;
        let config = source::check_overrides(&loaded.manifest, &loaded.config)?;
        let d = Declarative::decode(&loaded.manifest, &config, loaded.base_dir)?;
        d.check().await
    }

    async fn discover(&self, config: &Value) -> Result<cdk::protocol::AirbyteCatalog> {
        let d = self.discovered(config).await?;
        Ok(cdk::protocol::AirbyteCatalog {
            streams: Self::streams_of(&d)
                .iter()
                .map(|s| {
                    let mut stream = s.airbyte_stream();
                    // As airbyte-cdk declares it: a stream with a cursor is resumable.
                    stream.is_resumable = Some(stream.default_cursor_field.is_some());
                    stream
                })
                .collect(),
        })
    }

    async fn streams(&self, config: &Value) -> Result<Vec<Arc<dyn Stream>>> {
        let d = self.declarative(config).await?;
        Ok(Self::streams_of(&d))
    }

    async fn read(
        &self,
        config: &Value,
        catalog: &ConfiguredAirbyteCatalog,
        state: &InputState,
        output: &Output,
    ) -> Result<()> {
        let mut loaded = self.resolved(config).await?;
        let selected = catalog
            .streams
            .iter()
            .map(|s| s.stream.name.clone())
            .collect();
        loaded.manifest = dynamic_schema::resolve(
            &loaded.manifest,
            &loaded.config,
            loaded.base_dir.clone(),
            Some(&selected),
        )
        .await?;
        let cursors = catalog
            .streams
            .iter()
            .filter_map(|s| Some((s.stream.name.clone(), s.cursor_field.clone()?)))
            .collect();
        let schemas = catalog
            .streams
            .iter()
            .map(|s| (s.stream.name.clone(), s.stream.json_schema.clone()))
            .collect();
        let d = Declarative::decode_for_catalog(
            &loaded.manifest,
            &loaded.config,
            loaded.base_dir,
            cursors,
            schemas,
        )?;
        let options = ReadOptions {
            checkpoint_interval: u64::MAX,
            max_concurrent_streams: d.concurrency,
        };
        cdk::source::read_streams(Self::streams_of(&d), catalog, state, &options, output).await
    }
}
