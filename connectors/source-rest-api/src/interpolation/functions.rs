//! Airbyte's interpolation macros (`now_utc`, `today_utc`, `day_delta`, `duration`,
//! `format_datetime`, `str_to_datetime`, `timestamp`, `max`, `min`, ...) and filters (`hash`,
//! `base64encode`, `base64decode`, `string`, `regex_search`, `regex_replace`), plus the helpers
//! `+`/`-` are rewritten to so datetimes and durations can be added and subtracted.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;

use super::datetime::{PyDuration, format_airbyte, parse_loose, strftime, utc_now};
use super::literal::py_str;
use super::objects::{PyDate, PyDateTime, PyTimedelta, as_datetime, as_duration};

pub fn register(env: &mut Environment<'static>) {
    env.add_function("now_utc", now_utc);
    env.add_function("today_utc", today_utc);
    env.add_function("today_with_timezone", today_with_timezone);
    env.add_function("timestamp", timestamp);
    env.add_function("max", |args: Rest<Value>| extreme(&args, Ordering::Greater));
    env.add_function("min", |args: Rest<Value>| extreme(&args, Ordering::Less));
    env.add_function("day_delta", day_delta);
    env.add_function("duration", duration);
    env.add_function("format_datetime", format_datetime);
    env.add_function("str_to_datetime", str_to_datetime);
    env.add_function("camel_case_to_snake_case", camel_case_to_snake_case);
    env.add_function("__ab_add", add);
    env.add_function("__ab_sub", sub);
    env.add_filter("hash", hash);
    env.add_filter("base64encode", base64encode);
    env.add_filter("base64decode", base64decode);
    env.add_filter("base64binascii_decode", base64decode);
    env.add_filter("string", string);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_replace", regex_replace);
}

fn err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn now_utc() -> Value {
    Value::from_object(PyDateTime(utc_now()))
}

fn today_utc() -> Value {
    Value::from_object(PyDate(utc_now().date_naive()))
}

fn today_with_timezone(tz: &str) -> Result<Value, Error> {
    match tz {
        "UTC" | "Etc/UTC" | "GMT" | "Z" => Ok(today_utc()),
        other => Err(err(format!(
            "today_with_timezone: only UTC is supported, got '{other}'"
        ))),
    }
}

/// `timestamp(1646006400)` → 1646006400; `timestamp('2022-02-28')` → 1646006400.
fn timestamp(v: Value) -> Result<Value, Error> {
    if let Some(d) = as_datetime(&v) {
        return Ok(Value::from(d.timestamp()));
    }
    match v.kind() {
        ValueKind::Number => Ok(Value::from(f64::try_from(v)?.trunc() as i64)),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            if let Ok(n) = s.trim().parse::<f64>() {
                return Ok(Value::from(n.trunc() as i64));
            }
            parse_loose(s)
                .map(|d| Value::from(d.timestamp()))
                .map_err(err)
        }
        _ => Err(err(format!("timestamp: cannot convert {v}"))),
    }
}

/// Python's `max(a, b, ...)` / `max(iterable)` (and `min`).
fn extreme(args: &[Value], want: Ordering) -> Result<Value, Error> {
    let items: Vec<Value> = match args {
        [one] if matches!(one.kind(), ValueKind::Seq | ValueKind::Iterable) => {
            one.try_iter()?.collect()
        }
        [one] if one.kind() == ValueKind::Map && as_datetime(one).is_none() => {
            one.try_iter()?.collect()
        }
        many => many.to_vec(),
    };
    let mut best: Option<Value> = None;
    for item in items {
        best = Some(match best {
            None => item,
            Some(b) => {
                if item.partial_cmp(&b) == Some(want) {
                    item
                } else {
                    b
                }
            }
        });
    }
    best.ok_or_else(|| err("max/min of an empty sequence"))
}

/// `day_delta(1)` → now + 1 day as `%Y-%m-%dT%H:%M:%S.%f%z` (or `format`).
fn day_delta(num_days: f64, format: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let format = match kwargs.get::<Option<String>>("format")? {
        Some(f) => f,
        None => format.unwrap_or_else(|| "%Y-%m-%dT%H:%M:%S.%f%z".into()),
    };
    kwargs.assert_all_used()?;
    let delta = chrono::TimeDelta::microseconds((num_days * 86_400e6) as i64);
    let dt = PyDuration { months: 0, delta }.add_to(&utc_now());
    Ok(Value::from(strftime(&dt, &format)))
}

fn duration(s: &str) -> Result<Value, Error> {
    PyDuration::parse(s)
        .map(|d| Value::from_object(PyTimedelta(d)))
        .map_err(err)
}

/// `format_datetime(dt, format, input_format=None)`: a datetime, an epoch number or a string
/// (ISO 8601, or `input_format`) formatted with Airbyte's formats (`%s`, `%ms` included).
fn format_datetime(
    dt: Value,
    format: &str,
    input_format: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let input_format: Option<String> = match kwargs.get::<Option<String>>("input_format")? {
        Some(f) => Some(f),
        None => input_format.map(str::to_string),
    };
    kwargs.assert_all_used()?;
    let parsed = if let Some(d) = as_datetime(&dt) {
        d
    } else if let Some(n) = dt.as_i64() {
        chrono::DateTime::from_timestamp(n, 0)
            .ok_or_else(|| err(format!("format_datetime: bad timestamp {n}")))?
            .fixed_offset()
    } else {
        let s = dt
            .as_str()
            .ok_or_else(|| err(format!("format_datetime: cannot format {dt}")))?;
        match input_format {
            Some(f) => super::datetime::parse_airbyte(s, &f).map_err(err)?,
            None => parse_loose(s).map_err(err)?,
        }
    };
    Ok(Value::from(format_airbyte(&parsed, format)))
}

fn str_to_datetime(s: &str) -> Result<Value, Error> {
    parse_loose(s)
        .map(|d| Value::from_object(PyDateTime(d)))
        .map_err(err)
}

fn camel_case_to_snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if i > 0 && (prev_lower || (next_lower && chars[i - 1].is_uppercase())) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// `a + b` with Python semantics for datetimes, dates and timedeltas; numbers, strings and
/// sequences as usual.
fn add(a: Value, b: Value) -> Result<Value, Error> {
    if let (Some(d), Some(delta)) = (as_dt_only(&a), as_duration(&b)) {
        return Ok(Value::from_object(PyDateTime(delta.add_to(&d))));
    }
    if let (Some(delta), Some(d)) = (as_duration(&a), as_dt_only(&b)) {
        return Ok(Value::from_object(PyDateTime(delta.add_to(&d))));
    }
    if let (Some(date), Some(delta)) = (a.downcast_object_ref::<PyDate>(), as_duration(&b)) {
        return shift_date(date, delta, 1);
    }
    if let (Some(x), Some(y)) = (as_duration(&a), as_duration(&b)) {
        return Ok(Value::from_object(PyTimedelta(PyDuration {
            months: x.months + y.months,
            delta: x.delta + y.delta,
        })));
    }
    plain_op(&a, &b, true)
}

fn sub(a: Value, b: Value) -> Result<Value, Error> {
    if let (Some(d), Some(delta)) = (as_dt_only(&a), as_duration(&b)) {
        return Ok(Value::from_object(PyDateTime(delta.sub_from(&d))));
    }
    if let (Some(date), Some(delta)) = (a.downcast_object_ref::<PyDate>(), as_duration(&b)) {
        return shift_date(date, delta, -1);
    }
    if let (Some(x), Some(y)) = (as_datetime(&a), as_datetime(&b)) {
        return Ok(Value::from_object(PyTimedelta(PyDuration {
            months: 0,
            delta: x - y,
        })));
    }
    if let (Some(x), Some(y)) = (as_duration(&a), as_duration(&b)) {
        return Ok(Value::from_object(PyTimedelta(PyDuration {
            months: x.months - y.months,
            delta: x.delta - y.delta,
        })));
    }
    plain_op(&a, &b, false)
}

fn as_dt_only(v: &Value) -> Option<super::datetime::Dt> {
    v.downcast_object_ref::<PyDateTime>().map(|d| d.0)
}

fn shift_date(date: &PyDate, delta: PyDuration, sign: i64) -> Result<Value, Error> {
    let dt = if sign > 0 {
        delta.add_to(&date.as_datetime())
    } else {
        delta.sub_from(&date.as_datetime())
    };
    Ok(Value::from_object(PyDate(dt.date_naive())))
}

fn plain_op(a: &Value, b: &Value, is_add: bool) -> Result<Value, Error> {
    let op = if is_add { "+" } else { "-" };
    match (a.kind(), b.kind()) {
        (ValueKind::Number, ValueKind::Number) => {
            if let (true, true, Some(x), Some(y)) =
                (a.is_integer(), b.is_integer(), a.as_i64(), b.as_i64())
            {
                let r = if is_add {
                    x.checked_add(y)
                } else {
                    x.checked_sub(y)
                };
                if let Some(r) = r {
                    return Ok(Value::from(r));
                }
            }
            let (x, y) = (f64::try_from(a.clone())?, f64::try_from(b.clone())?);
            Ok(Value::from(if is_add { x + y } else { x - y }))
        }
        (ValueKind::String, ValueKind::String) if is_add => Ok(Value::from(format!(
            "{}{}",
            a.as_str().unwrap_or_default(),
            b.as_str().unwrap_or_default()
        ))),
        (ValueKind::Seq, ValueKind::Seq) if is_add => Ok(Value::from(
            a.try_iter()?.chain(b.try_iter()?).collect::<Vec<_>>(),
        )),
        _ => Err(err(format!(
            "unsupported operand types for {op}: {} and {}",
            a.kind(),
            b.kind()
        ))),
    }
}

fn text_of(v: &Value) -> String {
    let mut s = String::new();
    py_str(v, &mut s);
    s
}

/// `hash(hash_type='md5', salt=None)`: hex digest of `str(value)` (+ salt).
fn hash(
    value: Value,
    hash_type: Option<String>,
    salt: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let hash_type = kwargs.get::<Option<String>>("hash_type")?.or(hash_type);
    let salt = kwargs.get::<Option<String>>("salt")?.or(salt);
    kwargs.assert_all_used()?;
    let mut data = text_of(&value).into_bytes();
    if let Some(salt) = salt {
        data.extend_from_slice(salt.as_bytes());
    }
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    Ok(
        match hash_type
            .as_deref()
            .unwrap_or("md5")
            .to_ascii_lowercase()
            .as_str()
        {
            "md5" => hex(&md5::Md5::digest(&data)),
            "sha1" => hex(&sha1::Sha1::digest(&data)),
            "sha224" => hex(&sha2::Sha224::digest(&data)),
            "sha256" => hex(&sha2::Sha256::digest(&data)),
            "sha384" => hex(&sha2::Sha384::digest(&data)),
            "sha512" => hex(&sha2::Sha512::digest(&data)),
            other => return Err(err(format!("hash: unsupported hash type '{other}'"))),
        },
    )
}

fn base64encode(value: Value) -> String {
    B64.encode(text_of(&value))
}

fn base64decode(value: &str) -> Result<String, Error> {
    let bytes = B64
        .decode(value.trim())
        .map_err(|e| err(format!("base64decode: {e}")))?;
    String::from_utf8(bytes).map_err(|e| err(format!("base64decode: {e}")))
}

/// Airbyte's `string` filter: strings as they are; anything else as its JSON in triple quotes,
/// so the result stays a string after literal evaluation.
fn string(value: Value) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        return Ok(Value::from(s));
    }
    let json = serde_json::to_value(&value).map_err(|e| err(format!("string: {e}")))?;
    let mut out = String::from("\"\"\"");
    python_json(&json, &mut out);
    out.push_str("\"\"\"");
    Ok(Value::from(out))
}

/// `json.dumps` with Python's default separators (`", "`, `": "`) and ASCII escapes.
pub fn python_json(v: &Json, out: &mut String) {
    match v {
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                ascii_json_string(k, out);
                out.push_str(": ");
                python_json(item, out);
            }
            out.push('}');
        }
        Json::String(s) => ascii_json_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn ascii_json_string(s: &str, out: &mut String) {
    let escaped = serde_json::to_string(s).unwrap_or_default();
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, Error> {
    regex::Regex::new(pattern).map_err(|e| err(format!("invalid regex '{pattern}': {e}")))
}

/// `regex_search(regex)`: the first group of the first match (the match without groups), or
/// an empty string.
fn regex_search(value: &str, pattern: &str) -> Result<String, Error> {
    let re = compile_regex(pattern)?;
    Ok(match re.captures(value) {
        Some(c) => c
            .get(1)
            .or_else(|| c.get(0))
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
        None => String::new(),
    })
}

/// `regex_replace(regex, replacement)`: every match replaced; `\1` and `\g<name>` refer to
/// groups as in Python.
fn regex_replace(value: &str, pattern: &str, replacement: &str) -> Result<String, Error> {
    let re = compile_regex(pattern)?;
    Ok(re
        .replace_all(value, python_replacement(replacement).as_str())
        .into_owned())
}

fn python_replacement(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len());
    let chars: Vec<char> = repl.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '$' => out.push_str("$$"),
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                if n.is_ascii_digit() {
                    let mut j = i + 1;
                    let mut num = String::new();
                    while j < chars.len() && chars[j].is_ascii_digit() && num.len() < 2 {
                        num.push(chars[j]);
                        j += 1;
                    }
                    out.push_str(&format!("${{{num}}}"));
                    i = j;
                    continue;
                }
                if n == 'g'
                    && chars.get(i + 2) == Some(&'<')
                    && let Some(end) = chars[i + 3..].iter().position(|c| *c == '>')
                {
                    let name: String = chars[i + 3..i + 3 + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i += 4 + end;
                    continue;
                }
                match n {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    '\\' => out.push('\\'),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                i += 2;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replacements() {
        assert_eq!(python_replacement(r"\1-\g<2>$"), "${1}-${2}$$");
        assert_eq!(
            regex_replace("hello-world_foo", "[_-]", " ").unwrap(),
            "hello world foo"
        );
        assert_eq!(
            regex_replace("a1b22", r"(\d+)", r"<\1>").unwrap(),
            "a<1>b<22>"
        );
    }

    #[test]
    fn snake_case() {
        assert_eq!(
            camel_case_to_snake_case("CamelCaseString"),
            "camel_case_string"
        );
        assert_eq!(camel_case_to_snake_case("HTTPResponse"), "http_response");
    }
}
