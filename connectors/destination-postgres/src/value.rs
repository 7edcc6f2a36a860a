//! One JSON value to one column value: parsing and range checks done here, so a value that
//! doesn't fit its column becomes NULL with a `changes` entry instead of failing the COPY.

use std::borrow::Cow;

use cdk::protocol::ChangeReason;

use crate::schema::{Column, JsonKind, PgType};

/// Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const DAY_MICROS: i64 = 86_400_000_000;
/// PostgreSQL's timestamp range, in microseconds from 2000-01-01: 4714-11-24 BC to 294277 AD.
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;
/// PostgreSQL's date range, in days from 2000-01-01.
const MIN_DATE: i32 = -2_451_545;
const END_DATE: i32 = 2_145_031_948;

/// A value ready to be written to a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
    /// A validated decimal literal.
    Num(Decimal<'a>),
    Bool(bool),
    /// Days since 2000-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since midnight, and the offset east of UTC in seconds.
    TimeTz(i64, i32),
    /// Microseconds since 2000-01-01 (UTC for `timestamptz`).
    Timestamp(i64),
    /// JSON text.
    Json(Cow<'a, str>),
}

/// Feeds a key cell to `hasher` such that cells PostgreSQL holds equal hash alike, for the
/// types a [split](crate::rows::Rows::with_split) allows (see [`splits_by_key`]): text by its
/// bytes (the default collation is deterministic), the others by their binary value. A
/// missing cell hashes as NULL.
pub fn hash_key_cell(cell: Option<&Cell<'_>>, hasher: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    match cell.unwrap_or(&Cell::Null) {
        Cell::Null => 0u8.hash(hasher),
        Cell::Text(t) | Cell::Json(t) => (1u8, t.as_ref()).hash(hasher),
        Cell::Num(d) => (2u8, d.text).hash(hasher),
        Cell::Int(v) | Cell::Time(v) | Cell::Timestamp(v) => (3u8, v).hash(hasher),
        Cell::Bool(b) => (4u8, b).hash(hasher),
        Cell::Date(d) => (5u8, d).hash(hasher),
        Cell::TimeTz(t, z) => (6u8, t, z).hash(hasher),
    }
}

/// Whether rows can be split by hashes of keys of this type: not decimals (`1.0` = `1.00`,
/// and an older `numeric(38,9)` column rounds) nor JSON.
pub fn splits_by_key(ty: PgType) -> bool {
    !matches!(ty, PgType::Decimal | PgType::Jsonb)
}

/// Converts the JSON value `raw` for `column`. `Err` carries the reason it was nulled.
pub fn coerce<'a>(column: &Column, text: &'a str) -> Result<Cell<'a>, ChangeReason> {
    let first = text.as_bytes().first().copied().unwrap_or(b'n');
    if first == b'n' {
        return Ok(Cell::Null);
    }
    match column.ty {
        PgType::Varchar => match first {
            b'"' => string(text)
                .and_then(|s| no_nul(s).ok_or(ChangeReason::DestinationTypecastError))
                .map(Cell::Text),
            _ => json(text).map(|j| match j {
                Cow::Borrowed(b) => Cell::Text(Cow::Borrowed(b)),
                Cow::Owned(o) => Cell::Text(Cow::Owned(o)),
            }),
        },
        PgType::Jsonb => {
            let ok = match column.json {
                JsonKind::Any => true,
                JsonKind::Object => first == b'{',
                JsonKind::Array => first == b'[',
            };
            if !ok {
                return Err(ChangeReason::DestinationTypecastError);
            }
            json(text).map(Cell::Json)
        }
        PgType::Bigint => integer(&scalar_text(text, first)?),
        PgType::Decimal => {
            let Cow::Borrowed(s) = scalar_text(text, first)? else {
                // A number written as a string with escapes: not a number.
                return Err(ChangeReason::DestinationTypecastError);
            };
            let d = Decimal::parse(s.trim()).ok_or(ChangeReason::DestinationTypecastError)?;
            d.check()?;
            Ok(Cell::Num(d))
        }
        PgType::Boolean => match text {
            "true" => Ok(Cell::Bool(true)),
            "false" => Ok(Cell::Bool(false)),
            _ if first == b'"' => match string(text)?.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Cell::Bool(true)),
                "false" => Ok(Cell::Bool(false)),
                _ => Err(ChangeReason::DestinationTypecastError),
            },
            _ => Err(ChangeReason::DestinationTypecastError),
        },
        PgType::Date => date(&string_only(text, first)?),
        PgType::Timestamp => timestamp(&string_only(text, first)?, false),
        PgType::TimestampTz => timestamp(&string_only(text, first)?, true),
        PgType::Time => time(&string_only(text, first)?, false),
        PgType::TimeTz => time(&string_only(text, first)?, true),
    }
}

/// The text of a number or of a string holding one.
fn scalar_text(text: &str, first: u8) -> Result<Cow<'_, str>, ChangeReason> {
    match first {
        b'"' => string(text),
        b'-' | b'0'..=b'9' => Ok(Cow::Borrowed(text)),
        _ => Err(ChangeReason::DestinationTypecastError),
    }
}

fn string_only(text: &str, first: u8) -> Result<Cow<'_, str>, ChangeReason> {
    if first == b'"' {
        string(text)
    } else {
        Err(ChangeReason::DestinationTypecastError)
    }
}

/// A JSON string literal's content, borrowed when it has no escapes.
pub fn string(text: &str) -> Result<Cow<'_, str>, ChangeReason> {
    let inner = &text[1..text.len().saturating_sub(1).max(1)];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(|_| ChangeReason::DestinationSerializationError)
}

/// `s` when it has no NUL (PostgreSQL text can't hold one). Valid JSON has control
/// characters only as escapes, so only an unescaped string can have one.
fn no_nul(s: Cow<'_, str>) -> Option<Cow<'_, str>> {
    match &s {
        Cow::Borrowed(_) => Some(s),
        Cow::Owned(o) => (!o.contains('\0')).then_some(s),
    }
}

/// JSON text for a JSONB column: PostgreSQL rejects `\u0000` in JSONB.
fn json(text: &str) -> Result<Cow<'_, str>, ChangeReason> {
    if has_nul_escape(text) {
        Err(ChangeReason::DestinationTypecastError)
    } else {
        Ok(Cow::Borrowed(text))
    }
}

/// Whether JSON text contains a `\u0000` escape.
pub fn has_nul_escape(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = match memchr::memchr(b'\\', b) {
        Some(i) => i,
        None => return false,
    };
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            if b[i + 1] == b'u' && b.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Removes `\u0000` escapes from JSON text (raw tables keep the rest of the record).
pub fn strip_nul_escapes(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut start) = (0, 0);
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            if b[i + 1] == b'u' && b.get(i + 2..i + 6) == Some(b"0000") {
                out.push_str(&text[start..i]);
                i += 6;
                start = i;
                continue;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[start.min(text.len())..]);
    out
}

fn integer<'a>(s: &str) -> Result<Cell<'a>, ChangeReason> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return Ok(Cell::Int(v));
    }
    let d = Decimal::parse(s).ok_or(ChangeReason::DestinationTypecastError)?;
    if !d.is_integral() {
        return Err(ChangeReason::DestinationTypecastError);
    }
    d.to_i64()
        .map(Cell::Int)
        .ok_or(ChangeReason::DestinationFieldSizeLimitation)
}

/// A decimal literal (JSON number syntax, with an optional leading `+`), kept as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal<'a> {
    pub text: &'a str,
    pub negative: bool,
    /// Digits before the point (may be empty or have leading zeros).
    pub int: &'a str,
    /// Digits after the point.
    pub frac: &'a str,
    pub exp: i64,
}

impl<'a> Decimal<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let b = text.as_bytes();
        let mut i = 0;
        let negative = match b.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int = &text[int_start..i];
        let mut frac = "";
        if i < b.len() && b[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac = &text[start..i];
        }
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut exp = 0i64;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let e = text[i + 1..].strip_prefix('+').unwrap_or(&text[i + 1..]);
            if e.is_empty() || e.len() > 12 || e == "-" {
                return None;
            }
            exp = e.parse().ok()?;
            i = b.len();
        }
        (i == b.len()).then_some(Self {
            text,
            negative,
            int,
            frac,
            exp,
        })
    }

    fn significant(&self) -> impl Iterator<Item = u8> + '_ {
        self.int.bytes().chain(self.frac.bytes())
    }

    /// Position of the decimal point within `int ++ frac`.
    pub fn point(&self) -> i64 {
        self.int.len() as i64 + self.exp
    }

    fn is_integral(&self) -> bool {
        let point = self.point();
        self.significant()
            .enumerate()
            .all(|(i, d)| (i as i64) < point || d == b'0')
    }

    fn to_i64(self) -> Option<i64> {
        let point = self.point();
        let mut v: i128 = 0;
        let mut len = 0i64;
        for d in self.significant() {
            if len >= point {
                break;
            }
            v = v * 10 + i128::from(d - b'0');
            if v > i128::from(i64::MAX) + 1 {
                return None;
            }
            len += 1;
        }
        while len < point {
            if v != 0 {
                v *= 10;
                if v > i128::from(i64::MAX) + 1 {
                    return None;
                }
            }
            len += 1;
            if len > 40 {
                break;
            }
        }
        let v = if self.negative { -v } else { v };
        i64::try_from(v).ok()
    }

    /// PostgreSQL's numeric limits: 131072 digits before the point, 16383 after.
    fn check(&self) -> Result<(), ChangeReason> {
        let first_nonzero = self.significant().position(|d| d != b'0');
        let Some(first) = first_nonzero else {
            return Ok(());
        };
        let int_digits = self.point() - first as i64;
        let scale = self.scale();
        if int_digits > 131_072 || scale > 16_383 {
            return Err(ChangeReason::DestinationFieldSizeLimitation);
        }
        Ok(())
    }

    /// Digits after the point, as written.
    pub fn scale(&self) -> i64 {
        (self.frac.len() as i64 - self.exp).max(0)
    }
}

/// Days since 2000-01-01 of a proleptic Gregorian date (year 0 = 1 BC).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - 10_957
}

/// (year, month, day) of a day count since 2000-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    postgres_common::civil_from_days(days + 10_957)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A small cursor over ASCII text.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        let mut v: i64 = 0;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            v = v * 10 + i64::from(self.b[self.i] - b'0');
            self.i += 1;
        }
        (self.i - start >= min).then_some(v)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    /// `YYYY-MM-DD` → (year, month, day), validated.
    fn date(&mut self) -> Option<(i64, u32, u32)> {
        let negative = self.eat(b'-');
        if !negative {
            self.eat(b'+');
        }
        let y = self.digits(4, 9)?;
        let y = if negative { -y } else { y };
        if !self.eat(b'-') {
            return None;
        }
        let m = self.digits(2, 2)? as u32;
        if !self.eat(b'-') {
            return None;
        }
        let d = self.digits(2, 2)? as u32;
        ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)).then_some((y, m, d))
    }

    /// `HH:MM[:SS[.ffffff]]` → microseconds (rounded to microseconds).
    fn time(&mut self) -> Option<i64> {
        let h = self.digits(2, 2)?;
        if !self.eat(b':') {
            return None;
        }
        let mi = self.digits(2, 2)?;
        let mut s = 0;
        let mut micros = 0;
        if self.eat(b':') {
            s = self.digits(2, 2)?;
            if self.eat(b'.') || self.eat(b',') {
                let start = self.i;
                let mut scale = 100_000;
                let mut round = false;
                while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
                    let n = self.i - start;
                    if n < 6 {
                        micros += i64::from(c - b'0') * scale;
                        scale /= 10;
                    } else if n == 6 {
                        round = c >= b'5';
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
                if round {
                    micros += 1;
                }
            }
        }
        let total = ((h * 60 + mi) * 60 + s) * 1_000_000 + micros;
        (h <= 24 && mi <= 59 && s <= 60 && total <= DAY_MICROS).then_some(total)
    }

    /// `Z`, `±HH`, `±HHMM`, `±HH:MM` → seconds east of UTC; `None` if there is none.
    fn offset(&mut self) -> Result<Option<i32>, ()> {
        match self.peek() {
            Some(b'Z' | b'z') => {
                self.i += 1;
                Ok(Some(0))
            }
            Some(sign @ (b'+' | b'-')) => {
                self.i += 1;
                let h = self.digits(2, 2).ok_or(())?;
                self.eat(b':');
                let m = self.digits(2, 2).unwrap_or(0);
                if h > 15 || m > 59 {
                    return Err(());
                }
                let secs = (h * 3600 + m * 60) as i32;
                Ok(Some(if sign == b'-' { -secs } else { secs }))
            }
            _ => Ok(None),
        }
    }

    /// An optional ` BC` era suffix.
    fn era_bc(&mut self) -> bool {
        let rest = &self.b[self.i..];
        if rest.eq_ignore_ascii_case(b" BC") {
            self.i = self.b.len();
            true
        } else {
            false
        }
    }
}

fn bc_year(y: i64, bc: bool) -> Option<i64> {
    match bc {
        true if y >= 1 => Some(1 - y),
        true => None,
        false => Some(y),
    }
}

fn date<'a>(s: &str) -> Result<Cell<'a>, ChangeReason> {
    let mut sc = Scan {
        b: s.trim().as_bytes(),
        i: 0,
    };
    let (y, m, d) = sc.date().ok_or(ChangeReason::DestinationTypecastError)?;
    // A full timestamp in a date column keeps its (local) date.
    if matches!(sc.peek(), Some(b'T' | b't' | b' ')) && !sc.b[sc.i..].eq_ignore_ascii_case(b" BC") {
        sc.i += 1;
        sc.time().ok_or(ChangeReason::DestinationTypecastError)?;
        sc.offset()
            .map_err(|()| ChangeReason::DestinationTypecastError)?;
    }
    let bc = sc.era_bc();
    if !sc.done() {
        return Err(ChangeReason::DestinationTypecastError);
    }
    let y = bc_year(y, bc).ok_or(ChangeReason::DestinationTypecastError)?;
    let days = days_from_civil(y, m, d);
    if days < i64::from(MIN_DATE) || days >= i64::from(END_DATE) {
        return Err(ChangeReason::DestinationFieldSizeLimitation);
    }
    Ok(Cell::Date(days as i32))
}

fn timestamp<'a>(s: &str, tz: bool) -> Result<Cell<'a>, ChangeReason> {
    let bad = ChangeReason::DestinationTypecastError;
    let mut sc = Scan {
        b: s.trim().as_bytes(),
        i: 0,
    };
    let (y, m, d) = sc.date().ok_or(bad)?;
    let mut micros = 0;
    let mut offset = None;
    if matches!(sc.peek(), Some(b'T' | b't' | b' ')) && !sc.b[sc.i..].eq_ignore_ascii_case(b" BC") {
        sc.i += 1;
        micros = sc.time().ok_or(bad)?;
        sc.eat(b' ');
        offset = sc.offset().map_err(|()| bad)?;
    }
    let bc = sc.era_bc();
    if !sc.done() {
        return Err(bad);
    }
    let y = bc_year(y, bc).ok_or(bad)?;
    let days = days_from_civil(y, m, d);
    let mut value = i128::from(days) * i128::from(DAY_MICROS) + i128::from(micros);
    if tz {
        value -= i128::from(offset.unwrap_or(0)) * 1_000_000;
    }
    if value < i128::from(MIN_TIMESTAMP) || value >= i128::from(END_TIMESTAMP) {
        return Err(ChangeReason::DestinationFieldSizeLimitation);
    }
    Ok(Cell::Timestamp(value as i64))
}

fn time<'a>(s: &str, tz: bool) -> Result<Cell<'a>, ChangeReason> {
    let bad = ChangeReason::DestinationTypecastError;
    let mut sc = Scan {
        b: s.trim().as_bytes(),
        i: 0,
    };
    let micros = sc.time().ok_or(bad)?;
    sc.eat(b' ');
    let offset = sc.offset().map_err(|()| bad)?;
    if !sc.done() {
        return Err(bad);
    }
    Ok(if tz {
        Cell::TimeTz(micros, offset.unwrap_or(0))
    } else {
        Cell::Time(micros)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn col(ty: PgType) -> Column {
        Column {
            name: "c".into(),
            field: "c".into(),
            ty,
            json: JsonKind::Any,
        }
    }

    use serde_json::value::RawValue;

    fn c(ty: PgType, json: &str) -> Result<Cell<'static>, ChangeReason> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        let raw: &'static RawValue = Box::leak(raw);
        coerce(&col(ty), raw.get())
    }

    use ChangeReason::{DestinationFieldSizeLimitation as Size, DestinationTypecastError as Cast};

    #[test]
    fn integers() {
        assert_eq!(c(PgType::Bigint, "42"), Ok(Cell::Int(42)));
        assert_eq!(
            c(PgType::Bigint, "-9223372036854775808"),
            Ok(Cell::Int(i64::MIN))
        );
        assert_eq!(c(PgType::Bigint, "1.0"), Ok(Cell::Int(1)));
        assert_eq!(c(PgType::Bigint, "1e3"), Ok(Cell::Int(1000)));
        assert_eq!(c(PgType::Bigint, "\"17\""), Ok(Cell::Int(17)));
        assert_eq!(c(PgType::Bigint, "9223372036854775808"), Err(Size));
        assert_eq!(c(PgType::Bigint, "1e30"), Err(Size));
        assert_eq!(c(PgType::Bigint, "1.5"), Err(Cast));
        assert_eq!(c(PgType::Bigint, "\"x\""), Err(Cast));
        assert_eq!(c(PgType::Bigint, "true"), Err(Cast));
        assert_eq!(c(PgType::Bigint, "null"), Ok(Cell::Null));
    }

    #[test]
    fn numbers() {
        assert!(matches!(c(PgType::Decimal, "1.25"), Ok(Cell::Num(d)) if d.text == "1.25"));
        assert!(matches!(c(PgType::Decimal, "\"-3e2\""), Ok(Cell::Num(d)) if d.exp == 2));
        assert_eq!(c(PgType::Decimal, "1e200000"), Err(Size));
        assert_eq!(c(PgType::Decimal, "\"NaN\""), Err(Cast));
        assert_eq!(c(PgType::Decimal, "[1]"), Err(Cast));
    }

    #[test]
    fn strings_and_json() {
        assert_eq!(c(PgType::Varchar, "\"a\""), Ok(Cell::Text("a".into())));
        assert_eq!(
            c(PgType::Varchar, "\"a\\nb\""),
            Ok(Cell::Text("a\nb".into()))
        );
        assert_eq!(c(PgType::Varchar, "12"), Ok(Cell::Text("12".into())));
        assert_eq!(c(PgType::Varchar, "\"a\\u0000b\""), Err(Cast));
        assert_eq!(c(PgType::Jsonb, "{\"a\":\"\\u0000\"}"), Err(Cast));
        assert_eq!(
            c(PgType::Jsonb, "{\"a\":\"\\\\u0000\"}"),
            Ok(Cell::Json("{\"a\":\"\\\\u0000\"}".into()))
        );
        let obj = Column {
            json: JsonKind::Object,
            ..col(PgType::Jsonb)
        };
        assert_eq!(coerce(&obj, "[1]"), Err(Cast));
        assert_eq!(
            strip_nul_escapes("{\"a\":\"x\\u0000y\\\\u0000\"}"),
            "{\"a\":\"xy\\\\u0000\"}"
        );
    }

    #[test]
    fn booleans() {
        assert_eq!(c(PgType::Boolean, "true"), Ok(Cell::Bool(true)));
        assert_eq!(c(PgType::Boolean, "\"FALSE\""), Ok(Cell::Bool(false)));
        assert_eq!(c(PgType::Boolean, "1"), Err(Cast));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(c(PgType::Date, "\"2000-01-02\""), Ok(Cell::Date(1)));
        assert_eq!(c(PgType::Date, "\"2024-02-30\""), Err(Cast));
        assert_eq!(c(PgType::Date, "\"not a date\""), Err(Cast));
        assert_eq!(
            c(PgType::Date, "\"0001-01-01 BC\""),
            Ok(Cell::Date(days_from_civil(0, 1, 1) as i32))
        );
        assert_eq!(c(PgType::Date, "\"5000-01-01 BC\""), Err(Size));
        assert_eq!(c(PgType::Date, "20240101"), Err(Cast));
        assert_eq!(
            c(PgType::TimestampTz, "\"2000-01-01T01:00:00+01:00\""),
            Ok(Cell::Timestamp(0))
        );
        assert_eq!(
            c(PgType::TimestampTz, "\"2000-01-01 00:00:01.5Z\""),
            Ok(Cell::Timestamp(1_500_000))
        );
        assert_eq!(
            c(PgType::Timestamp, "\"2000-01-01T01:00:00+01:00\""),
            Ok(Cell::Timestamp(3_600_000_000))
        );
        assert_eq!(
            c(PgType::TimestampTz, "\"2000-01-01T00:00:00.0000005\""),
            Ok(Cell::Timestamp(1))
        );
        assert_eq!(
            c(PgType::TimestampTz, "\"2000-01-01T25:00:00Z\""),
            Err(Cast)
        );
        assert_eq!(c(PgType::Time, "\"12:30\""), Ok(Cell::Time(45_000_000_000)));
        assert_eq!(
            c(PgType::TimeTz, "\"12:30:00-02:00\""),
            Ok(Cell::TimeTz(45_000_000_000, -7200))
        );
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 60, 10_000, 3_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), -10_957);
    }

    proptest! {
        #[test]
        fn decimal_parse_agrees_with_f64(v in proptest::num::f64::NORMAL) {
            let text = format!("{v:e}");
            let d = Decimal::parse(&text).unwrap();
            prop_assert_eq!(d.negative, v < 0.0);
        }

        #[test]
        fn timestamp_parser_never_panics(s in "\\PC{0,40}") {
            let _ = timestamp(&s, true);
            let _ = date(&s);
            let _ = time(&s, true);
        }

        #[test]
        fn timestamps_round_trip(days in -700_000i64..2_900_000, micros in 0i64..86_400_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assume!(y >= 1);
            let secs = micros / 1_000_000;
            let text = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                secs / 3600, secs / 60 % 60, secs % 60, micros % 1_000_000);
            prop_assert_eq!(timestamp(&text, true), Ok(Cell::Timestamp(days * DAY_MICROS + micros)));
        }
    }
}
