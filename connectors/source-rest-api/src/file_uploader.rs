//! A stream's `file_uploader` (`FileUploader`): one file per record, as airbyte-cdk 7.39.1
//! uploads them. The record's download target (`download_target_extractor` applied to the
//! record) is fetched with the uploader's own `requester`, which sees it as `download_target`
//! (and `stream_slice.extra_fields.download_target`); the whole response body is written to
//! `<staging directory>/<stream>/<file name>` and the record, its data unchanged, is sent with a
//! `file_reference` saying where the file is. The staging directory is
//! `AIRBYTE_STAGING_DIRECTORY` (default `/staging/files`) when it exists, else
//! `/tmp/airbyte-file-transfer`; the file name is `filename_extractor` (seeing `record`) or a
//! random UUID. `file_extractor` is read but has no effect, as in airbyte-cdk, which writes
//! the whole body.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cdk::protocol::AirbyteRecordMessageFileReference;
use cdk::{Error, Result};
use serde_json::{Map, Value, json};

use crate::interpolation::{Template, Vars, json_value, to_mj};
use crate::manifest::{Build, Node};
use crate::request_option::RequestParts;
use crate::requester::{Call, Requester};
use crate::selector::RecordSelector;

/// airbyte-cdk's staging directory when the environment does not name one.
const DEFAULT_STAGING: &str = "/staging/files";
/// Where files go when the staging directory does not exist.
const LOCAL_FALLBACK: &str = "/tmp/airbyte-file-transfer";

/// A decoded `FileUploader`.
#[derive(Debug)]
pub struct FileUploader {
    requester: Requester,
    target: RecordSelector,
    filename: Option<Template>,
}

impl FileUploader {
    /// Decodes the `file_uploader` of a stream, refusing the response actions only a stream's
    /// main requester can honour, as airbyte-cdk refuses them.
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("FileUploader"))?;
        c.expect(&["FileUploader"])?;
        let requester = Requester::decode(c.required_child("requester")?, b)?;
        requester.refuse_retriever_actions("requester of a `file_uploader`")?;
        let target = RecordSelector::decode_value_extractor(
            c.required_child("download_target_extractor")?,
            b,
        )?;
        // airbyte-cdk's model has it, its uploader never reads it: the body is the file.
        c.ignore(&["file_extractor"]);
        let filename = c
            .opt_template(b, "filename_extractor")?
            .filter(|t| !t.source().is_empty());
        c.finish()?;
        Ok(Self {
            requester,
            target,
            filename,
        })
    }

    /// Downloads the file of `record` (a record of `stream`) to the staging directory and
    /// says where it is. The record itself is not changed.
    pub async fn upload(
        &self,
        stream: &str,
        record: &mut Value,
    ) -> Result<AirbyteRecordMessageFileReference> {
        let target = self.download_target(stream, record)?;
        let body = self.download(stream, &target).await?;
        let name = self.file_name(stream, record)?;
        let relative = relative_path(stream, &name)?;
        let full = staging_directory().join(&relative);
        let size = write_file(&full, &body)
            .await
            .map_err(|e| e.for_file(stream))?;
        tracing::info!(stream, file = %full.display(), relative = %relative, bytes = size,
            "file uploaded");
        Ok(AirbyteRecordMessageFileReference {
            staging_file_url: Some(full.display().to_string()),
            source_file_relative_path: Some(relative),
            file_size_bytes: Some(size),
        })
    }

    /// The first value `download_target_extractor` finds in the record: a string.
    fn download_target(&self, stream: &str, record: &Value) -> Result<String> {
        let mut doc = record.clone();
        let targets = self.target.extract(&mut doc, true)?;
        match targets.into_iter().next() {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(Error::config(format!(
                "stream '{stream}': the file_uploader's download target must be a string, got \
                 {other} (download_target_extractor on the record {})",
                crate::decoder::snippet(record.to_string().as_bytes())
            ))),
            None => Err(Error::config(format!(
                "stream '{stream}': the file_uploader's download_target_extractor found no \
                 download target in the record {}",
                crate::decoder::snippet(record.to_string().as_bytes())
            ))),
        }
    }

    /// The body of the download target's response, with the requester's error handling.
    async fn download(&self, stream: &str, target: &str) -> Result<bytes::Bytes> {
        let target_value = Value::String(target.to_string());
        let slice = json!({"extra_fields": {"download_target": target}});
        let vars = Vars::new()
            .with("stream_partition", to_mj(Map::new()))
            .with("stream_interval", to_mj(Map::new()))
            .with("stream_slice", to_mj(&slice))
            .with("stream_state", to_mj(Map::new()))
            .with("download_target", json_value(Arc::new(target_value)));
        let call = Call {
            vars: &vars,
            extra: RequestParts::default(),
            path_override: None,
            notice: None,
        };
        let context = |mut e: Error| {
            e.message = format!(
                "stream '{stream}': the file of a record could not be downloaded from '{}': {}",
                crate::requester::redact_url(target),
                e.message
            );
            e
        };
        match self.requester.send_keeping_ignored(&call).await {
            Ok(Some(resp)) if resp.redo.is_none() => Ok(resp.body),
            Ok(Some(_)) => Err(Error::config(format!(
                "stream '{stream}': the file_uploader's requester resolved the download of '{}' \
                 to a pagination action, which only a stream's main requester can honour",
                crate::requester::redact_url(target)
            ))),
            Ok(None) => Err(Error::system(format!(
                "stream '{stream}': the download of '{}' failed and its error handler ignored \
                 it: there is no file to write",
                crate::requester::redact_url(target)
            ))),
            Err(e) => Err(context(e)),
        }
    }

    /// `filename_extractor` evaluated with the record, or a random UUID.
    fn file_name(&self, stream: &str, record: &mut Value) -> Result<String> {
        let Some(t) = &self.filename else {
            return Ok(uuid::Uuid::new_v4().to_string());
        };
        t.eval_str_with_record(record, &Vars::new())?.ok_or_else(|| {
            Error::config(format!(
                "stream '{stream}': the file_uploader's filename_extractor '{}' gave no file name \
                 for the record {}",
                t.source(),
                crate::decoder::snippet(record.to_string().as_bytes())
            ))
        })
    }
}

/// `<stream>/<name>` as Python's `pathlib` writes it: leading slashes of the name dropped,
/// empty and `.` segments removed. A `..` segment is refused: a file stays under the staging
/// directory (airbyte-cdk would write outside it).
pub fn relative_path(stream: &str, name: &str) -> Result<String> {
    let joined = format!("{stream}/{}", name.trim_start_matches('/'));
    let parts: Vec<&str> = joined
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(Error::config(format!(
            "stream '{stream}': the file name '{name}' leaves the stream's staging directory \
             ('..' is not allowed in a file name)"
        )));
    }
    Ok(parts.join("/"))
}

/// `AIRBYTE_STAGING_DIRECTORY` (default `/staging/files`) when it exists, else
/// `/tmp/airbyte-file-transfer`, as airbyte-cdk picks it.
pub fn staging_directory() -> PathBuf {
    let staging =
        std::env::var("AIRBYTE_STAGING_DIRECTORY").unwrap_or_else(|_| DEFAULT_STAGING.into());
    if Path::new(&staging).exists() {
        PathBuf::from(staging)
    } else {
        PathBuf::from(LOCAL_FALLBACK)
    }
}

/// A file that could not be written.
struct WriteError {
    path: PathBuf,
    cause: std::io::Error,
}

impl WriteError {
    fn for_file(self, stream: &str) -> Error {
        Error::system(format!(
            "stream '{stream}': the file '{}' could not be written: {}",
            self.path.display(),
            self.cause
        ))
    }
}

/// Writes `body` to `path` (creating its directories); the file's size.
async fn write_file(path: &Path, body: &[u8]) -> std::result::Result<i64, WriteError> {
    let fail = |cause| WriteError {
        path: path.to_path_buf(),
        cause,
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(fail)?;
    }
    tokio::fs::write(path, body).await.map_err(fail)?;
    let meta = tokio::fs::metadata(path).await.map_err(fail)?;
    Ok(meta.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::relative_path;

    #[test]
    fn relative_paths_are_written_as_pathlib_writes_them() {
        assert_eq!(relative_path("docs", "a.pdf").unwrap(), "docs/a.pdf");
        assert_eq!(relative_path("docs", "//1/a.pdf/").unwrap(), "docs/1/a.pdf");
        assert_eq!(relative_path("docs", "./x//./y").unwrap(), "docs/x/y");
        assert_eq!(relative_path("docs", "").unwrap(), "docs");
        let e = relative_path("docs", "1/../../etc/passwd").unwrap_err();
        assert!(e.message.contains("'..' is not allowed"), "{}", e.message);
    }
}
