//! The columns of a stream, from the top-level properties of its JSON schema, with the Airbyte
//! type of each (integer, number, boolean, string, date, timestamps, time, or JSON for nested
//! and mixed values).

use cdk::protocol::AirbyteType;
use serde_json::Value;

use super::meta;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Number,
    Boolean,
    String,
    Date,
    /// `timestamp_with_timezone` (the default for `date-time`): UTC microseconds.
    TimestampTz,
    /// `timestamp_without_timezone`: microseconds of the local date-time.
    TimestampNtz,
    /// `time_without_timezone`: microseconds since midnight.
    Time,
    /// Objects, arrays, unions and untyped values: their JSON text.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
}

/// The columns of a stream's schema, in its property order; names that clash with the
/// `_airbyte_*` columns are left out.
pub fn columns(schema: &Value) -> Vec<Column> {
    let Some(Value::Object(props)) = schema.get("properties") else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(name, _)| {
            ![
                meta::RAW_ID,
                meta::EXTRACTED_AT,
                meta::GENERATION_ID,
                meta::META,
            ]
            .contains(&name.as_str())
        })
        .map(|(name, prop)| Column {
            name: name.clone(),
            ty: column_type(prop),
        })
        .collect()
}

/// The column type of one property schema: its [`AirbyteType`] as Parquet, CSV and JSONL
/// store it.
pub fn column_type(prop: &Value) -> ColumnType {
    ColumnType::from(&AirbyteType::from_schema(prop))
}

impl From<&AirbyteType> for ColumnType {
    fn from(ty: &AirbyteType) -> Self {
        match ty {
            AirbyteType::Integer => ColumnType::Integer,
            AirbyteType::Number => ColumnType::Number,
            AirbyteType::Boolean => ColumnType::Boolean,
            AirbyteType::String => ColumnType::String,
            AirbyteType::Date => ColumnType::Date,
            AirbyteType::TimestampWithTimezone => ColumnType::TimestampTz,
            AirbyteType::TimestampWithoutTimezone => ColumnType::TimestampNtz,
            AirbyteType::TimeWithoutTimezone => ColumnType::Time,
            // Parquet's TIME has no offset: the value keeps its text, as Airbyte's does.
            AirbyteType::TimeWithTimezone => ColumnType::String,
            AirbyteType::Object(_)
            | AirbyteType::Array(_)
            | AirbyteType::Union(_)
            | AirbyteType::Unknown => ColumnType::Json,
        }
    }
}

/// A JSON value, as raw text, read as a column's type. `Null` means JSON null; `Mismatch`
/// means a value that does not fit (it is stored as null with a change entry).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(std::borrow::Cow<'a, str>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch (or since midnight for `Time`).
    Micros(i64),
    Mismatch,
}

/// Reads the raw JSON text `raw` as a value of type `ty`.
/// `raw` is a value's text as serde_json delimits it, without surrounding whitespace.
pub fn cell<'a>(ty: ColumnType, raw: &'a str) -> Cell<'a> {
    if raw == "null" {
        return Cell::Null;
    }
    match ty {
        ColumnType::Integer => match raw.parse::<i64>() {
            Ok(i) => Cell::Int(i),
            Err(_) => match number(raw) {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Cell::Int(f as i64),
                _ => Cell::Mismatch,
            },
        },
        ColumnType::Number => number(raw).map_or(Cell::Mismatch, Cell::Float),
        ColumnType::Boolean => match raw {
            "true" => Cell::Bool(true),
            "false" => Cell::Bool(false),
            _ => Cell::Mismatch,
        },
        ColumnType::String => match string(raw) {
            Some(s) => Cell::Str(s),
            // Numbers, booleans and nested values keep their JSON text.
            None => Cell::Str(raw.into()),
        },
        ColumnType::Json => Cell::Str(raw.into()),
        ColumnType::Date => string(raw)
            .and_then(|s| parse_date(&s))
            .map_or(Cell::Mismatch, Cell::Date),
        ColumnType::TimestampTz => string(raw)
            .and_then(|s| parse_timestamp(&s, true))
            .map_or(Cell::Mismatch, Cell::Micros),
        ColumnType::TimestampNtz => string(raw)
            .and_then(|s| parse_timestamp(&s, false))
            .map_or(Cell::Mismatch, Cell::Micros),
        ColumnType::Time => string(raw)
            .and_then(|s| parse_time(&s))
            .map_or(Cell::Mismatch, Cell::Micros),
    }
}

fn number(raw: &str) -> Option<f64> {
    let first = raw.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'-') {
        return None;
    }
    raw.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// The text of a JSON string literal; `None` for any other value.
pub fn string(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(inner.into());
    }
    serde_json::from_str::<String>(raw).ok().map(Into::into)
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn parse_date(s: &str) -> Option<i32> {
    use chrono::Datelike;
    let s = s.trim();
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            // A date-time where a date is expected: its date.
            let head = s.get(..10)?;
            chrono::NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
        })?;
    Some(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
}

fn parse_timestamp(s: &str, with_tz: bool) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(if with_tz {
            dt.timestamp_micros()
        } else {
            dt.naive_local().and_utc().timestamp_micros()
        });
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(dt) = chrono::DateTime::parse_from_str(s, format) {
            return Some(if with_tz {
                dt.timestamp_micros()
            } else {
                dt.naive_local().and_utc().timestamp_micros()
            });
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(naive.and_utc().timestamp_micros());
        }
    }
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

fn parse_time(s: &str) -> Option<i64> {
    use chrono::Timelike;
    let t = chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M"))
        .ok()?;
    Some(t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_from_schema() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "big": {"type": "number", "airbyte_type": "integer"},
            "score": {"type": ["null", "number"]},
            "ok": {"type": "boolean"},
            "name": {"type": "string"},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "local": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
            "t": {"type": "string", "format": "time", "airbyte_type": "time_without_timezone"},
            "obj": {"type": "object", "properties": {"a": {"type": "string"}}},
            "arr": {"type": "array"},
            "mixed": {"type": ["string", "integer"]},
            "ref": {"$ref": "WellKnownTypes.json#/definitions/TimestampWithTimezone"},
            "tz_no_format": {"type": "string", "airbyte_type": "timestamp_with_timezone"},
            "t_no_format": {"type": "string", "airbyte_type": "time_without_timezone"},
            "bare_time": {"type": "string", "format": "time"},
            "nullable_one_of": {"oneOf": [{"type": "null"}, {"type": "integer"}]},
            "_airbyte_meta": {"type": "object"},
            "untyped": {}
        }});
        let mut got: Vec<(std::string::String, ColumnType)> = columns(&schema)
            .into_iter()
            .map(|c| (c.name, c.ty))
            .collect();
        use ColumnType::*;
        let want = [
            ("id", Integer),
            ("big", Integer),
            ("score", Number),
            ("ok", Boolean),
            ("name", String),
            ("day", Date),
            ("at", TimestampTz),
            ("local", TimestampNtz),
            ("t", Time),
            ("obj", Json),
            ("arr", Json),
            ("mixed", Json),
            ("ref", TimestampTz),
            ("tz_no_format", TimestampTz),
            ("t_no_format", Time),
            ("bare_time", String),
            ("nullable_one_of", Integer),
            ("untyped", Json),
        ];
        let mut want: Vec<(std::string::String, ColumnType)> =
            want.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want);
    }

    #[test]
    fn cells() {
        use ColumnType::*;
        assert_eq!(cell(Integer, "42"), Cell::Int(42));
        assert_eq!(cell(Integer, "4.0"), Cell::Int(4));
        assert_eq!(cell(Integer, "4.5"), Cell::Mismatch);
        assert_eq!(cell(Integer, "\"4\""), Cell::Mismatch);
        assert_eq!(cell(Integer, "null"), Cell::Null);
        assert_eq!(cell(Number, "1e3"), Cell::Float(1000.0));
        assert_eq!(cell(Boolean, "true"), Cell::Bool(true));
        assert_eq!(cell(String, "\"a\\\"b\""), Cell::Str("a\"b".into()));
        assert_eq!(cell(String, "12"), Cell::Str("12".into()));
        assert_eq!(cell(Json, "{\"a\": 1}"), Cell::Str("{\"a\": 1}".into()));
        assert_eq!(cell(Date, "\"1970-01-02\""), Cell::Date(1));
        assert_eq!(cell(Date, "\"yesterday\""), Cell::Mismatch);
        assert_eq!(
            cell(TimestampTz, "\"1970-01-01T01:00:00+01:00\""),
            Cell::Micros(0)
        );
        assert_eq!(
            cell(TimestampTz, "\"1970-01-01T00:00:01.5Z\""),
            Cell::Micros(1_500_000)
        );
        assert_eq!(
            cell(TimestampNtz, "\"1970-01-01T00:00:02\""),
            Cell::Micros(2_000_000)
        );
        assert_eq!(
            cell(TimestampNtz, "\"1970-01-01T01:00:00+01:00\""),
            Cell::Micros(3_600_000_000)
        );
        assert_eq!(cell(Time, "\"00:00:01.25\""), Cell::Micros(1_250_000));
        assert_eq!(cell(Time, "5"), Cell::Mismatch);
    }
}
