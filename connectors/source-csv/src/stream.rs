//! The one stream of a CSV source: lists the files, reads each in last-modified order, and in
//! incremental mode skips files the state's history has already seen unchanged, with a state
//! after every file (Airbyte's file-based state shape).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdk::{ReadContext, RecordWriter, Result, Stream, TrustedJson};
use csv::ByteRecord;
use serde_json::{Value, json};

use crate::config::{CsvConfig, Dialect, Format};
use crate::emit::RowWriter;
use crate::infer::{FILE_LAST_MODIFIED, FILE_URL, Inference, SAMPLE_FILES};
use crate::json::JsonInference;
use crate::parquet_file;
use crate::parse::{CsvFile, decompress};
use crate::state::FileHistory;
use crate::storage::{FileRef, Storage};
use crate::values::Kind;

/// Rows `check` parses of the newest file.
const CHECK_ROWS: usize = 100;

pub struct CsvStream {
    pub config: CsvConfig,
    pub dialect: Dialect,
    pub storage: Arc<Storage>,
    /// The inferred schema (discover); reads take theirs from the catalog.
    pub schema: Option<Value>,
}

impl CsvStream {
    pub fn new(config: CsvConfig) -> Result<Self> {
        // The kit validated the config; this derives the dialect it describes.
        let dialect = config.dialect()?;
        let storage = Arc::new(Storage::new(&config)?);
        Ok(Self {
            config,
            dialect,
            storage,
            schema: None,
        })
    }

    pub async fn files(&self) -> Result<Vec<FileRef>> {
        self.storage.list(&self.config.url).await
    }

    /// Infers the schema from the most recent files.
    pub async fn infer_schema(&mut self) -> Result<()> {
        let files = self.files().await?;
        let mut inference = Inference::default();
        let mut json = JsonInference::default();
        let mut parquet = serde_json::Map::new();
        for file in files.iter().rev().take(SAMPLE_FILES) {
            let raw = self.storage.open(file).await?;
            tokio::task::block_in_place(|| match self.dialect.format {
                Format::Csv => {
                    let mut csv = CsvFile::open(raw, &file.uri, &self.dialect)?;
                    inference.sample(&mut csv, &self.dialect)
                }
                Format::Json | Format::Jsonl => json.sample(
                    decompress(raw, &file.uri)?,
                    &file.uri,
                    self.dialect.format == Format::Jsonl,
                ),
                Format::Parquet => {
                    parquet_file::sample(decompress(raw, &file.uri)?, &file.uri, &mut parquet)
                }
            })?;
        }
        self.schema = Some(match self.dialect.format {
            Format::Csv => inference.schema(&self.dialect),
            Format::Json | Format::Jsonl => json.schema(),
            Format::Parquet => crate::infer::stream_schema(parquet),
        });
        Ok(())
    }

    /// Opens the newest file and reads its header and first rows: proves the files can be
    /// listed, fetched and parsed.
    pub async fn probe(&self) -> Result<()> {
        let files = self.files().await?;
        let newest = files.last().expect("listing never returns no file");
        let raw = self.storage.open(newest).await?;
        let uri = newest.uri.as_str();
        match self.dialect.format {
            Format::Csv => {}
            Format::Json | Format::Jsonl => {
                let lines = self.dialect.format == Format::Jsonl;
                return tokio::task::block_in_place(|| {
                    JsonInference::default().sample(decompress(raw, uri)?, uri, lines)
                });
            }
            Format::Parquet => {
                return tokio::task::block_in_place(|| {
                    parquet_file::sample(decompress(raw, uri)?, uri, &mut serde_json::Map::new())
                });
            }
        }
        tokio::task::block_in_place(|| {
            let mut csv = CsvFile::open(raw, &newest.uri, &self.dialect)?;
            let mut row = ByteRecord::new();
            for _ in 0..CHECK_ROWS {
                if !csv.next_row(&mut row)? {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Reads one file's rows into `out`.
    fn read_file(
        &self,
        raw: crate::storage::ByteReader,
        file: &FileRef,
        selection: &Selection,
        out: &mut RecordWriter,
    ) -> Result<()> {
        let modified = crate::state::format_time(file.last_modified);
        let mut file_columns = Vec::new();
        if selection.file_url {
            file_columns.push((FILE_URL, file.uri.as_str()));
        }
        if selection.file_last_modified {
            file_columns.push((FILE_LAST_MODIFIED, modified.as_str()));
        }
        match self.dialect.format {
            Format::Csv => {}
            Format::Json | Format::Jsonl => {
                let lines = self.dialect.format == Format::Jsonl;
                let input = decompress(raw, &file.uri)?;
                return crate::json::read(input, &file.uri, lines, &file_columns, out);
            }
            Format::Parquet => {
                let input = decompress(raw, &file.uri)?;
                let selected = |name: &str| {
                    selection
                        .kinds
                        .as_ref()
                        .is_none_or(|k| k.contains_key(name))
                };
                return parquet_file::read(input, &file.uri, &selected, &file_columns, out);
            }
        }
        let mut csv = CsvFile::open(raw, &file.uri, &self.dialect)?;
        let header = csv.header().to_vec();
        let mut kinds = selection.kinds(&header);
        if self.dialect.usecols.is_some() {
            kinds.retain(|name, _| csv.used().contains(name));
        }
        let mut writer = RowWriter::new(&self.dialect, &header, &kinds, &file_columns);
        crate::rows::for_each(&mut csv, |row| {
            writer.write(row);
            out.record_json(TrustedJson::new(&writer.json), &writer.changes)
        })?;
        let skipped = csv.skipped;
        if skipped.ragged > 0 {
            tracing::warn!(
                "skipped {} row(s) of '{}' whose field count differs from the header's",
                skipped.ragged,
                file.uri
            );
        }
        if skipped.bad_text > 0 {
            tracing::warn!(
                "skipped {} row(s) of '{}' that are not valid text",
                skipped.bad_text,
                file.uri
            );
        }
        Ok(())
    }
}

/// What the configured catalog selects of the stream.
struct Selection {
    /// `None` when the schema lists no properties: every column, as text.
    kinds: Option<HashMap<String, Kind>>,
    file_url: bool,
    file_last_modified: bool,
}

impl Selection {
    fn new(schema: &Value) -> Self {
        match schema.get("properties").and_then(Value::as_object) {
            Some(properties) => Self {
                kinds: Some(
                    properties
                        .iter()
                        .filter(|(name, _)| !name.starts_with("_ab_source_file_"))
                        .map(|(name, s)| (name.clone(), Kind::from_schema(s)))
                        .collect(),
                ),
                file_url: properties.contains_key(FILE_URL),
                file_last_modified: properties.contains_key(FILE_LAST_MODIFIED),
            },
            None => Self {
                kinds: None,
                file_url: true,
                file_last_modified: true,
            },
        }
    }

    fn kinds(&self, header: &[String]) -> HashMap<String, Kind> {
        match &self.kinds {
            Some(kinds) => kinds.clone(),
            None => header.iter().map(|h| (h.clone(), Kind::String)).collect(),
        }
    }
}

#[async_trait]
impl Stream for CsvStream {
    fn name(&self) -> &str {
        &self.config.dataset_name
    }

    fn json_schema(&self) -> Value {
        self.schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
    }

    fn default_cursor_field(&self) -> Option<Vec<String>> {
        Some(vec![FILE_LAST_MODIFIED.to_string()])
    }

    async fn read(&self, ctx: &ReadContext, out: &mut RecordWriter) -> Result<()> {
        let files = self.files().await?;
        let selection = Selection::new(&ctx.configured.stream.json_schema);
        let mut history = if ctx.is_incremental() {
            Some(FileHistory::from_state(ctx.state.as_ref())?)
        } else {
            None
        };
        for file in &files {
            if history.as_ref().is_some_and(|h| !h.should_read(file)) {
                tracing::debug!("'{}' is unchanged since the last sync", file.uri);
                continue;
            }
            tracing::info!("reading '{}'", file.uri);
            let raw = self.storage.open(file).await?;
            tokio::task::block_in_place(|| self.read_file(raw, file, &selection, out))?;
            if let Some(history) = &mut history {
                history.add(file);
                out.checkpoint(history.to_state());
            }
        }
        if let Some(history) = &history {
            // A sync that read nothing new still hands its state on.
            out.checkpoint(history.to_state());
        }
        Ok(())
    }
}
