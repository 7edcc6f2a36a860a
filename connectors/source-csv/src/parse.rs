//! From a file's raw bytes to checked CSV rows: decompression by extension, transcoding to
//! UTF-8, BOM, skipped rows, the header, and rows with the wrong number of fields or invalid
//! text (an error naming file and line, or skipped and counted when the options say so).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};

use csv::{ByteRecord, ReaderBuilder};

use crate::config::{ColumnRef, Dialect, Header, Separator};
use crate::rewrite;
use crate::storage::ByteReader;
use cdk::{Error, Result};

const BUFFER: usize = 256 << 10;

/// Decompresses by the name's extension (ignoring a URL query).
pub fn decompress(raw: ByteReader, uri: &str) -> Result<ByteReader> {
    let name = uri
        .split(['?', '#'])
        .next()
        .unwrap_or(uri)
        .to_ascii_lowercase();
    Ok(if name.ends_with(".gz") || name.ends_with(".gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            BUFFER, raw,
        )))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUFFER, raw))
                .map_err(|e| Error::system(format!("cannot start zstd for '{uri}': {e}")))?,
        )
    } else if name.ends_with(".bz2") {
        Box::new(bzip2::read::MultiBzDecoder::new(BufReader::with_capacity(
            BUFFER, raw,
        )))
    } else {
        raw
    })
}

/// UTF-8 text without a BOM: transcoded from the configured encoding, or passed through.
fn text(input: ByteReader, dialect: &Dialect) -> ByteReader {
    match dialect.encoding {
        Some(encoding) => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding))
                .build(input),
        ),
        None => Box::new(SkipBom::new(input)),
    }
}

/// Drops a leading UTF-8 byte order mark.
struct SkipBom {
    inner: BufReader<ByteReader>,
    checked: bool,
}

impl SkipBom {
    fn new(inner: ByteReader) -> Self {
        Self {
            inner: BufReader::with_capacity(BUFFER, inner),
            checked: false,
        }
    }
}

impl Read for SkipBom {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            if self.inner.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
                self.inner.consume(3);
            }
        }
        self.inner.read(buf)
    }
}

/// Rows skipped for a reason the options allow.
#[derive(Debug, Default, Clone, Copy)]
pub struct Skipped {
    pub ragged: u64,
    pub bad_text: u64,
}

/// Where raw rows come from: the csv crate, or lines split on a literal or on blanks (pandas'
/// python engine for separators of several characters: no quoting).
enum Rows {
    Csv(csv::Reader<ByteReader>),
    Lines {
        input: BufReader<ByteReader>,
        separator: Separator,
        line: u64,
        bytes: u64,
        text: Vec<u8>,
    },
}

impl Rows {
    fn new(input: ByteReader, dialect: &Dialect) -> Self {
        match &dialect.separator {
            Separator::Byte(b) => Rows::Csv(
                ReaderBuilder::new()
                    .delimiter(*b)
                    .quote(dialect.quote)
                    .quoting(dialect.quoting)
                    .escape(dialect.escape)
                    .double_quote(dialect.double_quote)
                    .comment(dialect.comment)
                    .has_headers(false)
                    .flexible(true)
                    .buffer_capacity(BUFFER)
                    .from_reader(input),
            ),
            other => Rows::Lines {
                input: BufReader::with_capacity(BUFFER, input),
                separator: other.clone(),
                line: 0,
                bytes: 0,
                text: Vec::new(),
            },
        }
    }

    fn position(&self) -> u64 {
        match self {
            Rows::Csv(r) => r.position().byte(),
            Rows::Lines { bytes, .. } => *bytes,
        }
    }
}

/// One file's rows, checked.
pub struct CsvFile<'a> {
    uri: String,
    dialect: &'a Dialect,
    rows: Rows,
    /// Raw rows read so far (for `skip_rows`).
    raw_index: u64,
    header: Vec<String>,
    /// The header's names that `usecols` keeps (all when it is not set).
    used: Vec<String>,
    /// A row read while resolving the header that is data (numbered names).
    pending: Option<ByteRecord>,
    /// Blank lines seen before the next row, when they are rows of nulls.
    blank: u64,
    /// Rows held back while `skip_footer` rows may still follow.
    held: VecDeque<ByteRecord>,
    /// Data rows handed out.
    given: u64,
    /// Whether rows pass through `rewrite` (decided once per file).
    rewrites: bool,
    pub skipped: Skipped,
}

impl<'a> CsvFile<'a> {
    /// Opens the CSV layer over the file's bytes and reads up to the first data row.
    pub fn open(raw: ByteReader, uri: &str, dialect: &'a Dialect) -> Result<Self> {
        let input = text(decompress(raw, uri)?, dialect);
        let mut file = Self {
            uri: uri.to_string(),
            dialect,
            rows: Rows::new(input, dialect),
            raw_index: 0,
            header: Vec::new(),
            used: Vec::new(),
            pending: None,
            blank: 0,
            held: VecDeque::new(),
            given: 0,
            rewrites: dialect.rewrites_rows(),
            skipped: Skipped::default(),
        };
        let mut row = ByteRecord::new();
        for _ in 0..dialect.skip_before {
            if !file.read_raw(&mut row)? {
                break;
            }
        }
        file.header = match &dialect.header {
            Header::FromFile | Header::Replaced(_) => {
                if file.read_raw(&mut row)? {
                    match &dialect.header {
                        Header::Replaced(names) => names.clone(),
                        _ => file.header_from(&row)?,
                    }
                } else {
                    Vec::new()
                }
            }
            Header::Given(names) => names.clone(),
            Header::Numbered(_) => Vec::new(),
        };
        for _ in 0..dialect.skip_after {
            if !file.read_raw(&mut row)? {
                break;
            }
        }
        if let Header::Numbered(prefix) = dialect.header {
            let mut first = ByteRecord::new();
            if file.read_raw(&mut first)? {
                file.header = (0..first.len()).map(|i| format!("{prefix}{i}")).collect();
                file.pending = Some(first);
            }
        }
        file.blank = 0;
        file.used = file.used_columns()?;
        Ok(file)
    }

    fn used_columns(&self) -> Result<Vec<String>> {
        let Some(picked) = &self.dialect.usecols else {
            return Ok(self.header.clone());
        };
        let mut used = Vec::new();
        for column in picked {
            let name = match column {
                ColumnRef::Name(n) => self.header.iter().find(|h| *h == n),
                ColumnRef::Index(i) => self.header.get(*i),
            };
            match name {
                Some(n) => used.push(n.clone()),
                None if self.header.is_empty() => {}
                None => {
                    return Err(Error::config(format!(
                        "reader_options.usecols: '{}' has no column {}",
                        self.uri,
                        match column {
                            ColumnRef::Name(n) => format!("'{n}'"),
                            ColumnRef::Index(i) => i.to_string(),
                        }
                    )));
                }
            }
        }
        // In file order, as pandas gives them.
        Ok(self
            .header
            .iter()
            .filter(|h| used.contains(h))
            .cloned()
            .collect())
    }

    /// The column names in file order (empty for an empty file).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The columns the options keep (`usecols`), in file order.
    pub fn used(&self) -> &[String] {
        &self.used
    }

    /// Bytes of text read so far.
    pub fn position(&self) -> u64 {
        self.rows.position()
    }

    fn read_raw(&mut self, row: &mut ByteRecord) -> Result<bool> {
        loop {
            let found = self.read_one(row)?;
            if !found {
                return Ok(false);
            }
            if self.dialect.skip_rows.is_empty() {
                return Ok(true);
            }
            let index = self.raw_index;
            self.raw_index += 1;
            if self.dialect.skip_rows.binary_search(&index).is_err() {
                return Ok(true);
            }
        }
    }

    fn read_one(&mut self, row: &mut ByteRecord) -> Result<bool> {
        match &mut self.rows {
            Rows::Csv(reader) => {
                let before = reader.position().line();
                let found = reader.read_byte_record(row).map_err(|e| {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    Error::config(format!(
                        "'{}' line {line}: cannot read CSV: {}",
                        self.uri,
                        error_text(&e)
                    ))
                })?;
                if !self.dialect.skip_blank_lines && found {
                    // Lines consumed beyond the record's own are blank lines the parser skipped.
                    let own = 1 + row.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
                    let consumed = reader.position().line().saturating_sub(before);
                    self.blank += consumed.saturating_sub(own);
                }
                Ok(found)
            }
            Rows::Lines {
                input,
                separator,
                line,
                bytes,
                text,
            } => loop {
                text.clear();
                let n = input
                    .read_until(b'\n', text)
                    .map_err(|e| Error::config(format!("'{}': cannot read: {e}", self.uri)))?;
                if n == 0 {
                    return Ok(false);
                }
                *bytes += n as u64;
                *line += 1;
                while matches!(text.last(), Some(b'\n' | b'\r')) {
                    text.pop();
                }
                if let Some(c) = self.dialect.comment
                    && let Some(at) = text.iter().position(|b| *b == c)
                {
                    text.truncate(at);
                }
                if text.iter().all(|b| *b == b' ' || *b == b'\t') {
                    if !self.dialect.skip_blank_lines {
                        self.blank += 1;
                    }
                    continue;
                }
                row.clear();
                let quote = self.dialect.quoting.then_some(self.dialect.quote);
                split(text, separator, quote, row);
                let mut position = csv::Position::new();
                position.set_line(*line);
                row.set_position(Some(position));
                return Ok(true);
            },
        }
    }

    fn header_from(&self, row: &ByteRecord) -> Result<Vec<String>> {
        let names = row
            .iter()
            .map(|f| {
                std::str::from_utf8(f).map(str::to_string).map_err(|_| {
                    Error::config(format!(
                        "'{}' line {}: the header is not valid {} text",
                        self.uri,
                        line(row),
                        self.encoding_name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        crate::config::duplicates(&names, &format!("the header of '{}'", self.uri))?;
        Ok(names)
    }

    fn encoding_name(&self) -> &'static str {
        self.dialect.encoding.map(|e| e.name()).unwrap_or("UTF-8")
    }

    /// Reads the next data row into `row`; false at the end of the file (or of `nrows`).
    pub fn next_row(&mut self, row: &mut ByteRecord) -> Result<bool> {
        if self.dialect.max_rows.is_some_and(|max| self.given >= max) {
            return Ok(false);
        }
        let found = if self.dialect.skip_footer == 0 {
            self.next_checked(row)?
        } else {
            self.next_before_footer(row)?
        };
        self.given += u64::from(found);
        Ok(found)
    }

    /// Holds `skip_footer` rows back: a row is handed out once that many follow it.
    fn next_before_footer(&mut self, row: &mut ByteRecord) -> Result<bool> {
        while self.held.len() as u64 <= self.dialect.skip_footer {
            let mut next = ByteRecord::new();
            if !self.next_checked(&mut next)? {
                return Ok(false);
            }
            self.held.push_back(next);
        }
        *row = self.held.pop_front().expect("held rows");
        Ok(true)
    }

    fn next_checked(&mut self, row: &mut ByteRecord) -> Result<bool> {
        loop {
            if self.blank > 0 && self.pending.is_some() {
                // Blank lines before the pending row are rows of nulls (skip_blank_lines off).
                self.blank -= 1;
                *row = ByteRecord::from(vec![""; self.header.len()]);
                return Ok(true);
            }
            if let Some(first) = self.pending.take() {
                *row = first;
            } else if !self.read_raw(row)? {
                return Ok(false);
            } else if self.blank > 0 {
                self.pending = Some(row.clone());
                continue;
            }
            if self.rewrites {
                rewrite::row(row, self.dialect, &self.header);
            }
            if row.len() != self.header.len() {
                // A line with nothing on it is not a row.
                if row.len() == 1 && row[0].is_empty() {
                    continue;
                }
                if self.dialect.pandas && row.len() < self.header.len() {
                    // pandas fills the missing fields of a short row with NaN.
                    while row.len() < self.header.len() {
                        row.push_field(b"");
                    }
                    return Ok(true);
                }
                let message = format!(
                    "'{}' line {}: {} fields where the header has {}",
                    self.uri,
                    line(row),
                    row.len(),
                    self.header.len()
                );
                if !self.dialect.skip_ragged {
                    let hint = if self.dialect.pandas {
                        "check reader_options.sep and the quoting"
                    } else {
                        "set csv_options.ignore_errors_on_fields_mismatch to skip such rows"
                    };
                    return Err(Error::config(format!("{message} ({hint})")));
                }
                self.skipped.ragged += 1;
                warn_sometimes(self.skipped.ragged, &message);
                continue;
            }
            // Transcoded text is valid by construction; raw UTF-8 is checked here, all fields at once.
            if self.dialect.encoding.is_none() && std::str::from_utf8(row.as_slice()).is_err() {
                let message = format!(
                    "'{}' line {}: the row is not valid UTF-8 text",
                    self.uri,
                    line(row)
                );
                if !self.dialect.skip_bad_encoding {
                    return Err(Error::config(format!(
                        "{message} (set the encoding to the file's, or csv_options.ignore_encoding_errors to skip such rows)"
                    )));
                }
                self.skipped.bad_text += 1;
                warn_sometimes(self.skipped.bad_text, &message);
                continue;
            }
            return Ok(true);
        }
    }
}

/// Splits a line on a literal separator, or on runs of blanks outside `quote`d text (where two
/// quotes stand for one, as pandas' `\s+` reads).
fn split(text: &[u8], separator: &Separator, quote: Option<u8>, row: &mut ByteRecord) {
    match separator {
        Separator::Whitespace => {
            let mut field = Vec::new();
            let (mut started, mut quoted) = (false, false);
            let mut i = 0;
            while i < text.len() {
                let b = text[i];
                if Some(b) == quote {
                    if quoted && text.get(i + 1) == Some(&b) {
                        field.push(b);
                        i += 1;
                    } else {
                        quoted = !quoted;
                    }
                    started = true;
                } else if !quoted && (b == b' ' || b == b'\t') {
                    if started {
                        row.push_field(&field);
                        field.clear();
                        started = false;
                    }
                } else {
                    field.push(b);
                    started = true;
                }
                i += 1;
            }
            if started {
                row.push_field(&field);
            }
        }
        Separator::Literal(sep) => {
            let mut rest = text;
            while let Some(at) = rest.windows(sep.len()).position(|w| w == sep.as_slice()) {
                row.push_field(&rest[..at]);
                rest = &rest[at + sep.len()..];
            }
            row.push_field(rest);
        }
        Separator::Byte(b) => {
            for field in text.split(|c| c == b) {
                row.push_field(field);
            }
        }
    }
}

fn line(row: &ByteRecord) -> u64 {
    row.position().map(|p| p.line()).unwrap_or(0)
}

/// The first few skipped rows are logged one by one; after that only a total at the end.
fn warn_sometimes(count: u64, message: &str) {
    if count <= 10 {
        tracing::warn!("skipped: {message}");
    }
}

fn error_text(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str, separator: Separator) -> Vec<String> {
        let mut row = ByteRecord::new();
        split(text.as_bytes(), &separator, Some(b'"'), &mut row);
        row.iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn lines_split_on_blanks_and_literals() {
        assert_eq!(
            fields("  1   \"x y\"\t\"a\"\"b\"", Separator::Whitespace),
            ["1", "x y", "a\"b"]
        );
        assert_eq!(
            fields("a::b::", Separator::Literal(b"::".to_vec())),
            ["a", "b", ""]
        );
        assert_eq!(
            fields("a\"::b", Separator::Literal(b"::".to_vec())),
            ["a\"", "b"]
        );
    }
}
