//! The typed config: the top-level shape of Airbyte's source-file (`dataset_name`, `format`,
//! `url`, `provider` on `storage`) with the CSV options of Airbyte's file-based sources under
//! `csv_options`, named as there so options carry over.

use std::collections::HashSet;

use cdk::{Error, JsonSchema, Result, Secret};
use serde::Deserialize;

/// Reads CSV files from local disk, HTTPS or S3 as one stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "CSV File Source Spec")]
pub struct CsvConfig {
    /// The name of the final table to replicate this file into (letters, digits and
    /// underscores).
    #[schemars(title = "Dataset Name", extend("order" = 0))]
    pub dataset_name: String,
    /// The format of the file(s) to replicate.
    #[serde(default)]
    #[schemars(title = "File Format", extend("order" = 1))]
    pub format: FileFormat,
    /// The path of the file(s) to read: a path or URL, or a glob (`*`, `?`, `[…]`, `**`) of
    /// files that together make the stream. A `.gz` or `.zst` extension means compressed.
    #[schemars(
        title = "URL",
        extend("order" = 2, "examples" = ["https://storage.example.com/sales.csv", "/data/sales/*.csv.gz", "s3://bucket/sales/**/*.csv"])
    )]
    pub url: String,
    /// The storage provider where the file(s) live.
    #[serde(default)]
    #[schemars(title = "Storage Provider", extend("order" = 3))]
    pub provider: Provider,
    /// How the CSV text is parsed and typed.
    #[serde(default)]
    #[schemars(title = "CSV Options", extend("order" = 4))]
    pub csv_options: CsvOptions,
}

/// The file format (CSV only).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
pub enum FileFormat {
    #[default]
    #[serde(rename = "csv")]
    Csv,
}

/// Where the files are.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(tag = "storage")]
pub enum Provider {
    /// Files on the machine (or volume) the connector runs on.
    #[default]
    #[serde(rename = "local")]
    #[schemars(title = "Local Filesystem")]
    Local,
    /// A file served over HTTP(S).
    #[serde(rename = "HTTPS")]
    #[schemars(title = "HTTPS: Public Web")]
    Https(HttpsProvider),
    /// Objects in Amazon S3 or an S3-compatible store (MinIO, …).
    #[serde(rename = "S3")]
    #[schemars(title = "S3: Amazon Web Services")]
    S3(S3Provider),
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct HttpsProvider {
    /// Add a User-Agent header to requests.
    #[serde(default)]
    #[schemars(title = "User-Agent")]
    pub user_agent: bool,
    /// Extra request headers (e.g. an API key); their values are kept secret.
    #[serde(default)]
    #[schemars(title = "Headers")]
    pub headers: Vec<HttpHeader>,
    /// User name for HTTP basic authentication.
    #[schemars(title = "Username")]
    pub username: Option<String>,
    /// Password for HTTP basic authentication.
    #[schemars(title = "Password")]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct HttpHeader {
    #[schemars(title = "Header Name")]
    pub header_name: String,
    #[schemars(title = "Header Value")]
    pub header_value: Secret,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct S3Provider {
    /// The bucket, when the URL is a key or key glob rather than `s3://bucket/key`.
    #[schemars(title = "Bucket")]
    pub bucket: Option<String>,
    /// The region of the bucket.
    #[schemars(title = "Region", extend("examples" = ["us-east-1"]))]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (e.g. `http://minio:9000`); path-style addressing
    /// is used with it. Leave empty for AWS.
    #[schemars(title = "Endpoint")]
    pub endpoint: Option<String>,
    /// Access key id; without keys the standard AWS credential chain is used.
    #[schemars(title = "AWS Access Key ID")]
    pub aws_access_key_id: Option<Secret>,
    /// Secret access key.
    #[schemars(title = "AWS Secret Access Key")]
    pub aws_secret_access_key: Option<Secret>,
}

/// CSV parsing and typing options (as in Airbyte's file-based CSV format).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CsvOptions {
    /// The character delimiting fields; `\t` for tab-separated files.
    #[schemars(title = "Delimiter")]
    pub delimiter: String,
    /// The character quoting fields that contain delimiters, quotes or line ends.
    #[schemars(title = "Quote Character")]
    pub quote_char: String,
    /// The character escaping the next character inside quotes (none by default).
    #[schemars(title = "Escape Character")]
    pub escape_char: Option<String>,
    /// Whether two quote characters inside a quoted field stand for one.
    #[schemars(title = "Double Quote")]
    pub double_quote: bool,
    /// The text encoding: utf8, or any WHATWG label such as latin1, windows-1252, utf-16le.
    #[schemars(title = "Encoding")]
    pub encoding: String,
    /// Where column names come from.
    #[schemars(title = "CSV Header Definition")]
    pub header_definition: HeaderDefinition,
    /// Rows skipped before the header row (or before the data when there is none).
    #[schemars(title = "Skip Rows Before Header")]
    pub skip_rows_before_header: u64,
    /// Rows skipped after the header row.
    #[schemars(title = "Skip Rows After Header")]
    pub skip_rows_after_header: u64,
    /// Values read as null (case sensitive), e.g. `NA`, `NULL`, ``.
    #[schemars(title = "Null Values")]
    pub null_values: Vec<String>,
    /// Whether string columns may be null when a value is one of the null values.
    #[schemars(title = "Strings Can Be Null")]
    pub strings_can_be_null: bool,
    /// Values read as true in boolean columns (case insensitive).
    #[schemars(title = "True Values")]
    pub true_values: Vec<String>,
    /// Values read as false in boolean columns (case insensitive).
    #[schemars(title = "False Values")]
    pub false_values: Vec<String>,
    /// Whether column types are inferred from a sample of the files; "None" makes every
    /// column a nullable string.
    #[schemars(title = "Inference Type")]
    pub inference_type: InferenceType,
    /// Skip, with a warning, rows with more or fewer fields than the header instead of
    /// failing the sync.
    #[schemars(title = "Ignore errors on field mismatch")]
    pub ignore_errors_on_fields_mismatch: bool,
    /// Skip, with a warning, rows that are not valid text in the encoding instead of failing
    /// the sync.
    #[schemars(title = "Ignore encoding errors")]
    pub ignore_encoding_errors: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            delimiter: ",".into(),
            quote_char: "\"".into(),
            escape_char: None,
            double_quote: true,
            encoding: "utf8".into(),
            header_definition: HeaderDefinition::FromCsv,
            skip_rows_before_header: 0,
            skip_rows_after_header: 0,
            null_values: Vec::new(),
            strings_can_be_null: true,
            true_values: strings(&["y", "yes", "t", "true", "on", "1"]),
            false_values: strings(&["n", "no", "f", "false", "off", "0"]),
            inference_type: InferenceType::PrimitiveTypesOnly,
            ignore_errors_on_fields_mismatch: false,
            ignore_encoding_errors: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "header_definition_type")]
pub enum HeaderDefinition {
    /// The first row (after the skipped ones) holds the column names.
    #[serde(rename = "From CSV")]
    #[schemars(title = "From CSV")]
    FromCsv,
    /// Columns are named f0, f1, …; every row is data.
    #[serde(rename = "Autogenerated")]
    #[schemars(title = "Autogenerated")]
    Autogenerated,
    /// Columns take the names given here; every row is data.
    #[serde(rename = "User Provided")]
    #[schemars(title = "User Provided")]
    UserProvided {
        /// The column names, in file order.
        #[schemars(title = "Column Names")]
        column_names: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum InferenceType {
    #[serde(rename = "None")]
    None,
    #[serde(rename = "Primitive Types Only")]
    PrimitiveTypesOnly,
}

/// The CSV options resolved to what the parser and the typing need.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub double_quote: bool,
    /// `None` for UTF-8 (no transcoding).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    pub header: HeaderDefinition,
    pub skip_before: u64,
    pub skip_after: u64,
    /// Few values: a linear scan beats hashing every field.
    pub null_values: Vec<Vec<u8>>,
    pub strings_can_be_null: bool,
    pub true_values: Vec<Vec<u8>>,
    pub false_values: Vec<Vec<u8>>,
    pub infer: bool,
    pub skip_ragged: bool,
    pub skip_bad_encoding: bool,
}

impl Dialect {
    pub fn is_null(&self, field: &[u8]) -> bool {
        self.null_values.iter().any(|v| v == field)
    }
}

impl CsvOptions {
    /// Checks the options and resolves them; a bad option is a config error naming it.
    pub fn dialect(&self) -> Result<Dialect> {
        let encoding = match self.encoding.trim().to_ascii_lowercase().as_str() {
            "utf8" | "utf-8" | "utf_8" | "" => None,
            label => Some(
                encoding_rs::Encoding::for_label(label.replace('_', "-").as_bytes()).ok_or_else(
                    || Error::config(format!("csv_options.encoding: unknown encoding '{label}'")),
                )?,
            ),
        };
        let encoding = encoding.filter(|e| *e != encoding_rs::UTF_8);
        if let HeaderDefinition::UserProvided { column_names } = &self.header_definition {
            if column_names.is_empty() {
                return Err(Error::config(
                    "csv_options.header_definition.column_names: give at least one column name",
                ));
            }
            duplicates(column_names, "csv_options.header_definition.column_names")?;
        }
        let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase().into_bytes()).collect();
        Ok(Dialect {
            delimiter: one_byte(&self.delimiter, "delimiter")?,
            quote: one_byte(&self.quote_char, "quote_char")?,
            escape: self
                .escape_char
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| one_byte(s, "escape_char"))
                .transpose()?,
            double_quote: self.double_quote,
            encoding,
            header: self.header_definition.clone(),
            skip_before: self.skip_rows_before_header,
            skip_after: self.skip_rows_after_header,
            null_values: self
                .null_values
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            strings_can_be_null: self.strings_can_be_null,
            true_values: lower(&self.true_values),
            false_values: lower(&self.false_values),
            infer: self.inference_type == InferenceType::PrimitiveTypesOnly,
            skip_ragged: self.ignore_errors_on_fields_mismatch,
            skip_bad_encoding: self.ignore_encoding_errors,
        })
    }
}

/// One ASCII character; `\t` (two characters) means tab.
fn one_byte(s: &str, field: &str) -> Result<u8> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(*b),
        _ => Err(Error::config(format!(
            "csv_options.{field}: must be exactly one ASCII character other than a line end, got {s:?}"
        ))),
    }
}

/// Column names must be unique: a record can hold a key once.
pub fn duplicates(names: &[String], what: &str) -> Result<()> {
    let mut seen = HashSet::new();
    match names.iter().find(|n| !seen.insert(n.as_str())) {
        Some(dup) => Err(Error::config(format!(
            "{what}: column name '{dup}' appears more than once"
        ))),
        None => Ok(()),
    }
}

/// Rules the JSON Schema cannot say, the CSV options included.
impl cdk::config::Validate for CsvConfig {
    fn validate(&self) -> Result<()> {
        if self.dataset_name.trim().is_empty() {
            return Err(Error::config("dataset_name must not be empty"));
        }
        if self.url.trim().is_empty() {
            return Err(Error::config("url must not be empty"));
        }
        self.csv_options.dialect().map(drop)
    }
}
