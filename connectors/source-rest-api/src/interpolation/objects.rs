//! The datetime, date and timedelta objects templates see (`now_utc()`, `today_utc()`,
//! `duration(...)`), with Python's methods (`strftime`, `isoformat`, `timestamp`, ...),
//! attributes, comparisons and printing.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use minijinja::value::{DynObject, Kwargs, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

use super::datetime::{Dt, PyDuration, isoformat, min_dt, python_str, strftime, utc};

/// A `datetime.datetime` in templates.
#[derive(Debug, Clone, Copy)]
pub struct PyDateTime(pub Dt);

/// A `datetime.date` in templates.
#[derive(Debug, Clone, Copy)]
pub struct PyDate(pub NaiveDate);

/// A `datetime.timedelta` (or `isodate.Duration`) in templates.
#[derive(Debug, Clone, Copy)]
pub struct PyTimedelta(pub PyDuration);

impl PyDate {
    pub fn as_datetime(&self) -> Dt {
        NaiveDateTime::new(self.0, NaiveTime::MIN)
            .and_local_timezone(utc())
            .single()
            .unwrap_or_else(min_dt)
    }
}

/// The datetime a template value stands for, when it stands for one.
pub fn as_datetime(v: &Value) -> Option<Dt> {
    object_datetime(v.as_object()?)
}

/// A date or datetime object as a datetime (a date at midnight UTC).
fn object_datetime(o: &DynObject) -> Option<Dt> {
    if let Some(d) = o.downcast_ref::<PyDateTime>() {
        return Some(d.0);
    }
    o.downcast_ref::<PyDate>().map(PyDate::as_datetime)
}

pub fn as_duration(v: &Value) -> Option<PyDuration> {
    v.downcast_object_ref::<PyTimedelta>().map(|d| d.0)
}

fn strftime_arg(args: &[Value]) -> Result<String, Error> {
    match args {
        [f] => f.as_str().map(str::to_string).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "strftime takes a format string",
            )
        }),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "strftime takes one argument",
        )),
    }
}

/// The `year`, `month` or `day` attribute of a date or datetime.
fn date_field(d: &impl Datelike, key: &str) -> Option<i64> {
    Some(match key {
        "year" => d.year() as i64,
        "month" => d.month() as i64,
        "day" => d.day() as i64,
        _ => return None,
    })
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let d = &self.0;
        let key = key.as_str()?;
        Some(Value::from(match key {
            "hour" => d.hour() as i64,
            "minute" => d.minute() as i64,
            "second" => d.second() as i64,
            "microsecond" => (d.nanosecond() / 1000 % 1_000_000) as i64,
            _ => date_field(d, key)?,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let d = &self.0;
        match method {
            "strftime" => Ok(Value::from(strftime(d, &strftime_arg(args)?))),
            "isoformat" => {
                let sep = args.first().and_then(Value::as_str).unwrap_or("T");
                Ok(Value::from(isoformat(d, sep)))
            }
            "timestamp" => Ok(Value::from(d.timestamp_micros() as f64 / 1e6)),
            "date" => Ok(Value::from_object(PyDate(d.date_naive()))),
            "astimezone" | "utcnow" => Ok(Value::from_object(PyDateTime(d.with_timezone(&utc())))),
            "replace" => {
                let mut out = *d;
                if let Some(kwargs) = args.last().and_then(|a| Kwargs::try_from(a.clone()).ok()) {
                    for key in kwargs.args() {
                        let v: Value = kwargs.get(key)?;
                        let n = v.as_i64();
                        out = match (key, n) {
                            ("year", Some(n)) => out.with_year(n as i32),
                            ("month", Some(n)) => out.with_month(n as u32),
                            ("day", Some(n)) => out.with_day(n as u32),
                            ("hour", Some(n)) => out.with_hour(n as u32),
                            ("minute", Some(n)) => out.with_minute(n as u32),
                            ("second", Some(n)) => out.with_second(n as u32),
                            ("microsecond", Some(n)) => out.with_nanosecond(n as u32 * 1000),
                            ("tzinfo", _) => Some(out),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            Error::new(ErrorKind::InvalidOperation, format!("replace: bad {key}"))
                        })?;
                    }
                    kwargs.assert_all_used()?;
                }
                Ok(Value::from_object(PyDateTime(out)))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        Some(self.0.cmp(&object_datetime(other)?))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&python_str(&self.0))
    }
}

impl Object for PyDate {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        date_field(&self.0, key.as_str()?).map(Value::from)
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => Ok(Value::from(strftime(
                &self.as_datetime(),
                &strftime_arg(args)?,
            ))),
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        if let Some(o) = other.downcast_ref::<PyDate>() {
            return Some(self.0.cmp(&o.0));
        }
        other
            .downcast_ref::<PyDateTime>()
            .map(|o| self.as_datetime().cmp(&o.0))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Object for PyTimedelta {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let micros = self.0.delta.num_microseconds().unwrap_or(i64::MAX);
        Some(Value::from(match key.as_str()? {
            "days" => micros.div_euclid(86_400_000_000),
            "seconds" => micros.rem_euclid(86_400_000_000) / 1_000_000,
            "microseconds" => micros.rem_euclid(1_000_000),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => Ok(Value::from(self.0.total_seconds())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let o = other.downcast_ref::<PyTimedelta>()?;
        Some((self.0.months, self.0.delta).cmp(&(o.0.months, o.0.delta)))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.python_str())
    }
}
