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
    if let Some(micros) = rfc3339_micros(s.as_bytes(), with_tz) {
        return Some(micros);
    }
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

/// The common RFC 3339 shape (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, fraction of up to
/// nine digits) read without chrono's general parser, giving what chrono gives; `None` for
/// anything else (chrono then reads it). Without `with_tz`, the local time, offset ignored.
fn rfc3339_micros(s: &[u8], with_tz: bool) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        s.get(range)?.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    // Leap seconds and out-of-range fields: chrono's answer.
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0;
    if s[at] == b'.' {
        let start = at + 1;
        let end = start + s[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if end == start || end - start > 9 {
            return None;
        }
        let fraction = digits(start..end)?;
        micros = fraction * 10i64.pow(9 - (end - start) as u32) / 1_000;
        at = end;
    }
    let offset = match s.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(at + 1..at + 3)?, digits(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let mut seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    if with_tz {
        seconds -= offset;
    }
    Some(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn the_fast_rfc3339_reading_agrees_with_chrono() {
        let mut texts = vec![
            "2024-02-29T23:59:59Z".to_string(),
            "2023-02-29T00:00:00Z".to_string(),
            "2024-13-01T00:00:00Z".to_string(),
            "2024-01-01T24:00:00Z".to_string(),
            "2016-12-31T23:59:60Z".to_string(),
            "2024-01-01 10:00:00+05:45".to_string(),
            "2024-01-01t10:00:00.1z".to_string(),
            "0001-01-01T00:00:00Z".to_string(),
            "9999-12-31T23:59:59.9999999999Z".to_string(),
            "1900-03-01T00:00:00.000001-23:59".to_string(),
            "2024-01-01T00:00:00+0100".to_string(),
            "2024-01-01T00:00:00.Z".to_string(),
            "2024-1-01T00:00:00Z".to_string(),
        ];
        let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            let digits = (n % 10) as usize;
            let fraction = if digits == 0 {
                String::new()
            } else {
                format!(".{:09}", n % 1_000_000_000)[..digits + 1].to_string()
            };
            let zone = match n % 3 {
                0 => "Z".to_string(),
                1 => format!("+{:02}:{:02}", (n >> 8) % 24, (n >> 16) % 60),
                _ => format!("-{:02}:{:02}", (n >> 8) % 24, (n >> 16) % 60),
            };
            texts.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{zone}",
                (n >> 20) % 10_000,
                1 + (n >> 34) % 12,
                1 + (n >> 38) % 31,
                (n >> 43) % 24,
                (n >> 48) % 60,
                (n >> 54) % 60,
            ));
        }
        for text in &texts {
            for with_tz in [true, false] {
                let Some(fast) = rfc3339_micros(text.as_bytes(), with_tz) else {
                    continue;
                };
                let dt = chrono::DateTime::parse_from_rfc3339(text).expect(text);
                let want = if with_tz {
                    dt.timestamp_micros()
                } else {
                    dt.naive_local().and_utc().timestamp_micros()
                };
                assert_eq!(fast, want, "{text} {with_tz}");
            }
        }
        assert!(rfc3339_micros(b"2024-01-02T01:01:00Z", true).is_some());
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
        assert_eq!(
            cell(TimestampTz, "\"1969-12-31T23:59:59.999999999-00:30\""),
            Cell::Micros(1_799_999_999)
        );
        assert_eq!(cell(Time, "5"), Cell::Mismatch);
    }
}
