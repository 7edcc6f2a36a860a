//! When a connection is due: manual, every N hours (or minutes, days, weeks), or a cron
//! expression (5 fields as in crontab, or Airbyte's Quartz form with seconds), in UTC.

use std::str::FromStr;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// A connection's schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Only run when asked.
    Manual,
    /// At most once per period.
    Every(Duration),
    /// At each time the expression matches.
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    /// Reads the schedule as a connection file writes it: `manual`, `hourly`, `daily`,
    /// `weekly`, a cron expression, `{units, timeUnit}`, `{cron | cronExpression}`,
    /// `{scheduleType, ...}`; or Airbyte's `scheduleType` + `scheduleData`.
    pub fn from_file(
        schedule: Option<&Value>,
        schedule_type: Option<&str>,
        data: Option<&Value>,
    ) -> Result<Self> {
        if let Some(value) = schedule {
            return Self::from_value(value);
        }
        match (schedule_type, data) {
            (Some("cron"), Some(d)) => Self::from_value(&d["cron"]),
            (Some("basic"), Some(d)) => Self::from_value(&d["basicSchedule"]),
            (Some(kind), _) => Self::from_value(&Value::String(kind.into())),
            (None, _) => Ok(Self::Manual),
        }
    }

    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Null => Ok(Self::Manual),
            Value::String(s) => Self::from_word(s),
            Value::Object(map) => {
                let text = |k: &str| map.get(k).and_then(Value::as_str);
                if let Some(expr) = text("cronExpression").or(text("cron")) {
                    return Self::cron(expr);
                }
                if let Some(units) = map.get("units").and_then(Value::as_i64) {
                    let unit = text("timeUnit").context("`units` without `timeUnit`")?;
                    return Self::every(units, unit);
                }
                match text("scheduleType") {
                    Some(kind) => Self::from_word(kind),
                    None => bail!("not a schedule: {value}"),
                }
            }
            other => bail!("not a schedule: {other}"),
        }
    }

    fn from_word(word: &str) -> Result<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "manual" | "" => Ok(Self::Manual),
            "hourly" => Self::every(1, "hours"),
            "daily" => Self::every(24, "hours"),
            "weekly" => Self::every(7, "days"),
            _ => Self::cron(word),
        }
    }

    fn every(units: i64, unit: &str) -> Result<Self> {
        if units <= 0 {
            bail!("a schedule of every {units} {unit} never comes");
        }
        let period = match unit.trim_end_matches('s').to_ascii_lowercase().as_str() {
            "minute" => Duration::minutes(units),
            "hour" => Duration::hours(units),
            "day" => Duration::days(units),
            "week" => Duration::weeks(units),
            "month" => Duration::days(30 * units),
            _ => bail!("time unit '{unit}' is not minutes, hours, days, weeks or months"),
        };
        Ok(Self::Every(period))
    }

    /// A crontab expression (5 fields) gets a seconds field; Quartz's `?` means any.
    fn cron(expr: &str) -> Result<Self> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let full = match fields.len() {
            5 => format!("0 {}", fields.join(" ")),
            6 | 7 => fields.join(" "),
            _ => bail!("'{expr}' is not a cron expression (5 fields, or 6–7 with seconds)"),
        };
        let schedule = cron::Schedule::from_str(&full.replace('?', "*"))
            .with_context(|| format!("'{expr}' is not a cron expression"))?;
        Ok(Self::Cron(Box::new(schedule)))
    }

    /// When the connection is next due after a job that started at `last` (never run: now,
    /// unless manual).
    pub fn next_due(
        &self,
        last: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match (self, last) {
            (Self::Manual, _) => None,
            (_, None) => Some(now),
            (Self::Every(period), Some(last)) => Some(last + *period),
            (Self::Cron(cron), Some(last)) => cron.after(&last).next(),
        }
    }

    /// Whether a run is due at `now`.
    pub fn is_due(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        self.next_due(last, now).is_some_and(|due| due <= now)
    }

    /// How the schedule reads in `cdk jobs`.
    pub fn describe(&self) -> String {
        match self {
            Self::Manual => "manual".into(),
            Self::Every(p) if p.num_hours() > 0 && p.num_minutes() % 60 == 0 => {
                format!("every {} hours", p.num_hours())
            }
            Self::Every(p) => format!("every {} minutes", p.num_minutes()),
            Self::Cron(c) => format!("cron {}", c.source()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_24_hours_from_the_api_shape() {
        let s = Schedule::from_file(Some(&json!({"units": 24, "timeUnit": "hours"})), None, None)
            .unwrap();
        let last = at("2026-01-01T00:00:00Z");
        assert!(!s.is_due(Some(last), at("2026-01-01T23:59:00Z")));
        assert!(s.is_due(Some(last), at("2026-01-02T00:00:00Z")));
        assert!(s.is_due(None, at("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn crontab_and_quartz_expressions() {
        for expr in ["0 2 * * *", "0 0 2 * * ?"] {
            let s = Schedule::from_file(Some(&json!(expr)), None, None).unwrap();
            let last = at("2026-01-01T03:00:00Z");
            assert_eq!(
                s.next_due(Some(last), last),
                Some(at("2026-01-02T02:00:00Z"))
            );
        }
        assert!(Schedule::from_file(Some(&json!("not cron")), None, None).is_err());
    }

    #[test]
    fn manual_is_never_due() {
        let s = Schedule::from_file(None, Some("manual"), None).unwrap();
        assert!(!s.is_due(None, Utc::now()));
    }
}
