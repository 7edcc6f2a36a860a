//! `reader_options`: the pandas `read_csv` options Airbyte's source-file takes (a JSON object
//! in a string), mapped onto the dialect. An option this source does not implement is a config
//! error naming it, never silently ignored.

use serde_json::{Map, Value};

use crate::config::{ColumnRef, Dialect, Format, Header, NullSet, Separator, encoding, one_byte};
use crate::values::Kind;
use cdk::{Error, Result};

/// pandas' default NA strings (`pandas._libs.parsers.STR_NA_VALUES`, pandas 2).
pub const DEFAULT_NA: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// The options this source implements (the error for any other lists them).
const SUPPORTED: &[&str] = &[
    "sep",
    "delimiter",
    "header",
    "names",
    "skiprows",
    "skipfooter",
    "nrows",
    "usecols",
    "encoding",
    "quotechar",
    "escapechar",
    "doublequote",
    "quoting",
    "na_values",
    "keep_default_na",
    "na_filter",
    "true_values",
    "false_values",
    "thousands",
    "decimal",
    "comment",
    "skip_blank_lines",
    "dtype",
    "parse_dates",
    "engine",
    "low_memory",
    "memory_map",
    "chunksize",
    "compression",
];

fn bad(option: &str, why: impl std::fmt::Display) -> Error {
    Error::config(format!("reader_options.{option}: {why}"))
}

/// Parses `text` (a JSON object) and applies it to `dialect` (pandas' defaults).
pub fn apply(text: &str, dialect: &mut Dialect) -> Result<()> {
    let options: Map<String, Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(Error::config(
                "reader_options must be a JSON object of pandas read_csv options, e.g. {\"sep\": \";\"}",
            ));
        }
        Err(e) => {
            return Err(Error::config(format!(
                "reader_options is not valid JSON: {e}"
            )));
        }
    };
    if dialect.format != Format::Csv
        && let Some(key) = options.keys().next()
    {
        return Err(bad(
            key,
            "reader_options apply to CSV files only (JSON and Parquet files are read as they are)",
        ));
    }
    let unknown: Vec<&str> = options
        .keys()
        .map(String::as_str)
        .filter(|k| !SUPPORTED.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::config(format!(
            "reader_options: {} not supported by this source (it supports {})",
            unknown
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
            SUPPORTED.join(", ")
        )));
    }
    let get = |k: &str| options.get(k).filter(|v| !v.is_null());
    if let Some(sep) = get("sep").or_else(|| get("delimiter")) {
        dialect.separator = separator(sep)?;
    } else if options.contains_key("sep") && options["sep"].is_null() {
        return Err(bad("sep", "null (sniffing the separator) is not supported"));
    }
    header(&options, dialect)?;
    skiprows(get("skiprows"), dialect)?;
    if let Some(v) = get("skipfooter") {
        dialect.skip_footer = count(v, "skipfooter")?;
    }
    if let Some(v) = get("nrows") {
        dialect.max_rows = Some(count(v, "nrows")?);
    }
    if let Some(v) = get("usecols") {
        dialect.usecols = Some(usecols(v)?);
    }
    if let Some(v) = get("encoding") {
        dialect.encoding = encoding(string(v, "encoding")?, "reader_options.encoding")?;
    }
    if let Some(v) = get("quotechar") {
        dialect.quote = char_option(v, "quotechar")?;
    }
    if let Some(v) = get("escapechar") {
        dialect.escape = Some(char_option(v, "escapechar")?);
    }
    if let Some(v) = get("doublequote") {
        dialect.double_quote = boolean(v, "doublequote")?;
    }
    if let Some(v) = get("quoting") {
        dialect.quoting = match v.as_u64() {
            Some(0 | 1) => true,
            Some(3) => false,
            Some(2) => {
                return Err(bad(
                    "quoting",
                    "2 (QUOTE_NONNUMERIC) is not supported; use 0 (minimal) or 3 (none)",
                ));
            }
            _ => return Err(bad("quoting", format!("expected 0, 1 or 3, got {v}"))),
        };
    }
    nulls(&options, dialect)?;
    if let Some(v) = get("true_values") {
        dialect.true_values.extend(lowered(v, "true_values")?);
    }
    if let Some(v) = get("false_values") {
        dialect.false_values.extend(lowered(v, "false_values")?);
    }
    if let Some(v) = get("thousands") {
        dialect.thousands = Some(char_option(v, "thousands")?);
    }
    if let Some(v) = get("decimal") {
        dialect.decimal = char_option(v, "decimal")?;
    }
    if let Some(v) = get("comment") {
        dialect.comment = Some(char_option(v, "comment")?);
    }
    if let Some(v) = get("skip_blank_lines") {
        dialect.skip_blank_lines = boolean(v, "skip_blank_lines")?;
    }
    if let Some(v) = get("dtype") {
        dtypes(v, dialect)?;
    }
    if let Some(v) = get("parse_dates") {
        parse_dates(v, dialect)?;
    }
    if let Some(v) = get("engine") {
        let engine = string(v, "engine")?;
        if !matches!(engine, "c" | "python" | "pyarrow") {
            return Err(bad("engine", format!("unknown engine '{engine}'")));
        }
    }
    if let Some(v) = get("compression")
        && !matches!(v.as_str(), Some("infer"))
    {
        return Err(bad(
            "compression",
            "only 'infer' is supported (compression follows the file extension)",
        ));
    }
    Ok(())
}

fn string<'a>(v: &'a Value, option: &str) -> Result<&'a str> {
    v.as_str()
        .ok_or_else(|| bad(option, format!("expected a string, got {v}")))
}

fn boolean(v: &Value, option: &str) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| bad(option, format!("expected true or false, got {v}")))
}

fn count(v: &Value, option: &str) -> Result<u64> {
    v.as_u64()
        .ok_or_else(|| bad(option, format!("expected a whole number >= 0, got {v}")))
}

fn char_option(v: &Value, option: &str) -> Result<u8> {
    one_byte(string(v, option)?, &format!("reader_options.{option}"))
}

/// A string or a list of strings (numbers taken as their text).
fn strings(v: &Value, option: &str) -> Result<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(bad(option, format!("expected strings, got {other}"))),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Object(_) => Err(bad(
            option,
            "a per-column object is not supported; give a list of values",
        )),
        other => Ok(vec![one(other)?]),
    }
}

fn lowered(v: &Value, option: &str) -> Result<Vec<Vec<u8>>> {
    Ok(strings(v, option)?
        .into_iter()
        .map(|s| s.to_lowercase().into_bytes())
        .collect())
}

/// `sep`: one character, `\t`, `\s+`, or a literal of several characters (pandas reads those
/// as a regular expression; one without special characters matches itself).
fn separator(v: &Value) -> Result<Separator> {
    let sep = string(v, "sep")?;
    let sep = if sep == "\\t" { "\t" } else { sep };
    if sep == "\\s+" {
        return Ok(Separator::Whitespace);
    }
    match sep.as_bytes() {
        [] => Err(bad("sep", "must not be empty")),
        [_] => Ok(Separator::Byte(one_byte(sep, "reader_options.sep")?)),
        bytes if bytes.iter().any(|b| b"\\.^$*+?()[]{}|".contains(b)) => Err(bad(
            "sep",
            format!(
                "the regular expression {sep:?} is not supported; give one character, a literal text, or \\s+"
            ),
        )),
        bytes => Ok(Separator::Literal(bytes.to_vec())),
    }
}

fn header(options: &Map<String, Value>, dialect: &mut Dialect) -> Result<()> {
    let names = match options.get("names").filter(|v| !v.is_null()) {
        Some(v) => {
            let names = strings(v, "names")?;
            crate::config::duplicates(&names, "reader_options.names")?;
            Some(names)
        }
        None => None,
    };
    dialect.header = match (options.get("header"), names) {
        // pandas' "infer": a header row unless names are given.
        (None, None) => Header::FromFile,
        (Some(Value::String(s)), None) if s == "infer" => Header::FromFile,
        (None, Some(names)) => Header::Given(names),
        (Some(Value::String(s)), Some(names)) if s == "infer" => Header::Given(names),
        (Some(Value::Null), Some(names)) => Header::Given(names),
        (Some(Value::Null), None) => Header::Numbered(""),
        (Some(v), names) => {
            let row = v.as_u64().ok_or_else(|| {
                bad(
                    "header",
                    format!("expected a row number or null, got {v} (several header rows are not supported)"),
                )
            })?;
            dialect.skip_before += row;
            match names {
                Some(names) => Header::Replaced(names),
                None => Header::FromFile,
            }
        }
    };
    Ok(())
}

fn skiprows(v: Option<&Value>, dialect: &mut Dialect) -> Result<()> {
    match v {
        None => {}
        Some(Value::Array(rows)) => {
            let mut rows = rows
                .iter()
                .map(|r| count(r, "skiprows"))
                .collect::<Result<Vec<_>>>()?;
            rows.sort_unstable();
            rows.dedup();
            dialect.skip_rows = rows;
        }
        Some(v) => dialect.skip_before += count(v, "skiprows")?,
    }
    Ok(())
}

fn usecols(v: &Value) -> Result<Vec<ColumnRef>> {
    let items = v.as_array().ok_or_else(|| {
        bad(
            "usecols",
            format!("expected a list of names or positions, got {v}"),
        )
    })?;
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(ColumnRef::Name(s.clone())),
            Value::Number(n) => n
                .as_u64()
                .map(|i| ColumnRef::Index(i as usize))
                .ok_or_else(|| bad("usecols", format!("invalid position {n}"))),
            other => Err(bad(
                "usecols",
                format!("expected a name or position, got {other}"),
            )),
        })
        .collect()
}

fn nulls(options: &Map<String, Value>, dialect: &mut Dialect) -> Result<()> {
    let flag = |k: &str| -> Result<bool> {
        options
            .get(k)
            .map(|v| boolean(v, k))
            .transpose()
            .map(|b| b.unwrap_or(true))
    };
    let (keep_default, filter) = (flag("keep_default_na")?, flag("na_filter")?);
    let extra = match options.get("na_values").filter(|v| !v.is_null()) {
        Some(v) => strings(v, "na_values")?,
        None => Vec::new(),
    };
    let mut values: Vec<Vec<u8>> = Vec::new();
    if filter {
        if keep_default {
            values.extend(DEFAULT_NA.iter().map(|s| s.as_bytes().to_vec()));
        }
        values.extend(extra.into_iter().map(String::into_bytes));
    }
    dialect.null_values = NullSet::new(values);
    Ok(())
}

/// A pandas dtype name as a column type.
fn kind_of(name: &str) -> Result<Kind> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "str" | "string" | "object" | "o" | "category" | "unicode" => Kind::String,
        "bool" | "boolean" => Kind::Boolean,
        "float" | "float16" | "float32" | "float64" | "double" => Kind::Number,
        n if n.starts_with("int") || n.starts_with("uint") => Kind::Integer,
        _ => {
            return Err(bad(
                "dtype",
                format!(
                    "the type '{name}' is not supported (use str, int, float or bool; dates through parse_dates)"
                ),
            ));
        }
    })
}

fn dtypes(v: &Value, dialect: &mut Dialect) -> Result<()> {
    match v {
        Value::String(name) => dialect.all_types = Some(kind_of(name)?),
        Value::Object(columns) => {
            for (column, t) in columns {
                let kind = kind_of(string(t, "dtype")?)?;
                dialect.types.push((column.clone(), kind));
            }
        }
        other => {
            return Err(bad(
                "dtype",
                format!("expected a type name or an object of column → type, got {other}"),
            ));
        }
    }
    Ok(())
}

fn parse_dates(v: &Value, dialect: &mut Dialect) -> Result<()> {
    let columns = match v {
        Value::Bool(false) => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    bad(
                        "parse_dates",
                        format!("give column names; {i} (positions or combined columns) is not supported"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?,
        other => {
            return Err(bad(
                "parse_dates",
                format!("expected a list of column names, got {other}"),
            ));
        }
    };
    for column in &columns {
        dialect
            .types
            .push((column.clone(), Kind::DateTime { tz: false }));
    }
    dialect.parse_dates = columns;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect(text: &str) -> Result<Dialect> {
        let mut d = Dialect::pandas(Format::Csv);
        apply(text, &mut d).map(|_| d)
    }

    #[test]
    fn separators() {
        assert_eq!(
            dialect(r#"{"sep": ";"}"#).unwrap().separator,
            Separator::Byte(b';')
        );
        assert_eq!(
            dialect(r#"{"sep": "\t"}"#).unwrap().separator,
            Separator::Byte(b'\t')
        );
        assert_eq!(
            dialect(r#"{"sep": "\\t"}"#).unwrap().separator,
            Separator::Byte(b'\t')
        );
        assert_eq!(
            dialect(r#"{"delimiter": "|"}"#).unwrap().separator,
            Separator::Byte(b'|')
        );
        assert_eq!(
            dialect(r#"{"sep": "\\s+"}"#).unwrap().separator,
            Separator::Whitespace
        );
        assert_eq!(
            dialect(r#"{"sep": "::"}"#).unwrap().separator,
            Separator::Literal(b"::".to_vec())
        );
        let err = dialect(r#"{"sep": "[;,]"}"#).unwrap_err();
        assert!(
            err.message.contains("reader_options.sep"),
            "{}",
            err.message
        );
    }

    #[test]
    fn headers_and_names() {
        assert_eq!(
            dialect(r#"{"header": null}"#).unwrap().header,
            Header::Numbered("")
        );
        let d = dialect(r#"{"header": null, "names": ["a", "b"]}"#).unwrap();
        assert_eq!(d.header, Header::Given(vec!["a".into(), "b".into()]));
        let d = dialect(r#"{"header": 0, "names": ["a"]}"#).unwrap();
        assert_eq!(d.header, Header::Replaced(vec!["a".into()]));
        let d = dialect(r#"{"header": 2, "skiprows": 1}"#).unwrap();
        assert_eq!((d.header, d.skip_before), (Header::FromFile, 3));
    }

    #[test]
    fn unknown_options_and_bad_json_are_named() {
        let err = dialect(r#"{"sep": ";", "index_col": 0, "squeeze": true}"#).unwrap_err();
        assert!(
            err.message.contains("'index_col'") && err.message.contains("'squeeze'"),
            "{}",
            err.message
        );
        let err = dialect("{sep: ;}").unwrap_err();
        assert!(err.message.contains("reader_options"), "{}", err.message);
        assert!(
            dialect("[1]")
                .unwrap_err()
                .message
                .contains("reader_options")
        );
    }

    #[test]
    fn nulls_and_types() {
        let d = dialect(r#"{"na_values": ["x"]}"#).unwrap();
        assert!(d.is_null(b"x") && d.is_null(b"NA") && d.is_null(b""));
        let d = dialect(r#"{"na_values": "x", "keep_default_na": false}"#).unwrap();
        assert!(d.is_null(b"x") && !d.is_null(b"NA"));
        let d = dialect(r#"{"na_filter": false}"#).unwrap();
        assert!(!d.is_null(b"") && !d.is_null(b"NA"));
        let d = dialect(r#"{"dtype": {"id": "str", "n": "Int64"}, "parse_dates": ["t"]}"#).unwrap();
        assert_eq!(d.forced_kind("id"), Some(Kind::String));
        assert_eq!(d.forced_kind("n"), Some(Kind::Integer));
        assert_eq!(d.forced_kind("t"), Some(Kind::DateTime { tz: false }));
        assert_eq!(d.forced_kind("other"), None);
        assert!(
            dialect(r#"{"quoting": 2}"#)
                .unwrap_err()
                .message
                .contains("quoting")
        );
    }
}
