//! Where objects are written: an S3 bucket (Amazon or S3-compatible, path-style) or a local
//! directory, both through object_store. Each object carries the sync's generation id: as
//! `x-amz-meta-ab-generation-id` on S3, and in a small sidecar file outside the bucket
//! directory locally (local files have no user metadata).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, MultipartUpload, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};

use crate::config::{Endpoint, S3Config};
use cdk::{Error, Result};

/// The S3 user-metadata key Airbyte stores the generation id under.
pub const GENERATION_KEY: &str = "ab-generation-id";
/// Local sidecars live under `<root>/.ab-metadata/<bucket>/<key>`.
const LOCAL_METADATA_DIR: &str = ".ab-metadata";

/// A bucket (or local directory) and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// Local only: keys are stored under `<bucket>/`, sidecars under `.ab-metadata/<bucket>/`.
    local_bucket: Option<String>,
    /// Names the target in messages, e.g. `s3://bucket` or `file:///dir/bucket`.
    pub display: String,
}

/// How hard to retry requests: patiently while writing, briefly for `check`.
#[derive(Debug, Clone, Copy)]
pub enum Patience {
    Write,
    Check,
}

impl Target {
    pub fn new(config: &S3Config, patience: Patience) -> Result<Self> {
        let bucket = config.s3_bucket_name.trim();
        match config.endpoint()? {
            Endpoint::Local(root) => {
                let dir = root.join(bucket);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::config(format!("cannot create directory '{}': {e}", dir.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| {
                        Error::config(format!("cannot use directory '{}': {e}", root.display()))
                    })?
                    .with_automatic_cleanup(true)
                    .with_fsync(true);
                Ok(Self {
                    store: Arc::new(store),
                    local_bucket: Some(bucket.to_string()),
                    display: format!("file://{}", dir.display()),
                })
            }
            endpoint => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(config.region())
                    .with_retry(retry_config(patience))
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(10))
                            .with_timeout(Duration::from_secs(300)),
                    );
                let display = match &endpoint {
                    Endpoint::Custom(url) => {
                        builder = builder
                            .with_endpoint(url)
                            .with_allow_http(url.starts_with("http://"))
                            .with_virtual_hosted_style_request(false);
                        format!("s3://{bucket} at {url}")
                    }
                    _ => format!("s3://{bucket}"),
                };
                if let (Some(key), Some(secret)) = (config.access_key(), config.secret_key()) {
                    builder = builder
                        .with_access_key_id(key)
                        .with_secret_access_key(secret);
                }
                let store = builder.build().map_err(|e| {
                    Error::config(format!("cannot configure the S3 client for {display}: {e}"))
                })?;
                Ok(Self {
                    store: Arc::new(store),
                    local_bucket: None,
                    display,
                })
            }
        }
    }

    fn path(&self, key: &str) -> Path {
        match &self.local_bucket {
            Some(bucket) => Path::from(format!("{bucket}/{key}")),
            None => Path::from(key),
        }
    }

    fn sidecar(&self, key: &str) -> Option<Path> {
        self.local_bucket
            .as_ref()
            .map(|bucket| Path::from(format!("{LOCAL_METADATA_DIR}/{bucket}/{key}")))
    }

    /// The key of a listed location (without the local bucket directory).
    fn key_of(&self, location: &Path) -> String {
        let raw = location.as_ref();
        match &self.local_bucket {
            Some(bucket) => raw
                .strip_prefix(bucket.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(raw)
                .to_string(),
            None => raw.to_string(),
        }
    }

    /// The canonical form of `key` (as listings return it).
    pub fn normalise(&self, key: &str) -> String {
        Path::from(key).to_string()
    }

    fn attributes(&self, generation: i64) -> Attributes {
        if self.local_bucket.is_some() {
            return Attributes::new();
        }
        Attributes::from_iter([(
            Attribute::Metadata(GENERATION_KEY.into()),
            generation.to_string(),
        )])
    }

    async fn write_sidecar(&self, key: &str, generation: i64) -> Result<()> {
        if let Some(path) = self.sidecar(key) {
            let body = format!("{{\"{GENERATION_KEY}\":{generation}}}");
            self.store
                .put(&path, PutPayload::from(body))
                .await
                .map_err(|e| self.error("write metadata of", key, e))?;
        }
        Ok(())
    }

    /// Stores a whole small object.
    pub async fn put(&self, key: &str, body: Bytes, generation: i64) -> Result<()> {
        self.write_sidecar(key, generation).await?;
        let options = PutOptions {
            attributes: self.attributes(generation),
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.path(key), PutPayload::from(body), options)
            .await
            .map_err(|e| self.error("write", key, e))?;
        Ok(())
    }

    /// Starts a multipart upload; the object appears when it completes.
    pub async fn start_upload(
        &self,
        key: &str,
        generation: i64,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.write_sidecar(key, generation).await?;
        let options = PutMultipartOptions {
            attributes: self.attributes(generation),
            ..PutMultipartOptions::default()
        };
        self.store
            .put_multipart_opts(&self.path(key), options)
            .await
            .map_err(|e| self.error("start an upload of", key, e))
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("look up", key, e)),
        }
    }

    /// Keys of every object under the directory `prefix` (recursively).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.path(prefix);
        let dir = if dir.as_ref().is_empty() {
            None
        } else {
            Some(&dir)
        };
        let metas: Vec<_> = self
            .store
            .list(dir)
            .try_collect()
            .await
            .map_err(|e| self.error("list", prefix, e))?;
        Ok(metas.iter().map(|m| self.key_of(&m.location)).collect())
    }

    /// The generation id the object was written with; `None` when it has none.
    pub async fn generation(&self, key: &str) -> Result<Option<i64>> {
        if let Some(sidecar) = self.sidecar(key) {
            return match self.store.get(&sidecar).await {
                Ok(r) => {
                    let bytes = r.bytes().await.map_err(|e| self.error("read", key, e))?;
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    Ok(v.get(GENERATION_KEY).and_then(serde_json::Value::as_i64))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.error("read metadata of", key, e)),
            };
        }
        let head = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.path(key), head)
            .await
            .map_err(|e| self.error("read metadata of", key, e))?;
        Ok(result
            .attributes
            .get(&Attribute::Metadata(GENERATION_KEY.into()))
            .and_then(|v| v.as_ref().trim().parse().ok()))
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("delete", key, e)),
        }
        if let Some(sidecar) = self.sidecar(key) {
            let _ = self.store.delete(&sidecar).await;
        }
        Ok(())
    }

    /// A read of a whole object (tests and `check`).
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| self.error("read", key, e))?;
        r.bytes().await.map_err(|e| self.error("read", key, e))
    }

    /// An object store error as a connector error naming the object; network trouble is
    /// transient (object_store has already retried it), the rest is a system error.
    pub fn error(&self, action: &str, key: &str, e: object_store::Error) -> Error {
        let message = format!("cannot {action} '{key}' in {}: {}", self.display, e);
        let text = format!("{e:?}").to_ascii_lowercase();
        if text.contains("connect") || text.contains("timed out") || text.contains("timeout") {
            Error::transient(message)
        } else {
            Error::system(message)
        }
    }
}

fn retry_config(patience: Patience) -> RetryConfig {
    match patience {
        Patience::Write => RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
        },
        Patience::Check => RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
        },
    }
}
