//! The column types of a CSV stream, and recognising a field's text as one of them. Shared by
//! inference (does every sampled value fit?) and reading (write the value as its type).

use cdk::protocol::AirbyteType;
use serde_json::Value;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    /// `tz`: the values carry an offset (`timestamp_with_timezone`).
    DateTime {
        tz: bool,
    },
}

impl Kind {
    /// The column's JSON Schema; every column is nullable.
    pub fn json_schema(self) -> Value {
        self.airbyte_type().nullable_json_schema()
    }

    /// The Airbyte type of the column.
    pub fn airbyte_type(self) -> AirbyteType {
        match self {
            Kind::String => AirbyteType::String,
            Kind::Integer => AirbyteType::Integer,
            Kind::Number => AirbyteType::Number,
            Kind::Boolean => AirbyteType::Boolean,
            Kind::Date => AirbyteType::Date,
            Kind::DateTime { tz: true } => AirbyteType::TimestampWithTimezone,
            Kind::DateTime { tz: false } => AirbyteType::TimestampWithoutTimezone,
        }
    }

    /// The kind a (catalog) property schema asks for, from its [`AirbyteType`]. Times,
    /// objects, arrays, unions of several types (as the Python file-based CDK does) and
    /// anything unknown are read as text.
    pub fn from_schema(schema: &Value) -> Kind {
        match AirbyteType::from_schema(schema) {
            AirbyteType::Integer => Kind::Integer,
            AirbyteType::Number => Kind::Number,
            AirbyteType::Boolean => Kind::Boolean,
            AirbyteType::Date => Kind::Date,
            AirbyteType::TimestampWithTimezone => Kind::DateTime { tz: true },
            AirbyteType::TimestampWithoutTimezone => Kind::DateTime { tz: false },
            _ => Kind::String,
        }
    }
}

/// True for an integer in JSON's canonical form: `-?(0|[1-9][0-9]*)`.
pub fn is_json_integer(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    match digits {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        _ => digits.iter().all(u8::is_ascii_digit),
    }
}

/// An integer in a looser spelling (`+7`, `007`, surrounding spaces) that fits 64 bits.
pub fn parse_integer(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

/// True for a number in JSON's grammar: `-?int(.digits)?([eE][+-]?digits)?`.
pub fn is_json_number(s: &[u8]) -> bool {
    let mut i = usize::from(s.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    match digits(&mut i) {
        0 => return false,
        n if n > 1 && s[int_start] == b'0' => return false,
        _ => {}
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

/// True when `s` can be copied into JSON as a number every reader takes: the grammar, and no
/// overflow of a double.
pub fn is_portable_json_number(s: &[u8]) -> bool {
    is_json_number(s)
        && ((s.len() < 300 && !s.iter().any(|b| matches!(b, b'e' | b'E')))
            || parse_number(s).is_some())
}

/// A finite number in any spelling Rust accepts (`1.`, `.5`, `+1e3`, spaces around).
pub fn parse_number(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?.trim();
    // Rust also reads "inf" and "NaN", which JSON cannot carry.
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A boolean from the configured true and false values (lower-cased), case-insensitively.
pub fn parse_bool(s: &[u8], true_values: &[Vec<u8>], false_values: &[Vec<u8>]) -> Option<bool> {
    let matches = |values: &[Vec<u8>]| values.iter().any(|v| v.eq_ignore_ascii_case(s));
    if matches(true_values) {
        Some(true)
    } else if matches(false_values) {
        Some(false)
    } else {
        None
    }
}

fn number_at(s: &[u8], at: usize, len: usize) -> Option<u32> {
    let digits = s.get(at..at + len)?;
    digits.iter().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// True for a calendar date `YYYY-MM-DD`.
pub fn is_date(s: &[u8]) -> bool {
    s.len() == 10 && valid_date_prefix(s)
}

fn valid_date_prefix(s: &[u8]) -> bool {
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return false;
    }
    match (number_at(s, 0, 4), number_at(s, 5, 2), number_at(s, 8, 2)) {
        (Some(y), Some(m), Some(d)) => chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some(),
        _ => false,
    }
}

/// For an ISO 8601 date-time (`YYYY-MM-DD[T ]hh:mm[:ss[.fraction]][Z|±hh[:mm]]`): whether it
/// carries an offset. `None` when it is not one.
pub fn datetime_offset(s: &[u8]) -> Option<bool> {
    if s.len() < 16 || !valid_date_prefix(s) || !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let (h, m) = (number_at(s, 11, 2)?, number_at(s, 14, 2)?);
    if s[13] != b':' || h > 23 || m > 59 {
        return None;
    }
    let mut i = 16;
    if s.get(i) == Some(&b':') {
        if number_at(s, i + 1, 2)? > 60 {
            return None;
        }
        i += 3;
        if s.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while s.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
    }
    match &s[i..] {
        [] => Some(false),
        [b'Z' | b'z'] => Some(true),
        [b'+' | b'-', rest @ ..] => {
            let ok = match rest.len() {
                2 => number_at(rest, 0, 2).is_some_and(|h| h <= 23),
                4 => {
                    number_at(rest, 0, 2).is_some_and(|h| h <= 23)
                        && number_at(rest, 2, 2).is_some_and(|m| m <= 59)
                }
                5 => {
                    rest[2] == b':'
                        && number_at(rest, 0, 2).is_some_and(|h| h <= 23)
                        && number_at(rest, 3, 2).is_some_and(|m| m <= 59)
                }
                _ => false,
            };
            ok.then_some(true)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_numbers() {
        for ok in ["0", "-0", "12", "-3.25", "1e5", "1.5E-3", "0.0"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "1 ", "0x10",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
        assert!(is_json_integer(b"-12") && !is_json_integer(b"012") && !is_json_integer(b"1.0"));
        assert_eq!(parse_integer(b" +007 "), Some(7));
        assert_eq!(parse_number(b"1."), Some(1.0));
        assert_eq!(parse_number(b"inf"), None);
        assert_eq!(parse_number(b"NaN"), None);
        assert!(is_portable_json_number(b"1.5e300") && !is_portable_json_number(b"1e400"));
    }

    #[test]
    fn dates_and_times() {
        assert!(is_date(b"2024-02-29") && !is_date(b"2023-02-29") && !is_date(b"2024-13-01"));
        assert!(!is_date(b"2024/01/01") && !is_date(b"2024-01-01T00:00"));
        assert_eq!(datetime_offset(b"2024-01-02T03:04:05"), Some(false));
        assert_eq!(datetime_offset(b"2024-01-02 03:04:05.123456"), Some(false));
        assert_eq!(datetime_offset(b"2024-01-02T03:04:05Z"), Some(true));
        assert_eq!(datetime_offset(b"2024-01-02T03:04:05.5+05:30"), Some(true));
        assert_eq!(datetime_offset(b"2024-01-02T03:04-0800"), Some(true));
        assert_eq!(datetime_offset(b"2024-01-02T24:00:00"), None);
        assert_eq!(datetime_offset(b"2024-01-02T03:04:05."), None);
        assert_eq!(datetime_offset(b"2024-01-02T03:04:05+5"), None);
        assert_eq!(datetime_offset(b"2024-01-02"), None);
    }

    #[test]
    fn kinds_round_trip_through_their_schema() {
        for kind in [
            Kind::String,
            Kind::Integer,
            Kind::Number,
            Kind::Boolean,
            Kind::Date,
            Kind::DateTime { tz: true },
            Kind::DateTime { tz: false },
        ] {
            assert_eq!(Kind::from_schema(&kind.json_schema()), kind);
        }
    }

    #[test]
    fn catalog_schemas_are_read_by_their_airbyte_type() {
        use serde_json::json;
        for (schema, kind) in [
            (
                json!({"type": ["null", "string"], "airbyte_type": "timestamp_with_timezone"}),
                Kind::DateTime { tz: true },
            ),
            (
                json!({"type": "string", "airbyte_type": "timestamp_without_timezone"}),
                Kind::DateTime { tz: false },
            ),
            (
                json!({"type": "string", "format": "date-time"}),
                Kind::DateTime { tz: true },
            ),
            (
                json!({"type": "number", "airbyte_type": "integer"}),
                Kind::Integer,
            ),
            (
                json!({"oneOf": [{"type": "null"}, {"type": "boolean"}]}),
                Kind::Boolean,
            ),
            (json!({"type": "string", "format": "time"}), Kind::String),
            (json!({"type": ["string", "integer"]}), Kind::String),
            (json!({"type": "object"}), Kind::String),
            (json!({}), Kind::String),
        ] {
            assert_eq!(Kind::from_schema(&schema), kind, "{schema}");
        }
    }

    proptest! {
        // Our JSON number grammar agrees with serde_json's on any short ASCII text (short, so
        // an exponent that overflows, which serde reports first, has nothing after it).
        #[test]
        fn json_number_grammar_matches_serde(s in "[-+0-9.eE ]{0,5}") {
            // serde_json knows the grammar but also refuses what overflows an f64.
            let parsed = serde_json::from_str::<serde_json::Number>(&s);
            let serde_says = (parsed.is_ok() || parsed.is_err_and(|e| e.to_string().contains("out of range")))
                && !s.starts_with(' ') && !s.ends_with(' ');
            prop_assert_eq!(is_json_number(s.as_bytes()), serde_says);
        }

        // Every date-time we accept, chrono reads as the same instant's fields.
        #[test]
        fn accepted_datetimes_parse_in_chrono(
            s in "20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9](:[0-6][0-9](\\.[0-9]{1,6})?)?(Z|[+-][01][0-9]:[0-5][0-9])?"
        ) {
            if let Some(tz) = datetime_offset(s.as_bytes()) {
                let normalized = s.replacen(' ', "T", 1);
                let with_seconds = if normalized.len() == 16 || normalized[16..].starts_with(['Z', '+', '-']) {
                    format!("{}:00{}", &normalized[..16], &normalized[16..])
                } else {
                    normalized
                };
                let parsed = if tz {
                    chrono::DateTime::parse_from_rfc3339(&with_seconds).is_ok()
                } else {
                    chrono::NaiveDateTime::parse_from_str(&with_seconds, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                };
                // Leap seconds (:60) are ours to accept and chrono's to refuse.
                prop_assert!(parsed || with_seconds.get(17..19) == Some("60"), "{}", s);
            }
        }
    }
}
