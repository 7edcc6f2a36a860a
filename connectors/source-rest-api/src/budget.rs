//! `api_budget` (`HTTPAPIBudget`): call-rate policies every request passes before it is sent,
//! as Airbyte applies them. The first policy whose matchers match the request (a policy without
//! matchers matches every request) decides: `FixedWindowCallRatePolicy` (`call_limit` calls per
//! `period`; the first window lasts until the API's `ratelimit-reset` header says, as in Airbyte,
//! where it is ten days long), `MovingWindowCallRatePolicy` (at most `limit` calls in any
//! `interval`, for each rate) or `UnlimitedCallRatePolicy`. A request over budget waits; a wait
//! longer than 600 s is an error saying when the budget resets. Responses update a fixed window
//! from the `ratelimit-remaining` / `ratelimit-reset` headers, and a 429 empties it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdk::{Error, Result};
use serde_json::Value;

use crate::interpolation::Vars;
use crate::interpolation::datetime::PyDuration;
use crate::manifest::{Build, Component, Node, unsupported_type};

/// The longest wait for call budget before giving up.
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Budget {
    policies: Vec<Policy>,
    reset_header: String,
    remaining_header: String,
    hit_codes: Vec<u16>,
}

#[derive(Debug)]
struct Policy {
    matchers: Vec<Matcher>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Fixed(Mutex<Fixed>),
    Moving(Mutex<Moving>),
    Unlimited,
}

#[derive(Debug)]
struct Fixed {
    /// Seconds since the epoch.
    next_reset: f64,
    period: f64,
    limit: u64,
    calls: u64,
}

#[derive(Debug)]
struct Moving {
    rates: Vec<(u64, Duration)>,
    /// Calls made: when, and their weight.
    log: VecDeque<(Instant, u64)>,
}

/// An `HttpRequestRegexMatcher` (also what classifies requests into token quota pools).
#[derive(Debug)]
pub(crate) struct Matcher {
    method: Option<String>,
    url_base: Option<String>,
    path: Option<regex::Regex>,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    weight: Option<u64>,
}

/// A request as the policies see it.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a url::Url,
    pub headers: &'a [(String, String)],
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn seconds(c: &Component<'_>, key: &str, raw: &str) -> Result<Duration> {
    let d = PyDuration::parse(raw).map_err(|e| c.error(format!("{key}: {e}")))?;
    let s = d.total_seconds();
    if s <= 0.0 {
        return Err(c.error(format!("{key} must be a positive duration, got '{raw}'")));
    }
    Duration::try_from_secs_f64(s).map_err(|_| c.error(format!("{key} is too long: '{raw}'")))
}

/// An integer field that may be a template (`"{{ config['limit'] }}"`).
fn int_field(c: &mut Component<'_>, b: &Build, key: &str) -> Result<Option<u64>> {
    let v = match c.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => c.template_of(b, key, &s)?.eval(&Vars::new())?,
        Some(v) => v,
    };
    match &v {
        Value::Number(n) if n.as_u64().is_some_and(|n| n >= 1) => Ok(n.as_u64()),
        Value::String(s) if s.trim().parse::<u64>().is_ok_and(|n| n >= 1) => {
            Ok(s.trim().parse().ok())
        }
        other => Err(c.error(format!("'{key}' must be a positive integer, got {other}"))),
    }
}

impl Budget {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("HTTPAPIBudget"))?;
        c.expect(&["HTTPAPIBudget"])?;
        let policies = c
            .children("policies")?
            .into_iter()
            .map(|n| Policy::decode(n, b))
            .collect::<Result<Vec<_>>>()?;
        let reset_header = c
            .opt_str("ratelimit_reset_header")?
            .unwrap_or_else(|| "ratelimit-reset".into());
        let remaining_header = c
            .opt_str("ratelimit_remaining_header")?
            .unwrap_or_else(|| "ratelimit-remaining".into());
        let hit_codes = match c.get("status_codes_for_ratelimit_hit") {
            None | Some(Value::Null) => vec![429],
            Some(Value::Array(a)) if a.is_empty() => vec![429],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| c.error(format!("a status code must be a number, got {v}")))
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(c.error(format!(
                    "status_codes_for_ratelimit_hit must be a list, got {other}"
                )));
            }
        };
        c.finish()?;
        Ok(Self {
            policies,
            reset_header,
            remaining_header,
            hit_codes,
        })
    }

    fn policy(&self, req: &Request<'_>) -> Option<&Policy> {
        self.policies.iter().find(|p| p.matches(req))
    }

    /// Waits until the request fits its policy's budget, and counts it.
    pub async fn acquire(&self, req: &Request<'_>) -> Result<()> {
        let Some(policy) = self.policy(req) else {
            return Ok(());
        };
        let weight = policy.weight(req);
        let mut waited = Duration::ZERO;
        loop {
            let wait = policy.try_acquire(weight)?;
            let Some(wait) = wait else { return Ok(()) };
            if waited.saturating_add(wait) > MAX_WAIT {
                return Err(Error::transient(format!(
                    "the api_budget allows no call to {} for another {:.0} s (more than the {} s this engine waits); lower the sync frequency or raise the budget",
                    crate::requester::redact_url(req.url.as_str()),
                    wait.as_secs_f64(),
                    MAX_WAIT.as_secs()
                )));
            }
            tracing::debug!(
                wait_s = wait.as_secs_f64(),
                "api_budget: waiting for call budget"
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    /// Adjusts a fixed window from the response's rate-limit headers.
    pub fn update(&self, req: &Request<'_>, status: u16, headers: &[(String, String)]) {
        let Some(policy) = self.policy(req) else {
            return;
        };
        let Kind::Fixed(f) = &policy.kind else { return };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let available = match header(&self.remaining_header) {
            Some(v) => v.parse::<u64>().ok(),
            None if self.hit_codes.contains(&status) => Some(0),
            None => None,
        };
        let reset = header(&self.reset_header).and_then(|v| v.parse::<i64>().ok());
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        f.roll(now_secs());
        if let Some(a) = available
            && f.limit.saturating_sub(f.calls) > a
        {
            f.calls = f.limit.saturating_sub(a);
        }
        if let Some(r) = reset {
            f.next_reset = r as f64;
        }
    }
}

impl Policy {
    fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(None)?;
        let matchers = c
            .children("matchers")?
            .into_iter()
            .map(|n| Matcher::decode(n, b))
            .collect::<Result<Vec<_>>>()?;
        let kind = match c.type_name.as_str() {
            "FixedWindowCallRatePolicy" => {
                let raw = c.str("period")?;
                let period = seconds(&c, "period", &raw)?.as_secs_f64();
                let limit = int_field(&mut c, b, "call_limit")?
                    .ok_or_else(|| c.error("the field 'call_limit' is required"))?;
                Kind::Fixed(Mutex::new(Fixed {
                    next_reset: now_secs() + 10.0 * 86400.0,
                    period,
                    limit,
                    calls: 0,
                }))
            }
            "MovingWindowCallRatePolicy" => {
                let mut rates = Vec::new();
                for n in c.children("rates")? {
                    let mut r = n.component(Some("Rate"))?;
                    let limit = int_field(&mut r, b, "limit")?
                        .ok_or_else(|| r.error("the field 'limit' is required"))?;
                    let raw = r.str("interval")?;
                    let interval = seconds(&r, "interval", &raw)?;
                    r.finish()?;
                    rates.push((limit, interval));
                }
                if rates.is_empty() {
                    return Err(c.error("rates must not be empty"));
                }
                Kind::Moving(Mutex::new(Moving {
                    rates,
                    log: VecDeque::new(),
                }))
            }
            "UnlimitedCallRatePolicy" => Kind::Unlimited,
            other => {
                return Err(unsupported_type(
                    other,
                    c.at(),
                    &[
                        "FixedWindowCallRatePolicy",
                        "MovingWindowCallRatePolicy",
                        "UnlimitedCallRatePolicy",
                    ],
                ));
            }
        };
        c.finish()?;
        Ok(Self { matchers, kind })
    }

    fn matches(&self, req: &Request<'_>) -> bool {
        self.matchers.is_empty() || self.matchers.iter().any(|m| m.matches(req))
    }

    fn weight(&self, req: &Request<'_>) -> u64 {
        self.matchers
            .iter()
            .find(|m| m.matches(req))
            .and_then(|m| m.weight)
            .unwrap_or(1)
    }

    /// Counts the call, or says how long to wait first.
    fn try_acquire(&self, weight: u64) -> Result<Option<Duration>> {
        match &self.kind {
            Kind::Unlimited => Ok(None),
            Kind::Fixed(f) => {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if weight > f.limit {
                    return Err(Error::config(format!(
                        "api_budget: a request weighs {weight}, more than the call limit {}",
                        f.limit
                    )));
                }
                let now = now_secs();
                f.roll(now);
                if f.calls + weight > f.limit {
                    let wait = Duration::try_from_secs_f64((f.next_reset - now).max(0.0))
                        .unwrap_or(Duration::MAX);
                    return Ok(Some(wait));
                }
                f.calls += weight;
                Ok(None)
            }
            Kind::Moving(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let lowest = m.rates.iter().map(|r| r.0).min().unwrap_or(u64::MAX);
                if weight > lowest {
                    return Err(Error::config(format!(
                        "api_budget: a request weighs {weight}, more than the lowest rate limit {lowest}"
                    )));
                }
                let now = Instant::now();
                let wait = m.wait(now, weight);
                if wait.is_none() {
                    m.log.push_back((now, weight));
                }
                Ok(wait)
            }
        }
    }
}

impl Fixed {
    /// Starts the next window once the current one is over.
    fn roll(&mut self, now: f64) {
        if now > self.next_reset {
            self.next_reset += self.period;
            if now > self.next_reset {
                let behind = ((now - self.next_reset) / self.period).ceil();
                self.next_reset += behind * self.period;
            }
            self.calls = 0;
        }
    }
}

impl Moving {
    /// How long until a call of `weight` fits every rate (`None`: now).
    fn wait(&mut self, now: Instant, weight: u64) -> Option<Duration> {
        let longest = self.rates.iter().map(|r| r.1).max().unwrap_or_default();
        while self
            .log
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= longest)
        {
            self.log.pop_front();
        }
        let mut wait: Option<Duration> = None;
        for (limit, interval) in &self.rates {
            let window: Vec<&(Instant, u64)> = self
                .log
                .iter()
                .filter(|(t, _)| now.duration_since(*t) < *interval)
                .collect();
            let used: u64 = window.iter().map(|(_, w)| w).sum();
            if used + weight <= *limit {
                continue;
            }
            let mut to_free = used + weight - limit;
            for (t, w) in window {
                to_free = to_free.saturating_sub(*w);
                if to_free == 0 {
                    let until = t
                        .checked_add(*interval)
                        .map_or(*interval, |end| end.saturating_duration_since(now));
                    wait = Some(wait.map_or(until, |x| x.max(until)));
                    break;
                }
            }
        }
        wait.map(|w| w.max(Duration::from_millis(1)))
    }
}

impl Matcher {
    pub(crate) fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(Some("HttpRequestRegexMatcher"))?;
        c.expect(&["HttpRequestRegexMatcher"])?;
        let method = c.opt_str("method")?.map(|m| m.to_uppercase());
        let url_base = c
            .opt_str("url_base")?
            .map(|u| u.trim_end_matches('/').to_string());
        let path = match c.opt_str("url_path_pattern")? {
            None => None,
            Some(p) => Some(
                regex::Regex::new(&p)
                    .map_err(|e| c.error(format!("url_path_pattern is not a valid regex: {e}")))?,
            ),
        };
        let pairs =
            |c: &mut Component<'_>, key: &str, lower: bool| -> Result<Vec<(String, String)>> {
                match c.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Object(m)) => Ok(m
                        .iter()
                        .map(|(k, v)| (if lower { k.to_lowercase() } else { k.clone() }, text(v)))
                        .collect()),
                    Some(other) => Err(c.error(format!("'{key}' must be a mapping, got {other}"))),
                }
            };
        let params = pairs(&mut c, "params", false)?;
        let headers = pairs(&mut c, "headers", true)?;
        let weight = int_field(&mut c, b, "weight")?;
        c.finish()?;
        Ok(Self {
            method,
            url_base,
            path,
            params,
            headers,
            weight,
        })
    }

    pub(crate) fn matches(&self, req: &Request<'_>) -> bool {
        if self.method.as_deref().is_some_and(|m| m != req.method) {
            return false;
        }
        let url = req.url;
        let base = format!(
            "{}://{}",
            url.scheme(),
            &url[url::Position::BeforeHost..url::Position::AfterPort]
        );
        if self.url_base.as_deref().is_some_and(|b| b != base) {
            return false;
        }
        if let Some(p) = &self.path
            && !p.is_match(url.path().trim_end_matches('/'))
        {
            return false;
        }
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let found = |k: &str| query.iter().rev().find(|(q, _)| q == k).map(|(_, v)| v);
        if self.params.iter().any(|(k, v)| found(k) != Some(v)) {
            return false;
        }
        !self.headers.iter().any(|(k, v)| {
            !req.headers
                .iter()
                .any(|(hk, hv)| hk.eq_ignore_ascii_case(k) && hv == v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(v: Value) -> Budget {
        let b = Build::new(&json!({"limit": 2}), None, 1);
        Budget::decode(Node::root(&v), &b).unwrap()
    }

    #[test]
    fn matchers_pick_the_policy() {
        let b = budget(json!({"type": "HTTPAPIBudget", "policies": [
            {"type": "UnlimitedCallRatePolicy", "matchers": [{"type": "HttpRequestRegexMatcher", "url_path_pattern": "/free"}]},
            {"type": "FixedWindowCallRatePolicy", "period": "PT1M", "call_limit": "{{ config['limit'] }}", "matchers": [
                {"type": "HttpRequestRegexMatcher", "method": "get", "url_base": "http://h:1/", "params": {"a": 1}, "headers": {"X-K": "v"}}]}
        ]}));
        let url = url::Url::parse("http://h:1/x?a=1").unwrap();
        let headers = vec![("x-k".to_string(), "v".to_string())];
        let req = Request {
            method: "GET",
            url: &url,
            headers: &headers,
        };
        assert!(matches!(b.policy(&req).unwrap().kind, Kind::Fixed(_)));
        let free = url::Url::parse("http://h:1/free/").unwrap();
        let req2 = Request {
            method: "GET",
            url: &free,
            headers: &[],
        };
        assert!(matches!(b.policy(&req2).unwrap().kind, Kind::Unlimited));
        let other = url::Url::parse("http://h:1/x?a=2").unwrap();
        assert!(
            b.policy(&Request {
                method: "GET",
                url: &other,
                headers: &headers
            })
            .is_none()
        );
        let p = b.policy(&req).unwrap();
        assert_eq!(p.try_acquire(1).unwrap(), None);
        assert_eq!(p.try_acquire(1).unwrap(), None);
        assert!(
            p.try_acquire(1)
                .unwrap()
                .is_some_and(|w| w > Duration::from_secs(86400))
        );
        // The API says the window resets now: calls are available again.
        let reset = format!("{}", now_secs() as i64 - 1);
        b.update(&req, 200, &[("ratelimit-reset".into(), reset)]);
        assert_eq!(p.try_acquire(1).unwrap(), None);
        b.update(&req, 429, &[]);
        assert!(p.try_acquire(1).unwrap().is_some());
    }

    #[test]
    fn moving_window_waits_for_the_oldest_call() {
        let mut m = Moving {
            rates: vec![(2, Duration::from_secs(10))],
            log: VecDeque::new(),
        };
        let t0 = Instant::now();
        assert_eq!(m.wait(t0, 1), None);
        m.log.push_back((t0, 1));
        m.log.push_back((t0 + Duration::from_secs(4), 1));
        let w = m.wait(t0 + Duration::from_secs(5), 1).unwrap();
        assert_eq!(w, Duration::from_secs(5));
        assert_eq!(m.wait(t0 + Duration::from_secs(10), 1), None);
    }
}
