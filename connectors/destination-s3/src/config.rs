//! The typed config, following Airbyte's destination-s3 spec (`S3 V2 Destination Spec`), plus a
//! `file://` endpoint for writing to a local directory.

use std::borrow::Cow;

use cdk::schemars::{Schema, SchemaGenerator, json_schema};
use cdk::{Error, JsonSchema, Result, Secret};
use serde::{Deserialize, Deserializer};

/// Writes JSONL, CSV or Parquet files to Amazon S3, an S3-compatible store such as MinIO, or a
/// local directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "S3 V2 Destination Spec")]
pub struct S3Config {
    /// The access key ID to access the S3 bucket. Leave empty (with the secret) to use the
    /// standard AWS credential chain (environment, profile, instance or container role).
    #[schemars(title = "S3 Key ID", example = &"A012345678910EXAMPLE")]
    pub access_key_id: Option<Secret>,
    /// The secret belonging to the access key ID.
    #[schemars(title = "S3 Access Key", example = &"a012345678910ABCDEFGH/AbCdEfGhEXAMPLEKEY")]
    pub secret_access_key: Option<Secret>,
    /// The name of the S3 bucket (with a `file://` endpoint: a directory under it).
    #[schemars(title = "S3 Bucket Name", example = &"airbyte_sync")]
    pub s3_bucket_name: String,
    /// Directory under the bucket where data is written. May use the same variables as
    /// `s3_path_format`.
    #[schemars(title = "S3 Bucket Path", example = &"data_sync/test")]
    pub s3_bucket_path: String,
    /// The region of the S3 bucket (empty: us-east-1, or the store's default).
    #[serde(default = "default_region")]
    #[schemars(title = "S3 Bucket Region", example = &"us-east-1")]
    pub s3_bucket_region: String,
    /// Your S3 endpoint URL for S3-compatible stores such as MinIO (path-style addressing),
    /// e.g. `http://localhost:9000`. Empty for Amazon S3. `file:///some/dir` writes to a local
    /// directory instead, with the bucket as a subdirectory.
    #[schemars(title = "Endpoint", example = &"http://localhost:9000")]
    pub s3_endpoint: Option<String>,
    /// Format of the object path under the bucket path. Variables: `${NAMESPACE}`,
    /// `${STREAM_NAME}`, `${YEAR}`, `${MONTH}`, `${DAY}`, `${HOUR}`, `${MINUTE}`, `${SECOND}`,
    /// `${MILLISECOND}`, `${EPOCH}`, `${UUID}`. Repeated slashes collapse into one.
    #[schemars(
        title = "S3 Path Format",
        example = &"${NAMESPACE}/${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_"
    )]
    pub s3_path_format: Option<String>,
    /// Pattern of the file names, appended to the path format. Placeholders: `{date}`,
    /// `{date:yyyy_MM}`, `{timestamp}`, `{timestamp:millis}`, `{timestamp:micros}`,
    /// `{part_number}`, `{sync_id}`, `{format_extension}`. A part number and the extension are
    /// added when the pattern has none.
    #[schemars(title = "File Name Pattern", example = &"{date}_{timestamp}_{part_number}")]
    pub file_name_pattern: Option<String>,
    /// Format of the files written.
    #[schemars(title = "Output Format")]
    pub format: Format,
}

fn default_region() -> String {
    String::new()
}

/// The output format, chosen by `format_type`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "format_type")]
pub enum Format {
    /// One JSON object per line.
    #[serde(rename = "JSONL")]
    #[schemars(title = "JSON Lines: Newline-delimited JSON")]
    Jsonl {
        /// Whether the record data is kept in `_airbyte_data` or its top-level fields become
        /// fields of the line.
        #[serde(default)]
        #[schemars(title = "Flattening")]
        flattening: Flattening,
        /// Whether the files are compressed (GZIP adds `.gz` to the name).
        #[serde(default = "default_text_compression")]
        #[schemars(title = "Compression")]
        compression: TextCompression,
    },
    /// Comma-separated values with a header row.
    #[serde(rename = "CSV")]
    #[schemars(title = "CSV: Comma-Separated Values")]
    Csv {
        /// Whether the record data is kept as JSON in `_airbyte_data` or its top-level fields
        /// (from the stream's schema) become columns.
        #[serde(default)]
        #[schemars(title = "Flattening")]
        flattening: Flattening,
        /// Whether the files are compressed (GZIP adds `.gz` to the name).
        #[serde(default = "default_text_compression")]
        #[schemars(title = "Compression")]
        compression: TextCompression,
    },
    /// Apache Parquet, one column per top-level field of the stream's schema.
    #[serde(rename = "Parquet")]
    #[schemars(title = "Parquet: Columnar Storage")]
    Parquet(ParquetOptions),
}

/// Options of the Parquet format.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ParquetOptions {
    /// The compression algorithm of the column chunks (any letter case).
    #[serde(default)]
    #[schemars(title = "Compression Codec")]
    pub compression_codec: ParquetCodec,
    /// Size of a row group in MB, as buffered in memory before it is written out.
    #[serde(default = "default_block_size_mb")]
    #[schemars(title = "Block Size (Row Group Size) (MB)", range(min = 1, max = 1024))]
    pub block_size_mb: u32,
    /// Accepted for compatibility; this writer does not pad row groups.
    #[serde(default = "default_max_padding_size_mb")]
    #[schemars(title = "Max Padding Size (MB)", range(min = 0, max = 1024))]
    pub max_padding_size_mb: u32,
    /// Target size of a data page in KB.
    #[serde(default = "default_page_size_kb")]
    #[schemars(title = "Page Size (KB)", range(min = 1, max = 65536))]
    pub page_size_kb: u32,
    /// Largest dictionary page in KB; beyond it a column falls back to plain encoding.
    #[serde(default = "default_dictionary_page_size_kb")]
    #[schemars(title = "Dictionary Page Size (KB)", range(min = 1, max = 65536))]
    pub dictionary_page_size_kb: u32,
    /// Whether columns are dictionary-encoded.
    #[serde(default = "default_dictionary_encoding")]
    #[schemars(title = "Dictionary Encoding")]
    pub dictionary_encoding: bool,
}

fn default_block_size_mb() -> u32 {
    128
}

fn default_max_padding_size_mb() -> u32 {
    8
}

fn default_page_size_kb() -> u32 {
    1024
}

fn default_dictionary_page_size_kb() -> u32 {
    1024
}

fn default_dictionary_encoding() -> bool {
    true
}

/// Whether the record data stays one JSON value or its top-level fields become columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Flattening {
    #[default]
    #[serde(rename = "No flattening")]
    NoFlattening,
    #[serde(rename = "Root level flattening")]
    RootLevel,
}

/// Compression of JSONL and CSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(tag = "compression_type")]
pub enum TextCompression {
    /// Files are written as they are.
    #[serde(rename = "No Compression")]
    #[schemars(title = "No Compression")]
    None,
    /// Files are gzip-compressed and named `*.gz`.
    #[serde(rename = "GZIP")]
    #[schemars(title = "GZIP")]
    Gzip,
}

fn default_text_compression() -> TextCompression {
    TextCompression::Gzip
}

/// Parquet compression codecs, as Airbyte names them; read in any letter case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParquetCodec {
    #[default]
    Uncompressed,
    Snappy,
    Gzip,
    Lzo,
    Brotli,
    Lz4,
    Zstd,
}

impl ParquetCodec {
    pub const ALL: [ParquetCodec; 7] = [
        Self::Uncompressed,
        Self::Snappy,
        Self::Gzip,
        Self::Lzo,
        Self::Brotli,
        Self::Lz4,
        Self::Zstd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Uncompressed => "UNCOMPRESSED",
            Self::Snappy => "SNAPPY",
            Self::Gzip => "GZIP",
            Self::Lzo => "LZO",
            Self::Brotli => "BROTLI",
            Self::Lz4 => "LZ4",
            Self::Zstd => "ZSTD",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(text.trim()))
    }
}

impl<'de> Deserialize<'de> for ParquetCodec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown parquet compression codec '{text}' (expected one of {})",
                Self::ALL.map(Self::name).join(", ")
            ))
        })
    }
}

impl JsonSchema for ParquetCodec {
    fn schema_name() -> Cow<'static, str> {
        "ParquetCodec".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// A string matching a codec name in any letter case (`snappy` as well as `SNAPPY`), so
    /// configs written by hand validate as they deserialise.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
        let pattern = format!(
            "^\\s*({})\\s*$",
            names
                .iter()
                .map(|n| any_case(n))
                .collect::<Vec<_>>()
                .join("|")
        );
        json_schema!({
            "type": "string",
            "default": "UNCOMPRESSED",
            "examples": names,
            "pattern": pattern,
        })
    }
}

/// A regex character-class pattern matching `word` in any letter case.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Where objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Amazon S3 itself.
    Aws,
    /// An S3-compatible store at this URL (path-style).
    Custom(String),
    /// A local directory; buckets are its subdirectories.
    Local(std::path::PathBuf),
}

/// Files roll over at this size (Airbyte targets ≤ 200 MB objects).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 200 << 20;

/// The environment variable that changes the size files roll over at.
pub const MAX_FILE_BYTES_VAR: &str = "DESTINATION_S3_MAX_FILE_BYTES";

/// The size files roll over at: `DESTINATION_S3_MAX_FILE_BYTES` when set, else
/// [`DEFAULT_MAX_FILE_BYTES`]. An operator's knob (and the tests' way to see files roll), not a
/// config option: Airbyte's spec has none, and configs stay interchangeable with it.
pub fn max_file_bytes() -> Result<u64> {
    match std::env::var(MAX_FILE_BYTES_VAR) {
        Err(_) => Ok(DEFAULT_MAX_FILE_BYTES),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::config(format!(
                "{MAX_FILE_BYTES_VAR} '{v}' is not a positive number of bytes"
            ))),
        },
    }
}

/// The environment variable that sets [`gzip_level`].
pub const GZIP_LEVEL_VAR: &str = "DESTINATION_S3_GZIP_LEVEL";

/// The gzip level of text formats: `DESTINATION_S3_GZIP_LEVEL` (0–9) when set, else
/// [`crate::format::GZIP_LEVEL`].
pub fn gzip_level() -> Result<u32> {
    match std::env::var(GZIP_LEVEL_VAR) {
        Err(_) => Ok(crate::format::GZIP_LEVEL),
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(level) if level <= 9 => Ok(level),
            _ => Err(Error::config(format!(
                "{GZIP_LEVEL_VAR} '{v}' is not a gzip level (0 to 9)"
            ))),
        },
    }
}

/// The environment variable that sets [`encode_threads`].
pub const ENCODE_THREADS_VAR: &str = "DESTINATION_S3_ENCODE_THREADS";

/// Threads that gzip text blocks and encode Parquet columns beside each stream's own thread:
/// `DESTINATION_S3_ENCODE_THREADS` when set (0 keeps everything on the stream's thread), else
/// one per core, at most 4, when there are two cores or more.
pub fn encode_threads() -> Result<usize> {
    match std::env::var(ENCODE_THREADS_VAR) {
        Err(_) => Ok(
            match std::thread::available_parallelism().map(usize::from) {
                Ok(n) if n >= 2 => n.min(4),
                _ => 0,
            },
        ),
        Ok(v) => v.trim().parse::<usize>().map_err(|_| {
            Error::config(format!(
                "{ENCODE_THREADS_VAR} '{v}' is not a number of threads"
            ))
        }),
    }
}

impl S3Config {
    pub fn access_key(&self) -> Option<&str> {
        non_empty(self.access_key_id.as_ref().map(|s| s.expose().as_str()))
    }

    pub fn secret_key(&self) -> Option<&str> {
        non_empty(self.secret_access_key.as_ref().map(|s| s.expose().as_str()))
    }

    pub fn endpoint(&self) -> Result<Endpoint> {
        let Some(url) = non_empty(self.s3_endpoint.as_deref()) else {
            return Ok(Endpoint::Aws);
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::config(format!(
                    "'s3_endpoint' '{url}' must be an absolute file:// URL, like file:///data/lake"
                )));
            }
            return Ok(Endpoint::Local(path.into()));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(Endpoint::Custom(url.trim_end_matches('/').to_string()))
        } else if url.contains("://") {
            Err(Error::config(format!(
                "'s3_endpoint' '{url}' must start with http://, https:// or file://"
            )))
        } else {
            Ok(Endpoint::Custom(format!(
                "https://{}",
                url.trim_end_matches('/')
            )))
        }
    }

    pub fn region(&self) -> &str {
        non_empty(Some(self.s3_bucket_region.as_str())).unwrap_or("us-east-1")
    }
}

/// Rules the JSON Schema cannot say.
impl cdk::config::Validate for S3Config {
    fn validate(&self) -> Result<()> {
        if self.s3_bucket_name.trim().is_empty() {
            return Err(Error::config("'s3_bucket_name' must not be empty"));
        }
        match (self.access_key(), self.secret_key()) {
            (Some(_), None) => {
                return Err(Error::config(
                    "'access_key_id' is set but 'secret_access_key' is not",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "'secret_access_key' is set but 'access_key_id' is not",
                ));
            }
            _ => {}
        }
        if let Format::Parquet(p) = &self.format
            && p.compression_codec == ParquetCodec::Lzo
        {
            return Err(Error::config(
                "parquet compression codec 'LZO' is not supported by this destination; \
                 use SNAPPY, GZIP, ZSTD, LZ4, BROTLI or UNCOMPRESSED",
            ));
        }
        self.endpoint()?;
        Ok(())
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> serde_json::Value {
        cdk::spec::connection_specification::<S3Config>()
    }

    fn parse(config: serde_json::Value) -> Result<S3Config> {
        cdk::config::from_value(&config, &spec())
    }

    #[test]
    fn the_seed_minio_example_is_accepted() {
        let config = parse(
            json!({"s3_bucket_name": "datalake", "s3_bucket_path": "bronze/",
            "s3_bucket_region": "us-east-1", "access_key_id": "minioadmin",
            "secret_access_key": "minioadmin", "s3_endpoint": "http://minio:9000",
            "format": {"format_type": "Parquet", "compression_codec": "snappy"}}),
        )
        .unwrap();
        let Format::Parquet(p) = &config.format else {
            panic!("{config:?}")
        };
        assert_eq!(p.compression_codec, ParquetCodec::Snappy);
        assert_eq!(p.block_size_mb, 128);
        assert_eq!(
            config.endpoint().unwrap(),
            Endpoint::Custom("http://minio:9000".into())
        );
    }

    #[test]
    fn codec_names_in_any_case() {
        for text in [
            "snappy", "SNAPPY", "Snappy", "zstd", "Lz4", "brotli", "gzip",
        ] {
            let config = parse(json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
                "format": {"format_type": "Parquet", "compression_codec": text}}));
            assert!(config.is_ok(), "{text}: {config:?}");
        }
        let err = parse(json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
            "format": {"format_type": "Parquet", "compression_codec": "lzma"}}))
        .unwrap_err();
        assert!(err.message.contains("compression_codec"), "{}", err.message);
        let lzo = parse(json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
            "format": {"format_type": "Parquet", "compression_codec": "LZO"}}))
        .unwrap_err();
        assert!(lzo.message.contains("'LZO'"), "{}", lzo.message);
    }

    #[test]
    fn text_formats_default_to_gzip_without_flattening() {
        let config = parse(json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
            "format": {"format_type": "JSONL"}}))
        .unwrap();
        assert!(matches!(
            config.format,
            Format::Jsonl {
                flattening: Flattening::NoFlattening,
                compression: TextCompression::Gzip
            }
        ));
        let config = parse(json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
            "format": {"format_type": "CSV", "flattening": "Root level flattening",
                       "compression": {"compression_type": "No Compression"}}}))
        .unwrap();
        assert!(matches!(
            config.format,
            Format::Csv {
                flattening: Flattening::RootLevel,
                compression: TextCompression::None
            }
        ));
    }

    #[test]
    fn endpoints() {
        let with = |endpoint: &str| {
            parse(
                json!({"s3_bucket_name": "b", "s3_bucket_path": "p", "s3_endpoint": endpoint,
                "format": {"format_type": "JSONL"}}),
            )
            .and_then(|c| c.endpoint())
        };
        assert_eq!(with("").unwrap(), Endpoint::Aws);
        assert_eq!(
            with("file:///tmp/lake").unwrap(),
            Endpoint::Local("/tmp/lake".into())
        );
        assert_eq!(
            with("minio:9000/").unwrap(),
            Endpoint::Custom("https://minio:9000".into())
        );
        assert!(
            with("file://relative")
                .unwrap_err()
                .message
                .contains("'file://relative'")
        );
        assert!(with("ftp://x").unwrap_err().message.contains("'ftp://x'"));
    }

    #[test]
    fn half_a_key_pair_is_refused() {
        let err = parse(json!({"s3_bucket_name": "b", "s3_bucket_path": "p",
            "access_key_id": "AKIA", "format": {"format_type": "JSONL"}}))
        .unwrap_err();
        assert!(
            err.message.contains("'secret_access_key'"),
            "{}",
            err.message
        );
    }
}
