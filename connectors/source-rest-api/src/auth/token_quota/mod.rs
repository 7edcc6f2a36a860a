//! `RateLimitedMultipleTokenAuthenticator`: rotates between interchangeable tokens, counting
//! each token's calls per quota pool (`TokenQuota`), as airbyte-cdk does.
//!
//! The pools of every token are read from the `QuotaStatusSource` at the first request (one
//! request per token). Each request is classified into the first pool whose matchers match it
//! (else the first pool without matchers, else the first pool), charged to the active token,
//! and signed with `<auth_method> <token>` in `header`. A spent token makes the next one active;
//! when every token is spent the request waits for the earliest reset (at least 5 s, within
//! `max_wait_time`) and the pools are read again, or fails as transient when the reset is too
//! far. Pools with response headers are reconciled with every response, and a rate-limited
//! response whose token is spent is retried at once on another token. When every token runs
//! below its reserve, requests are spread over the time left until the reset.

mod decode;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cdk::{Error, Result};
use serde_json::Value;

use super::Authenticator;
use crate::budget::{Matcher, Request};
use crate::http::Prepared;
use crate::interpolation::Vars;
use crate::interpolation::datetime::parse_loose;
use crate::request_option::RequestParts;
use crate::requester::{Call, Requester};

pub use decode::decode;

/// Longest proactive throttling delay before one request (seconds).
const MAX_BUDGET_DELAY: f64 = 10.0;
/// Shortest wait for a reset when every token is spent (seconds).
const MIN_EXHAUSTION_WAIT: f64 = 5.0;
/// How far a response's reset may trail the pool's and still be the current window (seconds).
const RESET_SKEW_TOLERANCE: f64 = 60.0;
/// How often a long wait for a reset is logged (seconds).
const HEARTBEAT: f64 = 60.0;

/// A quota pool (`TokenQuota`).
#[derive(Debug)]
struct Quota {
    name: String,
    remaining_path: Vec<String>,
    reset_path: Vec<String>,
    limit_path: Option<Vec<String>>,
    matchers: Vec<Matcher>,
    remaining_header: Option<String>,
    reset_header: Option<String>,
    limit_header: Option<String>,
    exhaustion_codes: Vec<u16>,
}

impl Quota {
    fn response_aware(&self) -> bool {
        self.remaining_header.is_some()
            || self.reset_header.is_some()
            || self.limit_header.is_some()
            || !self.exhaustion_codes.is_empty()
    }
}

/// One token's count for one pool.
#[derive(Debug, Clone)]
struct Pool {
    remaining: i64,
    /// Seconds since the epoch.
    reset_at: f64,
    limit: i64,
    /// False when the status endpoint said quotas are not tracked (`remaining` is then 0).
    tracked: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Pools by token, then by pool name; empty until the first request.
    pools: HashMap<String, HashMap<String, Pool>>,
    /// Index of the active token in the rotation.
    active: usize,
    budget_logged: bool,
    unmatched_logged: bool,
    untracked_logged: bool,
}

/// What a request does next: use a token (after a throttling delay) or wait for a reset.
enum Step {
    Use(String, Option<f64>),
    Wait(f64),
}

/// The authenticator.
#[derive(Debug)]
pub struct TokenQuotas {
    tokens: Vec<String>,
    quotas: Vec<Quota>,
    status: Box<Requester>,
    status_url: String,
    status_headers: Vec<(String, String)>,
    auth_method: String,
    header: String,
    max_wait: f64,
    reserve_fraction: f64,
    min_reserve: f64,
    state: Mutex<State>,
    /// Held while the pools are read from the status endpoint; true once they were.
    seeded: tokio::sync::Mutex<bool>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A number of calls from the status response, as Python's `int()` reads it.
fn count(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A reset time as airbyte-cdk's `ab_datetime_parse` reads it: epoch seconds (a number or
/// digits, at most ten) or an ISO 8601 datetime.
fn reset_time(v: &Value) -> Option<f64> {
    let epoch = |n: i64| (n >= 0 && n.to_string().len() <= 10).then_some(n as f64);
    match v {
        Value::Number(n) => n.as_i64().and_then(epoch),
        Value::String(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
            s.parse().ok().and_then(epoch)
        }
        Value::String(s) => parse_loose(s)
            .ok()
            .map(|dt| dt.timestamp() as f64 + f64::from(dt.timestamp_subsec_micros()) / 1e6),
        _ => None,
    }
}

fn header<'h>(headers: &'h [(String, String)], name: Option<&str>) -> Option<&'h str> {
    let name = name?;
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl TokenQuotas {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool a request counts against.
    fn quota_of(&self, req: &Prepared) -> &Quota {
        let url = crate::http::build_url(&req.url, &req.parts.params).ok();
        let matched = url.as_ref().and_then(|url| {
            let r = Request {
                method: req.method.as_str(),
                url,
                headers: &req.parts.headers,
            };
            self.quotas
                .iter()
                .find(|q| !q.matchers.is_empty() && q.matchers.iter().any(|m| m.matches(&r)))
        });
        if let Some(q) = matched {
            return q;
        }
        if let Some(q) = self.quotas.iter().find(|q| q.matchers.is_empty()) {
            return q;
        }
        let mut state = self.lock();
        if !state.unmatched_logged {
            state.unmatched_logged = true;
            tracing::warn!(
                url = %crate::requester::redact_url(&req.url),
                pool = %self.quotas[0].name,
                "the request matches no quota pool; it counts against the first pool (consider a default pool without matchers)"
            );
        }
        &self.quotas[0]
    }

    /// The token a request was signed with, when it is one of ours.
    fn sender(&self, req: &Prepared, state: &State) -> Option<String> {
        let value = header(&req.parts.headers, Some(&self.header))?;
        let token = match self.auth_method.as_str() {
            "" => value.trim(),
            m => value.strip_prefix(&format!("{m} "))?.trim(),
        };
        state.pools.contains_key(token).then(|| token.to_string())
    }

    /// Reads every token's pools from the status endpoint.
    async fn fetch(&self, token: &str) -> Result<HashMap<String, Pool>> {
        let vars = Vars::new();
        let mut extra = RequestParts::default();
        for (k, v) in &self.status_headers {
            extra.set_header(k.clone(), v.clone());
        }
        let value = format!("{} {token}", self.auth_method).trim().to_string();
        extra.set_header(self.header.clone(), value);
        let call = Call {
            vars: &vars,
            extra,
            path_override: Some(self.status_url.clone()),
            notice: None,
        };
        let sent = self
            .status
            .send(&call)
            .await
            .map_err(|e| e.context("reading the token quota status failed"))?;
        let Some(resp) = sent else {
            return Ok(self
                .quotas
                .iter()
                .map(|q| {
                    let pool = Pool {
                        remaining: 0,
                        reset_at: now_secs(),
                        limit: 0,
                        tracked: false,
                    };
                    (q.name.clone(), pool)
                })
                .collect());
        };
        let body: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| Error::system(format!("the quota status response is not JSON: {e}")))?;
        self.pools_from(&body)
    }

    /// Each pool's count in a quota status response, at the pool's paths.
    fn pools_from(&self, body: &Value) -> Result<HashMap<String, Pool>> {
        let mut pools = HashMap::new();
        for q in &self.quotas {
            let at = |path: &[String], what: &str| -> Result<&Value> {
                path.iter()
                    .try_fold(body, |v, k| v.as_object().and_then(|m| m.get(k)))
                    .ok_or_else(|| {
                        Error::system(format!(
                            "the quota status response does not contain the {what} path {path:?} of the token quota '{}'",
                            q.name
                        ))
                    })
            };
            let bad = |what: &str, v: &Value| {
                Error::system(format!(
                    "the quota status response has no usable {what} for the token quota '{}': {v}",
                    q.name
                ))
            };
            let remaining_v = at(&q.remaining_path, "remaining")?;
            let reset_v = at(&q.reset_path, "reset")?;
            let remaining = count(remaining_v).ok_or_else(|| bad("remaining", remaining_v))?;
            let reset_at = reset_time(reset_v).ok_or_else(|| bad("reset", reset_v))?;
            let limit = match &q.limit_path {
                Some(p) => {
                    let v = at(p, "limit")?;
                    count(v).ok_or_else(|| bad("limit", v))?
                }
                None => remaining,
            };
            pools.insert(
                q.name.clone(),
                Pool {
                    remaining,
                    reset_at,
                    limit,
                    tracked: true,
                },
            );
        }
        Ok(pools)
    }

    /// Reads every token's pools and replaces the counts.
    async fn seed(&self) -> Result<()> {
        let mut all = HashMap::new();
        for token in &self.tokens {
            let pools = self.fetch(token).await?;
            all.insert(token.clone(), pools);
        }
        let mut state = self.lock();
        let untracked = all
            .values()
            .filter(|pools| pools.values().any(|p| !p.tracked))
            .count();
        state.pools = all;
        state.budget_logged = false;
        if untracked > 0 && !state.untracked_logged {
            state.untracked_logged = true;
            tracing::info!(
                untracked,
                tokens = state.pools.len(),
                "the quota status endpoint reports that rate limiting is unavailable: those tokens are used without quota tracking"
            );
        }
        Ok(())
    }

    async fn ensure_seeded(&self) -> Result<()> {
        let mut seeded = self.seeded.lock().await;
        if !*seeded {
            self.seed().await?;
            *seeded = true;
        }
        Ok(())
    }

    /// Reads the pools again after a wait, unless another request already did.
    async fn refresh(&self, quota: &Quota) -> Result<()> {
        let _guard = self.seeded.lock().await;
        let still = {
            let state = self.lock();
            self.all_spent(&state, &quota.name)
        };
        if still { self.seed().await } else { Ok(()) }
    }

    fn pool<'s>(&self, state: &'s State, token: &str, quota: &str) -> Option<&'s Pool> {
        state.pools.get(token).and_then(|p| p.get(quota))
    }

    fn all_spent(&self, state: &State, quota: &str) -> bool {
        self.tokens.iter().all(|t| {
            self.pool(state, t, quota)
                .is_some_and(|p| p.remaining <= 0 && p.tracked)
        })
    }

    /// The delay that spreads the last calls until the reset, when every token is in reserve.
    fn budget_delay(&self, state: &State, quota: &str, active: &str) -> Option<f64> {
        let pools: Vec<&Pool> = self
            .tokens
            .iter()
            .filter_map(|t| self.pool(state, t, quota))
            .collect();
        if pools.iter().any(|p| !p.tracked) {
            return None;
        }
        let reserve = |p: &Pool| self.min_reserve.max(p.limit as f64 * self.reserve_fraction);
        if !pools.iter().all(|p| p.remaining as f64 <= reserve(p)) {
            return None;
        }
        let to_reset = (self.pool(state, active, quota)?.reset_at - now_secs()).max(0.0);
        let total: i64 = pools.iter().map(|p| p.remaining.max(0)).sum();
        if total <= 0 || to_reset <= 0.0 {
            return None;
        }
        Some((to_reset / total as f64).min(MAX_BUDGET_DELAY))
    }

    /// Charges one call of `quota` to a token and returns the token.
    async fn acquire(&self, quota: &Quota) -> Result<String> {
        let mut deadline: Option<Instant> = None;
        loop {
            match self.step(quota, &mut deadline)? {
                Step::Use(token, delay) => {
                    self.throttle(delay, quota).await;
                    return Ok(token);
                }
                Step::Wait(wait) => {
                    tracing::info!(
                        quota = %quota.name,
                        wait_seconds = wait.round(),
                        "all tokens are exhausted: waiting until the rate limit resets"
                    );
                    sleep_with_heartbeat(wait, &quota.name).await;
                    self.refresh(quota).await?;
                }
            }
        }
    }

    /// Picks the token for a call of `quota` (passing over spent ones), or says how long to
    /// wait when all are spent; `deadline` bounds the waits of one request by `max_wait_time`.
    fn step(&self, quota: &Quota, deadline: &mut Option<Instant>) -> Result<Step> {
        let mut state = self.lock();
        let n = self.tokens.len();
        loop {
            let token = self.tokens[state.active % n].clone();
            let pool = state
                .pools
                .get_mut(&token)
                .and_then(|p| p.get_mut(&quota.name))
                .ok_or_else(|| Error::system("the token quotas were not read"))?;
            if !pool.tracked {
                // Nothing is counted: the tokens take turns.
                state.active = (state.active + 1) % n;
                return Ok(Step::Use(token, None));
            }
            if pool.remaining > 0 {
                pool.remaining -= 1;
                let delay = self.budget_delay(&state, &quota.name, &token);
                return Ok(Step::Use(token, delay));
            }
            if self.all_spent(&state, &quota.name) {
                return self
                    .exhaustion_wait(&state, quota, deadline)
                    .map(Step::Wait);
            }
            state.active = (state.active + 1) % n;
        }
    }

    /// How long to wait for the earliest reset, or the error when it is beyond the deadline.
    fn exhaustion_wait(
        &self,
        state: &State,
        quota: &Quota,
        deadline: &mut Option<Instant>,
    ) -> Result<f64> {
        let now = Instant::now();
        let end =
            *deadline.get_or_insert_with(|| now + Duration::from_secs_f64(self.max_wait.max(0.0)));
        let budget = end.saturating_duration_since(now).as_secs_f64();
        let to_reset = self
            .tokens
            .iter()
            .filter_map(|t| self.pool(state, t, &quota.name))
            .map(|p| p.reset_at - now_secs())
            .fold(f64::INFINITY, f64::min);
        if budget <= 0.0 || to_reset >= budget {
            return Err(Error::transient(format!(
                "the rate limit is exceeded for all provided tokens: every token's quota '{}' is \
                 spent and the next reset is beyond max_wait_time",
                quota.name
            )));
        }
        Ok(to_reset.max(MIN_EXHAUSTION_WAIT).min(budget))
    }

    async fn throttle(&self, delay: Option<f64>, quota: &Quota) {
        let Some(delay) = delay.filter(|d| *d >= 0.1) else {
            return;
        };
        {
            let mut state = self.lock();
            if !state.budget_logged {
                state.budget_logged = true;
                tracing::info!(quota = %quota.name, delay_seconds = delay, "token quotas: throttling requests to spread the calls left until the reset");
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
    }
}

async fn sleep_with_heartbeat(total: f64, quota: &str) {
    let mut left = total;
    while left > 0.0 {
        let chunk = left.min(HEARTBEAT);
        tokio::time::sleep(Duration::from_secs_f64(chunk)).await;
        left -= chunk;
        if left > 0.0 {
            tracing::info!(
                quota,
                left_seconds = left.round(),
                "rate limit exhausted: waiting for the reset"
            );
        }
    }
}

#[async_trait]
impl Authenticator for TokenQuotas {
    async fn apply(&self, _parts: &mut RequestParts) -> Result<()> {
        Err(Error::system(
            "the RateLimitedMultipleTokenAuthenticator signs whole requests only",
        ))
    }

    async fn sign(&self, req: &mut Prepared) -> Result<()> {
        self.ensure_seeded().await?;
        let quota = self.quota_of(req);
        let token = self.acquire(quota).await?;
        let value = format!("{} {token}", self.auth_method).trim().to_string();
        req.parts.set_header(self.header.clone(), value);
        Ok(())
    }

    fn observe(&self, req: &Prepared, status: u16, headers: &[(String, String)]) {
        let quota = self.quota_of(req);
        if !quota.response_aware() {
            return;
        }
        let int =
            |name: Option<&str>| header(headers, name).and_then(|v| v.trim().parse::<i64>().ok());
        let mut remaining = int(quota.remaining_header.as_deref());
        if remaining.is_none() && quota.exhaustion_codes.contains(&status) {
            remaining = Some(0);
        }
        let reset = header(headers, quota.reset_header.as_deref())
            .and_then(|v| reset_time(&Value::String(v.to_string())));
        let limit = int(quota.limit_header.as_deref());
        if remaining.is_none() && limit.is_none() && reset.is_none() {
            return;
        }
        let mut state = self.lock();
        let Some(token) = self.sender(req, &state) else {
            return;
        };
        let Some(pool) = state
            .pools
            .get_mut(&token)
            .and_then(|p| p.get_mut(&quota.name))
        else {
            return;
        };
        if !pool.tracked {
            return;
        }
        if let Some(l) = limit
            && l > 0
            && reset.is_none_or(|r| r >= pool.reset_at)
        {
            pool.limit = l;
        }
        match (reset, remaining) {
            (Some(r), _) if r > pool.reset_at => {
                pool.reset_at = r;
                pool.remaining = remaining.unwrap_or(pool.limit);
            }
            (_, Some(n))
                if (n <= 0 && quota.exhaustion_codes.contains(&status))
                    || reset.is_none_or(|r| r >= pool.reset_at - RESET_SKEW_TOLERANCE) =>
            {
                pool.remaining = pool.remaining.min(n);
            }
            _ => {}
        }
    }

    fn has_alternative(&self, req: &Prepared) -> bool {
        let quota = self.quota_of(req);
        let state = self.lock();
        let Some(sender) = self.sender(req, &state) else {
            return false;
        };
        match self.pool(&state, &sender, &quota.name) {
            Some(p) if p.tracked && p.remaining <= 0 => self.tokens.iter().any(|t| {
                *t != sender
                    && self
                        .pool(&state, t, &quota.name)
                        .is_some_and(|p| p.remaining > 0)
            }),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::http::Method;
    use crate::manifest::Build;

    /// Two tokens `a`, `b` with one pool read from the `X-Left`/`X-Reset`/`X-Limit` headers,
    /// 429 meaning spent; `a` has 10 of 100 calls left until 1000 s past the epoch, `b` none.
    fn two_tokens() -> TokenQuotas {
        let b = Build::new(&json!({}), None, 1);
        let quota = Quota {
            name: "core".into(),
            remaining_path: vec![],
            reset_path: vec![],
            limit_path: None,
            matchers: vec![],
            remaining_header: Some("X-Left".into()),
            reset_header: Some("X-Reset".into()),
            limit_header: Some("X-Limit".into()),
            exhaustion_codes: vec![429],
        };
        let pool = |remaining| Pool {
            remaining,
            reset_at: 1000.0,
            limit: 100,
            tracked: true,
        };
        let mut state = State::default();
        for (t, n) in [("a", 10), ("b", 0)] {
            state
                .pools
                .insert(t.into(), HashMap::from([("core".to_string(), pool(n))]));
        }
        TokenQuotas {
            tokens: vec!["a".into(), "b".into()],
            quotas: vec![quota],
            status: Box::new(decode::status_requester("GET", &[], &b).unwrap()),
            status_url: String::new(),
            status_headers: vec![],
            auth_method: "Bearer".into(),
            header: "Authorization".into(),
            max_wait: 7200.0,
            reserve_fraction: 0.1,
            min_reserve: 50.0,
            state: Mutex::new(state),
            seeded: tokio::sync::Mutex::new(true),
        }
    }

    fn signed(by: &str) -> Prepared {
        let mut parts = RequestParts::default();
        parts.set_header("Authorization".into(), by.into());
        Prepared {
            method: Method::Get,
            url: "http://h/x".into(),
            parts,
        }
    }

    fn pool_of(q: &TokenQuotas, token: &str) -> (i64, f64, i64) {
        let state = q.lock();
        let p = q.pool(&state, token, "core").unwrap();
        (p.remaining, p.reset_at, p.limit)
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn responses_reconcile_the_pool_of_the_token_that_sent_them() {
        let q = two_tokens();
        let a = signed("Bearer a");
        // Same window: the count only goes down.
        q.observe(&a, 200, &headers(&[("X-Left", "20"), ("X-Reset", "1000")]));
        assert_eq!(pool_of(&q, "a"), (10, 1000.0, 100));
        q.observe(&a, 200, &headers(&[("x-left", " 7 ")]));
        assert_eq!(pool_of(&q, "a").0, 7);
        // A window more than 60 s older is ignored, unless it is a rate limit saying zero.
        q.observe(&a, 200, &headers(&[("X-Left", "0"), ("X-Reset", "900")]));
        assert_eq!(pool_of(&q, "a").0, 7);
        q.observe(&a, 200, &headers(&[("X-Left", "3"), ("X-Reset", "950")]));
        assert_eq!(pool_of(&q, "a").0, 3);
        // A later reset is a new window: its count, or the limit without one.
        q.observe(&a, 200, &headers(&[("X-Reset", "2000"), ("X-Limit", "50")]));
        assert_eq!(pool_of(&q, "a"), (50, 2000.0, 50));
        // An older window's limit is not taken.
        q.observe(&a, 200, &headers(&[("X-Limit", "70"), ("X-Reset", "1500")]));
        assert_eq!(pool_of(&q, "a").2, 50);
        // A rate limit without a count spends the pool, even from an older window.
        q.observe(&a, 429, &headers(&[("X-Reset", "100")]));
        assert_eq!(pool_of(&q, "a").0, 0);
        // Requests signed otherwise are not ours.
        q.observe(&signed("token b"), 200, &headers(&[("X-Reset", "5000")]));
        q.observe(&signed("Bearer zz"), 200, &headers(&[("X-Reset", "5000")]));
        assert_eq!(pool_of(&q, "b"), (0, 1000.0, 100));
    }

    #[test]
    fn calls_in_reserve_are_spread_until_the_reset() {
        let q = two_tokens();
        let set = |token: &str, remaining: i64, reset_in: f64| {
            let mut state = q.lock();
            let p = state.pools.get_mut(token).unwrap().get_mut("core").unwrap();
            p.remaining = remaining;
            p.reset_at = now_secs() + reset_in;
        };
        // 10 calls left in all, below the reserve of 50: 50 s until the reset → 5 s each.
        set("a", 10, 50.0);
        let delay = q.budget_delay(&q.lock(), "core", "a").unwrap();
        assert!((4.9..=5.0).contains(&delay), "{delay}");
        // Capped at 10 s; none once the reset has passed or above the reserve.
        set("a", 10, 5000.0);
        assert_eq!(q.budget_delay(&q.lock(), "core", "a"), Some(10.0));
        set("a", 10, -1.0);
        assert_eq!(q.budget_delay(&q.lock(), "core", "a"), None);
        set("a", 51, 50.0);
        assert_eq!(q.budget_delay(&q.lock(), "core", "a"), None);
    }

    #[test]
    fn a_spent_sender_has_an_alternative_only_when_another_token_has_calls() {
        let q = two_tokens();
        // a still has calls: the rejection was not about it.
        assert!(!q.has_alternative(&signed("Bearer a")));
        // b is spent and a has calls.
        assert!(q.has_alternative(&signed("Bearer b")));
        q.observe(&signed("Bearer a"), 429, &[]);
        assert!(!q.has_alternative(&signed("Bearer b")));
        assert!(!q.has_alternative(&signed("Basic b")));
    }

    #[test]
    fn reset_times_read_as_airbyte_reads_them() {
        assert_eq!(reset_time(&json!(1_700_000_000)), Some(1_700_000_000.0));
        assert_eq!(reset_time(&json!("1700000000")), Some(1_700_000_000.0));
        assert_eq!(reset_time(&json!("17000000000")), None);
        assert_eq!(reset_time(&json!(-5)), None);
        assert_eq!(
            reset_time(&json!("2023-11-14T22:13:20Z")),
            Some(1_700_000_000.0)
        );
        assert_eq!(reset_time(&json!(1.5)), None);
        assert_eq!(count(&json!("12")), Some(12));
        assert_eq!(count(&json!(7.9)), Some(7));
        assert_eq!(count(&Value::Null), None);
    }
}
