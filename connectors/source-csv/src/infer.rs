//! Schema inference: a column gets the narrowest type that every sampled non-null value fits
//! (integer, number, boolean, date, date-time), otherwise string; every column is nullable.
//! Columns are the union of the sampled files' headers, in order of first appearance.

use csv::ByteRecord;
use serde_json::{Map, Value, json};

use crate::config::Dialect;
use crate::parse::CsvFile;
use crate::values::{self, Kind};
use cdk::Result;

/// What a sample may read of each file (bytes of text), and how many files it reads.
pub const SAMPLE_BYTES_PER_FILE: u64 = 1_000_000;
pub const SAMPLE_FILES: usize = 10;

pub const FILE_URL: &str = "_ab_source_file_url";
pub const FILE_LAST_MODIFIED: &str = "_ab_source_file_last_modified";

/// What the sampled values of one column could all be.
#[derive(Debug, Clone)]
struct Candidates {
    name: String,
    seen: u64,
    integer: bool,
    number: bool,
    boolean: bool,
    date: bool,
    datetime_tz: bool,
    datetime_naive: bool,
}

impl Candidates {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            seen: 0,
            integer: true,
            number: true,
            boolean: true,
            date: true,
            datetime_tz: true,
            datetime_naive: true,
        }
    }

    fn observe(&mut self, v: &[u8], dialect: &Dialect) {
        self.seen += 1;
        self.integer &= values::parse_integer(v).is_some();
        self.number &= values::parse_number(v).is_some();
        self.boolean &=
            values::parse_bool(v, &dialect.true_values, &dialect.false_values).is_some();
        self.date &= values::is_date(v);
        if self.datetime_tz || self.datetime_naive {
            match values::datetime_offset(v) {
                Some(true) => self.datetime_naive = false,
                Some(false) => self.datetime_tz = false,
                None => (self.datetime_tz, self.datetime_naive) = (false, false),
            }
        }
    }

    /// `pandas`: as pandas types a column (no dates unless asked for).
    fn kind(&self, pandas: bool) -> Kind {
        match self {
            c if c.seen == 0 => Kind::String,
            c if c.integer => Kind::Integer,
            c if c.number => Kind::Number,
            c if c.boolean => Kind::Boolean,
            _ if pandas => Kind::String,
            c if c.date => Kind::Date,
            c if c.datetime_tz => Kind::DateTime { tz: true },
            c if c.datetime_naive => Kind::DateTime { tz: false },
            _ => Kind::String,
        }
    }
}

/// The columns seen so far and what their values could be.
#[derive(Debug, Default)]
pub struct Inference {
    columns: Vec<Candidates>,
}

impl Inference {
    /// Samples the rows of `file` up to the byte budget (or only its header when types are not
    /// inferred).
    pub fn sample(&mut self, file: &mut CsvFile, dialect: &Dialect) -> Result<()> {
        let used = file.used().to_vec();
        let slots: Vec<Option<usize>> = file
            .header()
            .iter()
            .map(|name| {
                used.contains(name).then(|| {
                    match self.columns.iter().position(|c| &c.name == name) {
                        Some(i) => i,
                        None => {
                            self.columns.push(Candidates::new(name));
                            self.columns.len() - 1
                        }
                    }
                })
            })
            .collect();
        if !dialect.infer {
            return Ok(());
        }
        let mut row = ByteRecord::new();
        while file.position() < SAMPLE_BYTES_PER_FILE && file.next_row(&mut row)? {
            for (slot, value) in slots.iter().zip(row.iter()) {
                let Some(slot) = slot else { continue };
                if !value.is_empty() && !dialect.is_null(value) {
                    self.columns[*slot].observe(value, dialect);
                }
            }
        }
        Ok(())
    }

    /// The stream's JSON Schema (with the types `dtype` and `parse_dates` force).
    pub fn schema(&self, dialect: &Dialect) -> Value {
        let mut properties = Map::new();
        for c in &self.columns {
            let kind = dialect
                .forced_kind(&c.name)
                .unwrap_or_else(|| c.kind(dialect.pandas));
            properties.insert(c.name.clone(), kind.json_schema());
        }
        stream_schema(properties)
    }
}

/// The stream's JSON Schema from its columns' schemas, with the file columns every format adds.
pub fn stream_schema(mut properties: Map<String, Value>) -> Value {
    properties.insert(FILE_URL.into(), json!({"type": "string"}));
    properties.insert(
        FILE_LAST_MODIFIED.into(),
        json!({"type": "string", "format": "date-time"}),
    );
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CsvOptions, InferenceType};

    fn infer(csv: &str, options: CsvOptions) -> Value {
        let dialect = options.dialect().unwrap();
        let mut file = CsvFile::open(
            Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
            "t.csv",
            &dialect,
        )
        .unwrap();
        let mut inference = Inference::default();
        inference.sample(&mut file, &dialect).unwrap();
        inference.schema(&dialect)["properties"].clone()
    }

    #[test]
    fn narrowest_type_every_value_fits() {
        let p = infer(
            "i,n,b,d,tz,naive,s,empty,mixed\n\
             1,1.5,yes,2024-01-01,2024-01-01T00:00:00Z,2024-01-01 10:00,x,,1\n\
             -2,3,no,2024-12-31,2024-01-01T00:00:00+02:00,2024-01-01T10:00:00.5,y,,2024-01-01\n\
             ,,,,,,,,\n",
            CsvOptions::default(),
        );
        let kind = |c: &str| Kind::from_schema(&p[c]);
        assert_eq!(kind("i"), Kind::Integer);
        assert_eq!(kind("n"), Kind::Number);
        assert_eq!(kind("b"), Kind::Boolean);
        assert_eq!(kind("d"), Kind::Date);
        assert_eq!(kind("tz"), Kind::DateTime { tz: true });
        assert_eq!(kind("naive"), Kind::DateTime { tz: false });
        assert_eq!(kind("s"), Kind::String);
        assert_eq!(kind("empty"), Kind::String);
        assert_eq!(kind("mixed"), Kind::String);
        assert_eq!(p[FILE_URL], json!({"type": "string"}));
        assert_eq!(p["i"]["type"], json!(["null", "integer"]));
    }

    #[test]
    fn without_inference_every_column_is_text() {
        let p = infer(
            "a,b\n1,true\n",
            CsvOptions {
                inference_type: InferenceType::None,
                ..CsvOptions::default()
            },
        );
        assert_eq!(Kind::from_schema(&p["a"]), Kind::String);
        assert_eq!(Kind::from_schema(&p["b"]), Kind::String);
    }
}
