//! `clamping` of a `DatetimeBasedCursor`: slice bounds moved to day, week (a given weekday) or
//! month boundaries, as Airbyte's clamping strategies do — starts rounded up, the end of the
//! read rounded down less the granularity, so every slice covers whole periods.

use chrono::{Datelike, Duration, TimeZone};

use cdk::Result;
use serde_json::Value;

use crate::interpolation::Vars;
use crate::interpolation::datetime::{Dt, PyDuration};
use crate::manifest::{Build, Component};

use super::Interval;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clamping {
    Day,
    /// The weekday, Monday = 0.
    Week(u32),
    Month,
}

const WEEKDAYS: [&str; 7] = [
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];

impl Clamping {
    /// The cursor's `clamping` field, if any.
    pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Option<Self>> {
        let Some(node) = c.child("clamping") else {
            return Ok(None);
        };
        let mut k = node.component(Some("Clamping"))?;
        let target = k
            .template(b, "target")?
            .eval_str(&Vars::new())?
            .unwrap_or_default();
        let details = k.get("target_details");
        k.finish()?;
        Ok(Some(match target.as_str() {
            "DAY" => Clamping::Day,
            "MONTH" => Clamping::Month,
            "WEEK" => {
                let weekday = details
                    .as_ref()
                    .and_then(|d| d.get("weekday"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        c.error(
                            "given WEEK clamping, weekday needs to be provided as target_details",
                        )
                    })?;
                let i = WEEKDAYS
                    .iter()
                    .position(|w| *w == weekday)
                    .ok_or_else(|| c.error(format!("unknown weekday {weekday}")))?;
                Clamping::Week(i as u32)
            }
            other => {
                return Err(c.error(format!(
                    "invalid clamping target {other}, expected DAY, WEEK, MONTH"
                )));
            }
        }))
    }

    /// The default granularity the end of the read is reduced by.
    fn end_granularity(self) -> Duration {
        match self {
            Clamping::Day => Duration::seconds(1),
            _ => Duration::days(1),
        }
    }

    /// The value moved to a period boundary: up with `ceiling`, else down.
    pub fn clamp(self, v: Dt, ceiling: bool) -> Dt {
        let midnight = v
            .timezone()
            .with_ymd_and_hms(v.year(), v.month(), v.day(), 0, 0, 0)
            .single()
            .unwrap_or(v);
        match self {
            Clamping::Day => {
                if ceiling && midnight != v {
                    add_days(midnight, 1)
                } else {
                    midnight
                }
            }
            Clamping::Month => {
                if v.day() == 1 {
                    return midnight;
                }
                let (y, m) = match (ceiling, v.month()) {
                    (true, 12) => (v.year() + 1, 1),
                    (true, m) => (v.year(), m + 1),
                    (false, m) => (v.year(), m),
                };
                v.timezone()
                    .with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .single()
                    .unwrap_or(midnight)
            }
            Clamping::Week(day) => {
                let wd = v.weekday().num_days_from_monday();
                let to_ceiling = if wd > day { 7 - (wd - day) } else { day - wd };
                let delta = if ceiling || to_ceiling == 0 {
                    i64::from(to_ceiling)
                } else {
                    i64::from(to_ceiling) - 7
                };
                add_days(midnight, delta)
            }
        }
    }

    /// Airbyte's slices of `[lower, end]` with clamping (the last range of a read).
    pub fn intervals(
        self,
        lower: Dt,
        end: Dt,
        step: Option<&PyDuration>,
        granularity: Option<&PyDuration>,
        strict: bool,
        format: impl Fn(&Dt) -> String,
    ) -> Vec<Interval> {
        let gran = granularity.filter(|g| !g.is_zero());
        let upper = match gran {
            Some(g) => g.sub_from(&self.clamp(end, false)),
            None => {
                let e = self.clamp(end, false);
                e.checked_sub_signed(self.end_granularity()).unwrap_or(e)
            }
        };
        let lower = self.clamp(lower, true);
        let interval = |s: Dt, e: Dt| Interval {
            start: s,
            end: e,
            start_text: format(&s),
            end_text: format(&e),
        };
        let mut out = Vec::new();
        if lower > upper || (lower == upper && strict) {
            return out;
        }
        let step = step.filter(|s| !s.is_zero());
        let Some(step) = step.filter(|s| s.add_to(&lower) < upper) else {
            let clamped_upper = if gran.is_some() {
                upper
            } else {
                self.clamp(upper, true)
            };
            out.push(interval(lower, clamped_upper));
            return out;
        };
        let mut current = lower;
        loop {
            let cur_upper = step.add_to(&current).min(upper);
            let clamped_upper = if cur_upper != upper {
                self.clamp(cur_upper, true)
            } else {
                cur_upper
            };
            let reached = cur_upper >= upper || clamped_upper == upper;
            let clamped_lower = self.clamp(current, true);
            if clamped_lower >= clamped_upper {
                break;
            }
            let end_value = match gran {
                Some(g) if !reached => g.sub_from(&clamped_upper),
                _ => clamped_upper,
            };
            out.push(interval(clamped_lower, end_value));
            current = clamped_upper;
            if reached {
                break;
            }
        }
        out
    }
}

/// `v` plus `days`, or `v` at the end of the calendar.
fn add_days(v: Dt, days: i64) -> Dt {
    v.checked_add_signed(Duration::days(days)).unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Dt {
        chrono::DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn clamps_like_airbyte() {
        let v = dt("2024-03-14T10:00:00Z"); // a Thursday
        assert_eq!(Clamping::Day.clamp(v, true), dt("2024-03-15T00:00:00Z"));
        assert_eq!(Clamping::Day.clamp(v, false), dt("2024-03-14T00:00:00Z"));
        assert_eq!(Clamping::Month.clamp(v, true), dt("2024-04-01T00:00:00Z"));
        assert_eq!(Clamping::Month.clamp(v, false), dt("2024-03-01T00:00:00Z"));
        assert_eq!(Clamping::Week(0).clamp(v, true), dt("2024-03-18T00:00:00Z"));
        assert_eq!(
            Clamping::Week(0).clamp(v, false),
            dt("2024-03-11T00:00:00Z")
        );
        assert_eq!(
            Clamping::Week(3).clamp(v, false),
            dt("2024-03-14T00:00:00Z")
        );
    }

    #[test]
    fn monthly_slices() {
        let fmt = |d: &Dt| d.format("%Y-%m-%d").to_string();
        let step = PyDuration::parse("P1M").unwrap();
        let gran = PyDuration::parse("P1D").unwrap();
        let iv = Clamping::Month.intervals(
            dt("2024-01-10T00:00:00Z"),
            dt("2024-04-20T00:00:00Z"),
            Some(&step),
            Some(&gran),
            false,
            fmt,
        );
        let texts: Vec<(String, String)> =
            iv.into_iter().map(|i| (i.start_text, i.end_text)).collect();
        assert_eq!(
            texts,
            vec![
                ("2024-02-01".to_string(), "2024-02-29".to_string()),
                ("2024-03-01".to_string(), "2024-03-31".to_string()),
            ]
        );
    }
}
