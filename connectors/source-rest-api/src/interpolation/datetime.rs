//! Python-compatible datetimes for manifests: `strftime`/`strptime` with Python's directives
//! (plus Airbyte's `%s`, `%ms`, `%s_as_float`, `%epoch_microseconds`, `%_ms`), ISO 8601
//! durations, and a lenient ISO parser (what `dateutil` accepts in practice).

use std::fmt::Write as _;

use chrono::{
    DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    Timelike, Utc,
};

pub type Dt = DateTime<FixedOffset>;

pub fn utc_now() -> Dt {
    Utc::now().fixed_offset()
}

pub fn utc() -> FixedOffset {
    chrono::Offset::fix(&Utc)
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Python's `datetime.strftime`.
pub fn strftime(dt: &Dt, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        match d {
            'Y' => {
                let _ = write!(out, "{:04}", dt.year());
            }
            'y' => {
                let _ = write!(out, "{:02}", dt.year().rem_euclid(100));
            }
            'm' => {
                let _ = write!(out, "{:02}", dt.month());
            }
            'd' => {
                let _ = write!(out, "{:02}", dt.day());
            }
            'e' => {
                let _ = write!(out, "{:>2}", dt.day());
            }
            'H' => {
                let _ = write!(out, "{:02}", dt.hour());
            }
            'I' => {
                let h = dt.hour() % 12;
                let _ = write!(out, "{:02}", if h == 0 { 12 } else { h });
            }
            'p' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
            'M' => {
                let _ = write!(out, "{:02}", dt.minute());
            }
            'S' => {
                let _ = write!(out, "{:02}", dt.second());
            }
            'f' => {
                let _ = write!(out, "{:06}", dt.nanosecond() / 1000 % 1_000_000);
            }
            'z' => out.push_str(&offset_text(dt.offset(), false)),
            'Z' => out.push_str(&tz_name(dt.offset())),
            'j' => {
                let _ = write!(out, "{:03}", dt.ordinal());
            }
            'a' => out.push_str(&WEEKDAYS[dt.weekday().num_days_from_monday() as usize][..3]),
            'A' => out.push_str(WEEKDAYS[dt.weekday().num_days_from_monday() as usize]),
            'b' | 'h' => out.push_str(&MONTHS[dt.month0() as usize][..3]),
            'B' => out.push_str(MONTHS[dt.month0() as usize]),
            'w' => {
                let _ = write!(out, "{}", dt.weekday().num_days_from_sunday());
            }
            'u' => {
                let _ = write!(out, "{}", dt.weekday().number_from_monday());
            }
            's' => {
                let _ = write!(out, "{}", dt.timestamp());
            }
            'F' => {
                let _ = write!(out, "{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day());
            }
            'T' => {
                let _ = write!(
                    out,
                    "{:02}:{:02}:{:02}",
                    dt.hour(),
                    dt.minute(),
                    dt.second()
                );
            }
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

fn offset_text(offset: &FixedOffset, colon: bool) -> String {
    let secs = offset.local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.abs();
    let (h, m) = (secs / 3600, secs / 60 % 60);
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

fn tz_name(offset: &FixedOffset) -> String {
    if offset.local_minus_utc() == 0 {
        "UTC".into()
    } else {
        format!("UTC{}", offset_text(offset, true))
    }
}

/// Airbyte's `DatetimeParser.format`: the epoch formats as a whole, else `strftime`.
pub fn format_airbyte(dt: &Dt, format: &str) -> String {
    match format {
        "%s" => dt.timestamp().to_string(),
        "%s_as_float" => {
            let micros = dt.timestamp_micros();
            python_float(micros as f64 / 1e6)
        }
        "%epoch_microseconds" => dt.timestamp_micros().to_string(),
        "%ms" => dt.timestamp_millis().to_string(),
        f if f.contains("%_ms") => {
            let millis = format!("{:03}", dt.timestamp_subsec_millis());
            strftime(dt, &f.replace("%_ms", "\u{0}MS\u{0}")).replace("\u{0}MS\u{0}", &millis)
        }
        f => strftime(dt, f),
    }
}

/// Airbyte's `DatetimeParser.parse`: the epoch formats, else `strptime`; a naive result is UTC.
pub fn parse_airbyte(text: &str, format: &str) -> Result<Dt, String> {
    let text = text.trim();
    let bad = || format!("'{text}' does not match the datetime format '{format}'");
    match format {
        "%s" => {
            let secs: i64 = text.parse().map_err(|_| bad())?;
            DateTime::from_timestamp(secs, 0)
                .map(|d| d.fixed_offset())
                .ok_or_else(bad)
        }
        "%s_as_float" => {
            let secs: f64 = text.parse().map_err(|_| bad())?;
            DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
                .map(|d| d.fixed_offset())
                .ok_or_else(bad)
        }
        "%epoch_microseconds" => {
            let n: i64 = text.parse().map_err(|_| bad())?;
            DateTime::from_timestamp_micros(n)
                .map(|d| d.fixed_offset())
                .ok_or_else(bad)
        }
        "%ms" => {
            let n: i64 = text.parse().map_err(|_| bad())?;
            DateTime::from_timestamp_millis(n)
                .map(|d| d.fixed_offset())
                .ok_or_else(bad)
        }
        f => strptime(text, &f.replace("%_ms", "%f")),
    }
}

/// Python's `datetime.strptime` (the result is UTC when the format has no offset).
pub fn strptime(text: &str, format: &str) -> Result<Dt, String> {
    let bad = |why: &str| format!("'{text}' does not match the datetime format '{format}': {why}");
    let mut p = Parsed::default();
    let s = text.as_bytes();
    let mut i = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            let Some(d) = chars.next() else {
                return Err(bad("a lone '%' ends the format"));
            };
            match d {
                'Y' => p.year = Some(digits(s, &mut i, 4, 4).ok_or_else(|| bad("year"))? as i32),
                'y' => {
                    let y = digits(s, &mut i, 2, 2).ok_or_else(|| bad("year"))? as i32;
                    p.year = Some(if y < 69 { 2000 + y } else { 1900 + y });
                }
                'm' => p.month = Some(digits(s, &mut i, 1, 2).ok_or_else(|| bad("month"))? as u32),
                'd' | 'e' => {
                    skip_spaces(s, &mut i);
                    p.day = Some(digits(s, &mut i, 1, 2).ok_or_else(|| bad("day"))? as u32)
                }
                'H' => p.hour = digits(s, &mut i, 1, 2).ok_or_else(|| bad("hour"))? as u32,
                'I' => p.hour12 = Some(digits(s, &mut i, 1, 2).ok_or_else(|| bad("hour"))? as u32),
                'M' => p.minute = digits(s, &mut i, 1, 2).ok_or_else(|| bad("minute"))? as u32,
                'S' => p.second = digits(s, &mut i, 1, 2).ok_or_else(|| bad("second"))? as u32,
                'f' => {
                    let start = i;
                    let n = digits(s, &mut i, 1, 6).ok_or_else(|| bad("microseconds"))?;
                    let len = i - start;
                    p.micro = (n * 10u64.pow(6 - len as u32)) as u32;
                }
                'j' => {
                    p.ordinal =
                        Some(digits(s, &mut i, 1, 3).ok_or_else(|| bad("day of year"))? as u32)
                }
                'p' => {
                    let word = take_alpha(s, &mut i).to_ascii_uppercase();
                    p.pm = Some(match word.as_str() {
                        "AM" => false,
                        "PM" => true,
                        _ => return Err(bad("AM/PM")),
                    });
                }
                'z' => p.offset = Some(parse_offset(s, &mut i).ok_or_else(|| bad("utc offset"))?),
                'Z' => {
                    let word = take_alpha(s, &mut i).to_ascii_uppercase();
                    if !matches!(word.as_str(), "UTC" | "GMT" | "Z") {
                        return Err(bad("time zone name"));
                    }
                    p.offset.get_or_insert(0);
                }
                'a' | 'A' => {
                    let word = take_alpha(s, &mut i).to_ascii_lowercase();
                    if !WEEKDAYS.iter().any(|w| {
                        w.to_ascii_lowercase() == word || w[..3].eq_ignore_ascii_case(&word)
                    }) {
                        return Err(bad("weekday name"));
                    }
                }
                'b' | 'B' | 'h' => {
                    let word = take_alpha(s, &mut i).to_ascii_lowercase();
                    let m = MONTHS
                        .iter()
                        .position(|m| {
                            m.to_ascii_lowercase() == word || m[..3].eq_ignore_ascii_case(&word)
                        })
                        .ok_or_else(|| bad("month name"))?;
                    p.month = Some(m as u32 + 1);
                }
                's' => {
                    let neg = s.get(i) == Some(&b'-');
                    if neg {
                        i += 1;
                    }
                    let n = digits(s, &mut i, 1, 19).ok_or_else(|| bad("epoch seconds"))? as i64;
                    p.epoch = Some(if neg { -n } else { n });
                }
                'T' => {
                    p.hour = digits(s, &mut i, 1, 2).ok_or_else(|| bad("hour"))? as u32;
                    expect(s, &mut i, b':').ok_or_else(|| bad("':'"))?;
                    p.minute = digits(s, &mut i, 1, 2).ok_or_else(|| bad("minute"))? as u32;
                    expect(s, &mut i, b':').ok_or_else(|| bad("':'"))?;
                    p.second = digits(s, &mut i, 1, 2).ok_or_else(|| bad("second"))? as u32;
                }
                'F' => {
                    p.year = Some(digits(s, &mut i, 4, 4).ok_or_else(|| bad("year"))? as i32);
                    expect(s, &mut i, b'-').ok_or_else(|| bad("'-'"))?;
                    p.month = Some(digits(s, &mut i, 1, 2).ok_or_else(|| bad("month"))? as u32);
                    expect(s, &mut i, b'-').ok_or_else(|| bad("'-'"))?;
                    p.day = Some(digits(s, &mut i, 1, 2).ok_or_else(|| bad("day"))? as u32);
                }
                '%' => expect(s, &mut i, b'%').ok_or_else(|| bad("'%'"))?,
                other => return Err(bad(&format!("unsupported directive '%{other}'"))),
            }
        } else if c.is_whitespace() {
            skip_spaces(s, &mut i);
        } else {
            let mut buf = [0u8; 4];
            let lit = c.encode_utf8(&mut buf).as_bytes();
            if s.get(i..i + lit.len()) != Some(lit) {
                return Err(bad(&format!("expected '{c}'")));
            }
            i += lit.len();
        }
    }
    if i != s.len() {
        return Err(bad("unconverted data remains"));
    }
    p.build().ok_or_else(|| bad("not a valid date"))
}

#[derive(Default)]
struct Parsed {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    ordinal: Option<u32>,
    hour: u32,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    micro: u32,
    offset: Option<i32>,
    epoch: Option<i64>,
}

impl Parsed {
    fn build(self) -> Option<Dt> {
        if let Some(secs) = self.epoch {
            return DateTime::from_timestamp(secs, 0).map(|d| d.fixed_offset());
        }
        let year = self.year.unwrap_or(1900);
        let date = match (self.ordinal, self.month, self.day) {
            (Some(o), None, None) => NaiveDate::from_yo_opt(year, o)?,
            _ => NaiveDate::from_ymd_opt(year, self.month.unwrap_or(1), self.day.unwrap_or(1))?,
        };
        let mut hour = self.hour;
        if let Some(h) = self.hour12 {
            hour = h % 12 + if self.pm == Some(true) { 12 } else { 0 };
        } else if self.pm == Some(true) && hour < 12 {
            hour += 12;
        }
        let time = NaiveTime::from_hms_micro_opt(hour, self.minute, self.second, self.micro)?;
        let offset = FixedOffset::east_opt(self.offset.unwrap_or(0))?;
        NaiveDateTime::new(date, time)
            .and_local_timezone(offset)
            .single()
    }
}

fn digits(s: &[u8], i: &mut usize, min: usize, max: usize) -> Option<u64> {
    let start = *i;
    let mut n: u64 = 0;
    while *i < s.len() && *i - start < max && s[*i].is_ascii_digit() {
        n = n * 10 + u64::from(s[*i] - b'0');
        *i += 1;
    }
    (*i - start >= min).then_some(n)
}

fn expect(s: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (s.get(*i) == Some(&c)).then(|| *i += 1)
}

fn skip_spaces(s: &[u8], i: &mut usize) {
    while *i < s.len() && s[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn take_alpha(s: &[u8], i: &mut usize) -> String {
    let start = *i;
    while *i < s.len() && s[*i].is_ascii_alphabetic() {
        *i += 1;
    }
    String::from_utf8_lossy(&s[start..*i]).into_owned()
}

/// `Z`, `±HH`, `±HHMM`, `±HH:MM` (and seconds) in seconds east of UTC.
fn parse_offset(s: &[u8], i: &mut usize) -> Option<i32> {
    match s.get(*i)? {
        b'Z' | b'z' => {
            *i += 1;
            Some(0)
        }
        b'+' | b'-' => {
            let neg = s[*i] == b'-';
            *i += 1;
            let h = digits(s, i, 2, 2)? as i32;
            if s.get(*i) == Some(&b':') {
                *i += 1;
            }
            let m = digits(s, i, 2, 2).unwrap_or(0) as i32;
            let mut sec = 0;
            if s.get(*i) == Some(&b':') {
                *i += 1;
                sec = digits(s, i, 2, 2)? as i32;
            }
            let total = h * 3600 + m * 60 + sec;
            Some(if neg { -total } else { total })
        }
        _ => None,
    }
}

/// A datetime from an ISO 8601-ish string, as `dateutil.parser.parse` reads the usual forms:
/// `2022-01-14`, `2022-01-01 13:45:30`, `2022-01-01T13:45:30.123456Z`, `…+02:00`. Naive is UTC.
pub fn parse_loose(text: &str) -> Result<Dt, String> {
    let t = text.trim();
    let bad = || format!("'{text}' is not a recognised datetime");
    let s = t.as_bytes();
    let mut i = 0;
    let year = digits(s, &mut i, 4, 4).ok_or_else(bad)? as i32;
    let sep = |i: &mut usize| {
        if matches!(s.get(*i), Some(b'-' | b'/')) {
            *i += 1;
        }
    };
    sep(&mut i);
    let month = digits(s, &mut i, 1, 2).ok_or_else(bad)? as u32;
    sep(&mut i);
    let day = digits(s, &mut i, 1, 2).ok_or_else(bad)? as u32;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(bad)?;
    let (mut h, mut m, mut sec, mut micro, mut offset) = (0, 0, 0, 0, 0);
    if matches!(s.get(i), Some(b'T' | b't' | b' ')) {
        i += 1;
        h = digits(s, &mut i, 1, 2).ok_or_else(bad)? as u32;
        if s.get(i) == Some(&b':') {
            i += 1;
            m = digits(s, &mut i, 1, 2).ok_or_else(bad)? as u32;
            if s.get(i) == Some(&b':') {
                i += 1;
                sec = digits(s, &mut i, 1, 2).ok_or_else(bad)? as u32;
                if matches!(s.get(i), Some(b'.' | b',')) {
                    i += 1;
                    let start = i;
                    let n = digits(s, &mut i, 1, 9).ok_or_else(bad)?;
                    let len = (i - start) as u32;
                    micro = if len <= 6 {
                        (n * 10u64.pow(6 - len)) as u32
                    } else {
                        (n / 10u64.pow(len - 6)) as u32
                    };
                }
            }
        }
        skip_spaces(s, &mut i);
        if i < s.len() {
            let tail = t.get(i..).unwrap_or_default();
            if tail.eq_ignore_ascii_case("UTC") || tail.eq_ignore_ascii_case("GMT") {
                i = s.len();
            } else {
                offset = parse_offset(s, &mut i).ok_or_else(bad)?;
            }
        }
    }
    if i != s.len() {
        return Err(bad());
    }
    let time = NaiveTime::from_hms_micro_opt(h, m, sec, micro).ok_or_else(bad)?;
    NaiveDateTime::new(date, time)
        .and_local_timezone(FixedOffset::east_opt(offset).ok_or_else(bad)?)
        .single()
        .ok_or_else(bad)
}

/// An ISO 8601 duration (`P1D`, `PT1S`, `P1M`, `P1Y2M3DT4H5M6.5S`, `P2W`, `-P1D`), like
/// Python's `isodate.parse_duration`: months and years stay calendar units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PyDuration {
    pub months: i32,
    pub delta: TimeDelta,
}

impl PyDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("'{text}' is not an ISO 8601 duration");
        let t = text.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let rest = t.strip_prefix('P').ok_or_else(bad)?;
        if rest.is_empty() {
            return Err(bad());
        }
        let (mut months, mut micros, mut in_time) = (0i64, 0i128, false);
        let mut num = String::new();
        for c in rest.chars() {
            match c {
                'T' if !in_time && num.is_empty() => in_time = true,
                '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
                unit => {
                    let n: f64 = num.parse().map_err(|_| bad())?;
                    num.clear();
                    let whole = |n: f64| -> Result<i64, String> {
                        if n.fract() != 0.0 {
                            Err(bad())
                        } else {
                            Ok(n as i64)
                        }
                    };
                    match (in_time, unit) {
                        (false, 'Y') => months += 12 * whole(n)?,
                        (false, 'M') => months += whole(n)?,
                        (false, 'W') => micros += (n * 7.0 * 86_400e6) as i128,
                        (false, 'D') => micros += (n * 86_400e6) as i128,
                        (true, 'H') => micros += (n * 3_600e6) as i128,
                        (true, 'M') => micros += (n * 60e6) as i128,
                        (true, 'S') => micros += (n * 1e6).round() as i128,
                        _ => return Err(bad()),
                    }
                }
            }
        }
        if !num.is_empty() {
            return Err(bad());
        }
        let delta = TimeDelta::microseconds(micros as i64);
        let d = PyDuration {
            months: months as i32,
            delta,
        };
        Ok(if neg { d.negated() } else { d })
    }

    pub fn negated(self) -> Self {
        PyDuration {
            months: -self.months,
            delta: -self.delta,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.months == 0 && self.delta.is_zero()
    }

    /// `dt + self`, saturating at the ends of the calendar (Python raises OverflowError;
    /// Airbyte treats that as "the end of time").
    pub fn add_to(&self, dt: &Dt) -> Dt {
        let with_months = if self.months >= 0 {
            dt.checked_add_months(Months::new(self.months as u32))
        } else {
            dt.checked_sub_months(Months::new(self.months.unsigned_abs()))
        };
        let Some(d) = with_months else {
            return if self.months >= 0 { max_dt() } else { min_dt() };
        };
        d.checked_add_signed(self.delta).unwrap_or_else(|| {
            if self.delta > TimeDelta::zero() {
                max_dt()
            } else {
                min_dt()
            }
        })
    }

    pub fn sub_from(&self, dt: &Dt) -> Dt {
        self.negated().add_to(dt)
    }

    /// Python's `str(timedelta)`: `1 day, 0:00:00`, `0:00:01.500000`.
    pub fn python_str(&self) -> String {
        let total = self.delta.num_microseconds().unwrap_or(i64::MAX);
        let days = total.div_euclid(86_400_000_000);
        let rest = total.rem_euclid(86_400_000_000);
        let (secs, micros) = (rest / 1_000_000, rest % 1_000_000);
        let mut s = String::new();
        if self.months != 0 {
            let _ = write!(s, "{} months, ", self.months);
        }
        if days != 0 {
            let _ = write!(s, "{days} day{}, ", if days.abs() == 1 { "" } else { "s" });
        }
        let _ = write!(s, "{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        if micros != 0 {
            let _ = write!(s, ".{micros:06}");
        }
        s
    }

    pub fn total_seconds(&self) -> f64 {
        self.delta.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
            + f64::from(self.months) * 30.0 * 86_400.0
    }
}

pub fn max_dt() -> Dt {
    DateTime::<Utc>::MAX_UTC.fixed_offset()
}

pub fn min_dt() -> Dt {
    DateTime::<Utc>::MIN_UTC.fixed_offset()
}

/// Python's `str(datetime)`: `2021-09-01 00:00:00+00:00`, with `.ffffff` when not zero.
pub fn python_str(dt: &Dt) -> String {
    let mut s = strftime(dt, "%Y-%m-%d %H:%M:%S");
    let micros = dt.nanosecond() / 1000 % 1_000_000;
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    s.push_str(&offset_text(dt.offset(), true));
    s
}

/// Python's `datetime.isoformat()` (separator `T`).
pub fn isoformat(dt: &Dt, sep: &str) -> String {
    python_str(dt).replacen(' ', sep, 1)
}

/// Python's `repr(float)` closely enough: `1.0`, `0.5`, `1e+20`.
pub fn python_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else if f.is_finite() && (f.abs() >= 1e16 || (f != 0.0 && f.abs() < 1e-4)) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Dt {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn strftime_matches_python() {
        let d = dt("2021-09-01T03:04:05.123456+00:00");
        assert_eq!(
            strftime(&d, "%Y-%m-%dT%H:%M:%S.%f%z"),
            "2021-09-01T03:04:05.123456+0000"
        );
        assert_eq!(
            strftime(&d, "%a %b %d %j %p %I %%"),
            "Wed Sep 01 244 AM 03 %"
        );
        assert_eq!(format_airbyte(&d, "%s"), "1630465445");
        assert_eq!(format_airbyte(&d, "%ms"), "1630465445123");
        assert_eq!(
            format_airbyte(&d, "%Y-%m-%dT%H:%M:%S.%_msZ"),
            "2021-09-01T03:04:05.123Z"
        );
        assert_eq!(python_str(&d), "2021-09-01 03:04:05.123456+00:00");
    }

    #[test]
    fn strptime_matches_python() {
        let d = strptime("2021-09-01T03:04:05Z", "%Y-%m-%dT%H:%M:%SZ").unwrap();
        assert_eq!(d, dt("2021-09-01T03:04:05Z"));
        let d = strptime("2021-09-01T03:04:05.12+0200", "%Y-%m-%dT%H:%M:%S.%f%z").unwrap();
        assert_eq!(d, dt("2021-09-01T03:04:05.120+02:00"));
        let d = strptime("2021-09-01T03:04:05.123456Z", "%Y-%m-%dT%H:%M:%S.%f%z").unwrap();
        assert_eq!(d, dt("2021-09-01T03:04:05.123456Z"));
        assert!(strptime("2021-09-01", "%Y-%m-%dT%H").is_err());
        assert!(strptime("2021-09-01x", "%Y-%m-%d").is_err());
        assert_eq!(
            parse_airbyte("1630465445", "%s").unwrap(),
            dt("2021-09-01T03:04:05Z")
        );
        assert_eq!(
            parse_airbyte("1630465445123", "%ms").unwrap(),
            dt("2021-09-01T03:04:05.123Z")
        );
        assert_eq!(
            strptime(
                "Wed, 01 Sep 2021 03:04:05 +0000",
                "%a, %d %b %Y %H:%M:%S %z"
            )
            .unwrap(),
            dt("2021-09-01T03:04:05Z")
        );
    }

    #[test]
    fn loose_parsing() {
        assert_eq!(
            parse_loose("2022-01-14").unwrap(),
            dt("2022-01-14T00:00:00Z")
        );
        assert_eq!(
            parse_loose("2022-01-01 13:45:30").unwrap(),
            dt("2022-01-01T13:45:30Z")
        );
        assert_eq!(
            parse_loose("2022-01-01T13:45:30.123456Z").unwrap(),
            dt("2022-01-01T13:45:30.123456Z")
        );
        assert_eq!(
            parse_loose("2022-02-28T00:00:00-08:00")
                .unwrap()
                .timestamp(),
            1646035200
        );
        assert!(parse_loose("yesterday").is_err());
    }

    #[test]
    fn durations() {
        let d = PyDuration::parse("P1D").unwrap();
        assert_eq!(d.python_str(), "1 day, 0:00:00");
        assert_eq!(
            PyDuration::parse("P6DT23H").unwrap().python_str(),
            "6 days, 23:00:00"
        );
        assert_eq!(
            PyDuration::parse("PT1S").unwrap().delta,
            TimeDelta::seconds(1)
        );
        assert_eq!(PyDuration::parse("P1M").unwrap().months, 1);
        assert_eq!(PyDuration::parse("P2W").unwrap().delta, TimeDelta::days(14));
        assert_eq!(
            PyDuration::parse("PT0.5S").unwrap().delta,
            TimeDelta::milliseconds(500)
        );
        assert!(PyDuration::parse("1D").is_err());
        assert!(PyDuration::parse("P").is_err());
        let jan31 = dt("2021-01-31T00:00:00Z");
        assert_eq!(
            PyDuration::parse("P1M").unwrap().add_to(&jan31),
            dt("2021-02-28T00:00:00Z")
        );
    }
}
