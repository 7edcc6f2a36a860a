//! Where files come from: local paths and globs, one HTTPS URL, or S3 keys and key globs. Each
//! provider lists files with their last-modified time and opens one as a blocking byte reader
//! (remote bodies are streamed through a bridge), so the CSV parser is the same for all.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::config::{CsvConfig, HttpsProvider, Provider, S3Provider};
use cdk::protocol::FailureType;
use cdk::{Error, Result};

/// A file of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The path, URL or key, as `_ab_source_file_url` and the state's history show it.
    pub uri: String,
    pub last_modified: DateTime<Utc>,
}

pub type ByteReader = Box<dyn Read + Send>;

pub enum Storage {
    Local,
    Https(Https),
    S3(S3),
}

impl Storage {
    pub fn new(config: &CsvConfig) -> Result<Self> {
        Ok(match &config.provider {
            Provider::Local => Self::Local,
            Provider::Https(p) => Self::Https(Https::new(p, &config.url)?),
            Provider::S3(p) => Self::S3(S3::new(p, &config.url)?),
        })
    }

    /// The files `url` names, oldest first (then by uri); an error when there are none.
    pub async fn list(&self, url: &str) -> Result<Vec<FileRef>> {
        let mut files = match self {
            Self::Local => list_local(url)?,
            Self::Https(h) => vec![h.head().await?],
            Self::S3(s) => s.list().await?,
        };
        files.sort_by(|a, b| (a.last_modified, &a.uri).cmp(&(b.last_modified, &b.uri)));
        Ok(files)
    }

    /// The raw (possibly compressed) bytes of a file. Read it from a blocking context: remote
    /// bodies are pulled from the runtime as the reader asks.
    pub async fn open(&self, file: &FileRef) -> Result<ByteReader> {
        match self {
            Self::Local => {
                let path = local_path(&file.uri);
                let f = std::fs::File::open(path)
                    .map_err(|e| Error::config(format!("cannot open '{}': {e}", file.uri)))?;
                Ok(Box::new(f))
            }
            Self::Https(h) => h.get().await,
            Self::S3(s) => s.get(&file.uri).await,
        }
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn local_path(url: &str) -> &str {
    url.strip_prefix("file://").unwrap_or(url)
}

fn list_local(url: &str) -> Result<Vec<FileRef>> {
    let pattern = local_path(url);
    let stat = |path: &std::path::Path| -> Result<Option<FileRef>> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::config(format!("cannot read '{}': {e}", path.display())))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let modified = meta.modified().map_err(|e| {
            Error::system(format!(
                "no modification time for '{}': {e}",
                path.display()
            ))
        })?;
        Ok(Some(FileRef {
            uri: path.display().to_string(),
            last_modified: modified.into(),
        }))
    };
    if !has_glob(pattern) {
        return match stat(std::path::Path::new(pattern))? {
            Some(f) => Ok(vec![f]),
            None => Err(Error::config(format!("'{pattern}' is not a file"))),
        };
    }
    let paths = glob::glob(pattern)
        .map_err(|e| Error::config(format!("url: invalid glob '{pattern}': {e}")))?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| Error::config(format!("cannot list '{pattern}': {e}")))?;
        files.extend(stat(&path)?);
    }
    if files.is_empty() {
        return Err(Error::config(format!("no file matches '{pattern}'")));
    }
    Ok(files)
}

pub struct Https {
    client: reqwest::Client,
    url: String,
    basic_auth: Option<(String, Option<String>)>,
}

impl Https {
    fn new(p: &HttpsProvider, url: &str) -> Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        for h in &p.headers {
            let name = reqwest::header::HeaderName::from_bytes(h.header_name.as_bytes())
                .map_err(|_| Error::config(format!("invalid header name '{}'", h.header_name)))?;
            let value =
                reqwest::header::HeaderValue::from_str(h.header_value.expose()).map_err(|_| {
                    Error::config(format!("invalid value for header '{}'", h.header_name))
                })?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(15))
            // The body is gzip only when the file is: never decode a transfer encoding away.
            .no_gzip();
        if p.user_agent {
            builder = builder.user_agent(concat!("source-csv/", env!("CARGO_PKG_VERSION")));
        }
        let client = builder
            .build()
            .map_err(|e| Error::system(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: url.to_string(),
            basic_auth: p.username.clone().map(|user| {
                let password = p.password.as_ref().map(|s| s.expose().clone());
                (user, password)
            }),
        })
    }

    /// The file's existence and Last-Modified time (now, when the server gives none: such a
    /// file is read again by every incremental sync).
    async fn head(&self) -> Result<FileRef> {
        let response = self
            .request(reqwest::Method::HEAD)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        // Some servers refuse HEAD (and a presigned URL is signed for GET only); GET tells the
        // truth then, and only its headers are read.
        let response = match response.status().as_u16() {
            400 | 403 | 405 | 501 => self.send_get().await?,
            _ => self.ensure_ok(response)?,
        };
        let last_modified = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        Ok(FileRef {
            uri: self.url.clone(),
            last_modified,
        })
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let request = self.client.request(method, &self.url);
        match &self.basic_auth {
            Some((user, password)) => request.basic_auth(user, password.as_ref()),
            None => request,
        }
    }

    async fn send_get(&self) -> Result<reqwest::Response> {
        let response = self
            .request(reqwest::Method::GET)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        self.ensure_ok(response)
    }

    async fn get(&self) -> Result<ByteReader> {
        let body = self
            .send_get()
            .await?
            .bytes_stream()
            .map_err(std::io::Error::other);
        Ok(bridge(body))
    }

    fn ensure_ok(&self, response: reqwest::Response) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let why = match status.as_u16() {
            401 | 403 => " (check the credentials or headers)",
            404 => " (no such file)",
            _ => "",
        };
        Err(Error::config(format!(
            "GET {} answered {status}{why}",
            self.url
        )))
    }

    fn error(&self, e: reqwest::Error) -> Error {
        Error::from_cause(
            FailureType::ConfigError,
            format!("cannot reach {}", self.url),
            e,
        )
    }
}

/// A blocking reader over a stream of byte chunks, pulled from the runtime on demand.
fn bridge<S>(body: S) -> ByteReader
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin + 'static,
{
    Box::new(SyncIoBridge::new(StreamReader::new(body)))
}

pub struct S3 {
    store: Arc<AmazonS3>,
    bucket: String,
    /// The key, or key glob, inside the bucket.
    key: String,
}

impl S3 {
    fn new(p: &S3Provider, url: &str) -> Result<Self> {
        let (bucket, key) = match url.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((b, k)) if !b.is_empty() && !k.is_empty() => (b.to_string(), k.to_string()),
                _ => {
                    return Err(Error::config(format!(
                        "url: expected s3://bucket/key, got '{url}'"
                    )));
                }
            },
            None => match &p.bucket {
                Some(b) if !b.is_empty() => (b.clone(), url.trim_start_matches('/').to_string()),
                _ => {
                    return Err(Error::config(
                        "provider.bucket is required when the url is not of the form s3://bucket/key",
                    ));
                }
            },
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_region(
                p.region
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .unwrap_or("us-east-1"),
            )
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(600)),
            );
        if let Some(endpoint) = p.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (&p.aws_access_key_id, &p.aws_secret_access_key) {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(secret.expose());
        }
        let store = builder
            .build()
            .map_err(|e| Error::config(format!("cannot configure the S3 client: {e}")))?;
        Ok(Self {
            store: Arc::new(store),
            bucket,
            key,
        })
    }

    async fn list(&self) -> Result<Vec<FileRef>> {
        let file = |meta: object_store::ObjectMeta| FileRef {
            uri: meta.location.to_string(),
            last_modified: meta.last_modified,
        };
        if !has_glob(&self.key) {
            let meta = self
                .store
                .head(&ObjectPath::from(self.key.as_str()))
                .await
                .map_err(|e| self.error("find", &self.key, e))?;
            return Ok(vec![file(meta)]);
        }
        let pattern = glob::Pattern::new(&self.key)
            .map_err(|e| Error::config(format!("url: invalid glob '{}': {e}", self.key)))?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        // List from the literal directory before the first wildcard.
        let literal = &self.key[..self.key.find(['*', '?', '[']).unwrap_or(self.key.len())];
        let prefix = literal.rfind('/').map(|i| &literal[..i]);
        let prefix = prefix.map(ObjectPath::from);
        let mut listing = self.store.list(prefix.as_ref());
        let mut files = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error("list", literal, e))?;
            if pattern.matches_with(meta.location.as_ref(), options) {
                files.push(file(meta));
            }
        }
        if files.is_empty() {
            return Err(Error::config(format!(
                "no object matches 's3://{}/{}'",
                self.bucket, self.key
            )));
        }
        Ok(files)
    }

    async fn get(&self, key: &str) -> Result<ByteReader> {
        let result = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| self.error("read", key, e))?;
        let body = result.into_stream().map_err(std::io::Error::other);
        Ok(bridge(body))
    }

    fn error(&self, action: &str, key: &str, e: object_store::Error) -> Error {
        let context = format!("cannot {action} 's3://{}/{key}'", self.bucket);
        match e {
            object_store::Error::NotFound { .. } => Error::config(format!("{context}: not found")),
            other => Error::from_cause(FailureType::ConfigError, context, other),
        }
    }
}
