//! The typed config: the top-level shape of Airbyte's source-file (`dataset_name`, `format`,
//! `url`, `provider` on `storage`) with the CSV options of Airbyte's file-based sources under
//! `csv_options`, named as there so options carry over.

use std::collections::HashSet;

use cdk::{Error, JsonSchema, Result, Secret};
use serde::Deserialize;

/// Reads CSV, JSON Lines, JSON or Parquet files from local disk, HTTPS or S3 as one stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(title = "CSV File Source Spec")]
pub struct CsvConfig {
    /// The name of the final table to replicate this file into (letters, digits and
    /// underscores).
    #[schemars(title = "Dataset Name", extend("order" = 0))]
    pub dataset_name: String,
    /// The format of the file(s) to replicate, in any letter case: csv, json (an array of
    /// objects, or one object per file), jsonl (one object a line) or parquet.
    #[serde(default = "default_format")]
    #[schemars(
        title = "File Format",
        extend("order" = 1, "examples" = ["csv", "jsonl", "json", "parquet"])
    )]
    pub format: String,
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
    /// Options of pandas' `read_csv`, as a JSON object in a string, as Airbyte's source-file
    /// takes them (e.g. `{"sep": ";", "header": null, "names": ["id", "name"]}`). Options
    /// this source does not implement fail `check`, naming them.
    #[schemars(
        title = "Reader Options",
        extend("order" = 4, "examples" = ["{}", "{\"sep\": \";\"}", "{\"sep\": \"\\t\", \"header\": null, \"names\": [\"id\", \"name\"]}"])
    )]
    pub reader_options: Option<String>,
    /// How the CSV text is parsed and typed, with the names of Airbyte's file-based CSV
    /// format. Without it (and without `reader_options`) files are read as source-file reads
    /// them.
    #[schemars(title = "CSV Options", extend("order" = 5))]
    pub csv_options: Option<CsvOptions>,
}

fn default_format() -> String {
    "csv".into()
}

/// The file formats this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// A top-level array of objects, or one object per file.
    Json,
    /// One JSON object a line.
    Jsonl,
    Parquet,
}

impl Format {
    const NAMES: [(&'static str, Format); 4] = [
        ("csv", Format::Csv),
        ("json", Format::Json),
        ("jsonl", Format::Jsonl),
        ("parquet", Format::Parquet),
    ];

    /// The format named `text` in any letter case; a config error naming the supported ones.
    pub fn parse(text: &str) -> Result<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                Error::config(format!(
                    "format '{text}' is not supported; this source reads {}",
                    Self::NAMES.map(|(n, _)| n).join(", ")
                ))
            })
    }
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
    /// The file's URL again, as some forms ask for it under the provider; when given it
    /// must equal `url`.
    #[schemars(title = "User Provided Storage URL")]
    pub url: Option<String>,
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

/// How a file's columns get their names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// The first row (after the skipped ones) holds the names.
    FromFile,
    /// The first row is a header, but these names replace it (pandas `names` with `header=0`).
    Replaced(Vec<String>),
    /// These names; every row is data.
    Given(Vec<String>),
    /// `<prefix>0`, `<prefix>1`, …; every row is data.
    Numbered(&'static str),
}

/// How fields are separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Separator {
    /// One byte, with quoting (the csv crate).
    Byte(u8),
    /// A literal of several characters, line by line, no quoting (pandas' python engine).
    Literal(Vec<u8>),
    /// Runs of spaces and tabs (pandas' `\s+`), line by line, leading blanks ignored.
    Whitespace,
}

/// A column picked by `usecols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    Name(String),
    Index(usize),
}

/// Values never null: a bitmap of lengths and one of first bytes rejects most fields before
/// any comparison, so a long null list (pandas' defaults) costs little per field.
#[derive(Debug, Clone, Default)]
pub struct NullSet {
    values: Vec<Vec<u8>>,
    lengths: u64,
    first: [u64; 4],
    empty: bool,
}

impl NullSet {
    pub fn new(values: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut set = Self::default();
        for v in values {
            match v.first() {
                None => set.empty = true,
                Some(b) => {
                    set.lengths |= 1 << v.len().min(63);
                    set.first[usize::from(*b >> 6)] |= 1 << (b & 63);
                }
            }
            set.values.push(v);
        }
        set
    }

    #[inline]
    pub fn contains(&self, field: &[u8]) -> bool {
        match field.first() {
            None => self.empty,
            Some(b) => {
                self.lengths & (1 << field.len().min(63)) != 0
                    && self.first[usize::from(*b >> 6)] & (1 << (b & 63)) != 0
                    && self.values.iter().any(|v| v == field)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The options resolved to what the parser and the typing need.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub format: Format,
    pub separator: Separator,
    pub quote: u8,
    /// False for pandas' `QUOTE_NONE`: quote characters are text.
    pub quoting: bool,
    pub escape: Option<u8>,
    pub double_quote: bool,
    /// `None` for UTF-8 (no transcoding).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    pub header: Header,
    pub skip_before: u64,
    pub skip_after: u64,
    /// Rows of the file (0-based, counted before the header) that are skipped.
    pub skip_rows: Vec<u64>,
    /// Rows dropped at the end of each file.
    pub skip_footer: u64,
    /// Data rows read at most per file.
    pub max_rows: Option<u64>,
    pub usecols: Option<Vec<ColumnRef>>,
    /// The rest of a line after it is ignored; a line starting with it is no row.
    pub comment: Option<u8>,
    /// Whether a line with nothing on it is no row (otherwise a row of nulls).
    pub skip_blank_lines: bool,
    pub null_values: NullSet,
    pub strings_can_be_null: bool,
    pub true_values: Vec<Vec<u8>>,
    pub false_values: Vec<Vec<u8>>,
    pub infer: bool,
    /// pandas' typing: no date inference, short rows padded with nulls.
    pub pandas: bool,
    /// Column type overrides (pandas `dtype`, `parse_dates`), by column name.
    pub types: Vec<(String, crate::values::Kind)>,
    /// Every column gets this type (pandas `dtype` given as one name).
    pub all_types: Option<crate::values::Kind>,
    /// Number spelling: thousands separator and decimal point (pandas).
    pub thousands: Option<u8>,
    pub decimal: u8,
    /// Columns whose dates and times are rewritten as pandas writes timestamps.
    pub parse_dates: Vec<String>,
    pub skip_ragged: bool,
    pub skip_bad_encoding: bool,
}

impl Dialect {
    #[inline]
    pub fn is_null(&self, field: &[u8]) -> bool {
        self.null_values.contains(field)
    }

    /// Whether rows are rewritten after parsing (options the plain path never pays for).
    pub fn rewrites_rows(&self) -> bool {
        self.comment.is_some()
            || self.thousands.is_some()
            || self.decimal != b'.'
            || !self.parse_dates.is_empty()
    }

    /// The type `dtype`/`parse_dates` force on a column, if any.
    pub fn forced_kind(&self, column: &str) -> Option<crate::values::Kind> {
        self.types
            .iter()
            .rev()
            .find(|(name, _)| name == column)
            .map(|(_, k)| *k)
            .or(self.all_types)
    }

    /// pandas' `read_csv` defaults, as Airbyte's source-file reads a CSV file.
    pub fn pandas(format: Format) -> Self {
        Self {
            format,
            separator: Separator::Byte(b','),
            quote: b'"',
            quoting: true,
            escape: None,
            double_quote: true,
            encoding: None,
            header: Header::FromFile,
            skip_before: 0,
            skip_after: 0,
            skip_rows: Vec::new(),
            skip_footer: 0,
            max_rows: None,
            usecols: None,
            comment: None,
            skip_blank_lines: true,
            null_values: NullSet::new(
                crate::pandas::DEFAULT_NA
                    .iter()
                    .map(|s| s.as_bytes().to_vec()),
            ),
            strings_can_be_null: true,
            true_values: vec![b"true".to_vec()],
            false_values: vec![b"false".to_vec()],
            infer: true,
            pandas: true,
            types: Vec::new(),
            all_types: None,
            thousands: None,
            decimal: b'.',
            parse_dates: Vec::new(),
            skip_ragged: false,
            skip_bad_encoding: false,
        }
    }
}

/// An encoding by its WHATWG label or Python codec name (`latin1`, `latin-1`, `utf_16`);
/// `None` for UTF-8.
pub fn encoding(label: &str, field: &str) -> Result<Option<&'static encoding_rs::Encoding>> {
    let label = label.trim().to_ascii_lowercase().replace('_', "-");
    if matches!(label.as_str(), "utf8" | "utf-8" | "") {
        return Ok(None);
    }
    let found = encoding_rs::Encoding::for_label(label.as_bytes())
        .or_else(|| encoding_rs::Encoding::for_label(label.replace('-', "").as_bytes()))
        .ok_or_else(|| Error::config(format!("{field}: unknown encoding '{label}'")))?;
    Ok(Some(found).filter(|e| *e != encoding_rs::UTF_8))
}

impl CsvOptions {
    /// Checks the options and resolves them; a bad option is a config error naming it.
    pub fn dialect(&self) -> Result<Dialect> {
        let encoding = encoding(&self.encoding, "csv_options.encoding")?;
        let header = match &self.header_definition {
            HeaderDefinition::FromCsv => Header::FromFile,
            HeaderDefinition::Autogenerated => Header::Numbered("f"),
            HeaderDefinition::UserProvided { column_names } => {
                if column_names.is_empty() {
                    return Err(Error::config(
                        "csv_options.header_definition.column_names: give at least one column name",
                    ));
                }
                duplicates(column_names, "csv_options.header_definition.column_names")?;
                Header::Given(column_names.clone())
            }
        };
        let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase().into_bytes()).collect();
        Ok(Dialect {
            format: Format::Csv,
            separator: Separator::Byte(one_byte(&self.delimiter, "csv_options.delimiter")?),
            quote: one_byte(&self.quote_char, "csv_options.quote_char")?,
            quoting: true,
            escape: self
                .escape_char
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| one_byte(s, "csv_options.escape_char"))
                .transpose()?,
            double_quote: self.double_quote,
            encoding,
            header,
            skip_before: self.skip_rows_before_header,
            skip_after: self.skip_rows_after_header,
            skip_rows: Vec::new(),
            skip_footer: 0,
            max_rows: None,
            usecols: None,
            comment: None,
            skip_blank_lines: true,
            null_values: NullSet::new(self.null_values.iter().map(|s| s.as_bytes().to_vec())),
            strings_can_be_null: self.strings_can_be_null,
            true_values: lower(&self.true_values),
            false_values: lower(&self.false_values),
            infer: self.inference_type == InferenceType::PrimitiveTypesOnly,
            pandas: false,
            types: Vec::new(),
            all_types: None,
            thousands: None,
            decimal: b'.',
            parse_dates: Vec::new(),
            skip_ragged: self.ignore_errors_on_fields_mismatch,
            skip_bad_encoding: self.ignore_encoding_errors,
        })
    }
}

/// One ASCII character; `\t` (two characters) means tab.
pub fn one_byte(s: &str, field: &str) -> Result<u8> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(*b),
        _ => Err(Error::config(format!(
            "{field}: must be exactly one ASCII character other than a line end, got {s:?}"
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
        self.dialect().map(drop)
    }
}

impl CsvConfig {
    /// Checks the config and resolves how files are read: `csv_options` when given, else
    /// `reader_options` over pandas' defaults (Airbyte source-file's behaviour).
    pub fn dialect(&self) -> Result<Dialect> {
        if self.dataset_name.trim().is_empty() {
            return Err(Error::config("dataset_name must not be empty"));
        }
        if self.url.trim().is_empty() {
            return Err(Error::config("url must not be empty"));
        }
        if let Provider::Https(HttpsProvider { url: Some(u), .. }) = &self.provider
            && !u.trim().is_empty()
            && u.trim() != self.url.trim()
        {
            return Err(Error::config(format!(
                "provider.url '{u}' differs from url '{}'; give the file's URL once, in url",
                self.url
            )));
        }
        let format = Format::parse(&self.format)?;
        let options = self
            .reader_options
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        match (&self.csv_options, options) {
            (Some(_), Some(_)) => Err(Error::config(
                "give either csv_options or reader_options, not both",
            )),
            (Some(csv), None) => Ok(Dialect {
                format,
                ..csv.dialect()?
            }),
            (None, options) => {
                let mut dialect = Dialect::pandas(format);
                if let Some(text) = options {
                    crate::pandas::apply(text, &mut dialect)?;
                }
                Ok(dialect)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_sets_match_exactly() {
        let set = NullSet::new(["", "NA", "#N/A N/A", "1.#IND"].map(|s| s.as_bytes().to_vec()));
        for yes in ["", "NA", "#N/A N/A", "1.#IND"] {
            assert!(set.contains(yes.as_bytes()), "{yes:?}");
        }
        for no in ["N", "NA ", "na", "1", "1.#INF", "#N/A"] {
            assert!(!set.contains(no.as_bytes()), "{no:?}");
        }
        let none = NullSet::new(Vec::new());
        assert!(none.is_empty() && !none.contains(b"") && !none.contains(b"NA"));
        let long = "x".repeat(80);
        assert!(NullSet::new([long.clone().into_bytes()]).contains(long.as_bytes()));
    }

    #[test]
    fn formats_in_any_case_and_refused_by_name() {
        assert_eq!(Format::parse("CSV").unwrap(), Format::Csv);
        assert_eq!(Format::parse(" Parquet ").unwrap(), Format::Parquet);
        assert_eq!(Format::parse("jsonl").unwrap(), Format::Jsonl);
        let err = Format::parse("feather").unwrap_err();
        assert!(
            err.message.contains("'feather'") && err.message.contains("csv, json, jsonl, parquet")
        );
    }
}
