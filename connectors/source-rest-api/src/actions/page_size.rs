//! `page_size_reduction`: on a `REDUCE_PAGE_SIZE` response the same page is asked for again
//! with the page size divided by `reduction_factor` (rounded down, never below
//! `minimum_page_size`), after `backoff_seconds` × the attempts in a row. At most
//! `max_attempts` reductions in a row without a page getting through; at the floor the page is
//! asked for unchanged `retries_at_minimum_page_size` times, then the read fails. A page that
//! gets through restarts both budgets and, under `AFTER_SUCCESSFUL_PAGE`, the page size.

use std::time::Duration;

use cdk::{Error, Result};

use super::Context;
use super::stop_condition::{Safety, classify};
use crate::error_handler::Action;
use crate::manifest::Node;

/// The stream's `page_size_reduction` (shared by all its slices).
#[derive(Debug, Clone)]
pub struct PageSizeReduction {
    factor: f64,
    minimum: i64,
    max_attempts: u32,
    backoff_seconds: f64,
    retries_at_minimum: u32,
    failure_message: Option<String>,
    restore_after_success: bool,
}

impl PageSizeReduction {
    /// Reads the block and checks that the retriever can honour it.
    pub fn decode(node: Option<Node<'_>>, cx: &Context<'_>) -> Result<Option<Self>> {
        let name = cx.stream;
        let uses_action = cx.requester.uses_action(Action::ReducePageSize);
        let Some(node) = node else {
            if uses_action {
                return Err(Error::config(format!(
                    "stream '{name}' has a response filter with the REDUCE_PAGE_SIZE action but the \
                     retriever does not define `page_size_reduction`: add a `page_size_reduction` \
                     block to the retriever"
                )));
            }
            return Ok(None);
        };
        let mut c = node.component(Some("PageSizeReduction"))?;
        c.expect(&["PageSizeReduction"])?;
        let factor = c.opt_f64("reduction_factor")?.unwrap_or(2.0);
        let minimum = c.opt_i64("minimum_page_size")?.unwrap_or(1);
        let max_attempts = c.opt_i64("max_attempts")?.unwrap_or(5);
        let backoff_seconds = c.opt_f64("backoff_seconds")?.unwrap_or(0.5);
        let retries = c.opt_i64("retries_at_minimum_page_size")?.unwrap_or(0);
        let failure_message = c.opt_str("failure_message")?;
        let restore_after_success = match c.opt_str("reset_policy")?.as_deref() {
            None | Some("NEVER") => false,
            Some("AFTER_SUCCESSFUL_PAGE") => true,
            Some(other) => {
                return Err(c.error(format!(
                    "reset_policy must be NEVER or AFTER_SUCCESSFUL_PAGE, got '{other}'"
                )));
            }
        };
        if factor <= 1.0 {
            return Err(c.error(format!(
                "the page size reduction factor needs to be greater than 1, got {factor}"
            )));
        }
        if minimum < 1 {
            return Err(c.error(format!(
                "the minimum page size needs to be strictly positive, got {minimum}"
            )));
        }
        if max_attempts < 1 {
            return Err(c.error(format!(
                "the maximum number of page size reductions needs to be strictly positive, got {max_attempts}"
            )));
        }
        if backoff_seconds < 0.0 {
            return Err(c.error(format!(
                "the wait between page size reductions cannot be negative, got {backoff_seconds}"
            )));
        }
        if retries < 0 {
            return Err(c.error(format!(
                "the number of retries at the minimum page size cannot be negative, got {retries}"
            )));
        }
        c.finish()?;
        if !uses_action {
            tracing::warn!(stream = %name, "the stream defines `page_size_reduction` but no response filter with the REDUCE_PAGE_SIZE action; the page size will never be reduced");
        }
        check_paginator(cx, minimum)?;
        Ok(Some(Self {
            factor,
            minimum,
            max_attempts: max_attempts as u32,
            backoff_seconds,
            retries_at_minimum: retries as u32,
            failure_message,
            restore_after_success,
        }))
    }
}

/// The paginator must send a page size it can shrink, and shrinking must not skip records.
fn check_paginator(cx: &Context<'_>, minimum: i64) -> Result<()> {
    let name = cx.stream;
    let refuse = |why: String| Err(Error::config(format!("stream '{name}': {why}")));
    let Some(p) = cx.paginator else {
        return refuse(
            "`page_size_reduction` requires a DefaultPaginator so that the connector can send a \
             smaller page size"
                .into(),
        );
    };
    let shape = p.shape();
    if !shape.size_option {
        return refuse(
            "`page_size_reduction` requires `page_size_option` on the paginator: without it the \
             connector cannot tell the API to send a smaller page"
                .into(),
        );
    }
    if shape.token_path {
        return refuse(
            "`page_size_reduction` does not support a `page_token_option` of type RequestPath: the \
             next page is a URL returned by the API, which already carries the page size"
                .into(),
        );
    }
    if shape.strategy == "PageIncrement" {
        return refuse(
            "`page_size_reduction` does not support the PageIncrement pagination strategy: pages \
             are addressed as page number * page size, so a smaller page size would skip records; \
             use OffsetIncrement or CursorPagination"
                .into(),
        );
    }
    let Some(size) = shape.page_size else {
        return refuse(
            "`page_size_reduction` requires `page_size` on the pagination strategy: without it the \
             paginator does not send a page size, so there is nothing to reduce"
                .into(),
        );
    };
    if size <= minimum {
        return refuse(format!(
            "`page_size_reduction` can never reduce the page size: the pagination strategy's \
             `page_size` is {size} and `minimum_page_size` is {minimum}; lower \
             `minimum_page_size` or raise `page_size`"
        ));
    }
    if let Some(stop) = shape.stop_condition {
        match classify(stop, minimum) {
            (Safety::Truncates, reason) => {
                return refuse(format!(
                    "`page_size_reduction` cannot be used with the `stop_condition` '{stop}': \
                     {reason}; the pagination would then end early, silently dropping the rest of \
                     the partition. Compare against the `page_size` variable instead (for example \
                     `{{{{ last_page_size < page_size }}}}`), or test the page for emptiness with \
                     `{{{{ last_page_size == 0 }}}}`"
                ));
            }
            (Safety::Unknown, reason) => {
                tracing::warn!(stream = %name, stop_condition = %stop, %reason,
                    "the stop condition could not be checked against the page size reduction; make sure a page full at a reduced size does not satisfy it");
            }
            (Safety::Safe, _) => {}
        }
    }
    Ok(())
}

/// The page size in effect while one slice is read.
#[derive(Debug)]
pub struct Reducer<'a> {
    config: &'a PageSizeReduction,
    configured: Option<i64>,
    stream: &'a str,
    current: Option<i64>,
    attempts: u32,
    retries_at_minimum: u32,
}

impl<'a> Reducer<'a> {
    pub fn new(config: &'a PageSizeReduction, configured: Option<i64>, stream: &'a str) -> Self {
        Self {
            config,
            configured,
            stream,
            current: None,
            attempts: 0,
            retries_at_minimum: 0,
        }
    }

    /// The reduced page size to ask for, `None` while the configured one is in effect.
    pub fn size_override(&self) -> Option<i64> {
        self.current
    }

    /// Shrinks the page size for the next request (waiting first), or fails once it cannot.
    pub async fn reduce(&mut self, rejection: Option<&str>) -> Result<()> {
        let stream = self.stream;
        let Some(configured) = self.configured else {
            return Err(Error::config(format!(
                "stream '{stream}' is set up to reduce its page size on error but does not define \
                 one: set `page_size` on the pagination strategy and `page_size_option` on the \
                 paginator"
            )));
        };
        let current = self.current.unwrap_or(configured);
        let reduced =
            ((current as f64 / self.config.factor).floor() as i64).max(self.config.minimum);
        if reduced >= current {
            return self.retry_at_minimum(current, rejection).await;
        }
        self.attempts += 1;
        if self.attempts > self.config.max_attempts {
            return Err(Error::transient(self.failure(
                format!(
                    "the source keeps rejecting pages of stream '{stream}' at every page size the \
                     connector requested, down to {current} records per page ({} reductions in a \
                     row)",
                    self.config.max_attempts
                ),
                rejection,
            )));
        }
        let wait = self.config.backoff_seconds * f64::from(self.attempts);
        tracing::info!(stream = %stream, from = current, to = reduced, wait_seconds = wait,
            "reducing the page size and asking for the same page again");
        self.current = Some(reduced);
        sleep(wait).await;
        Ok(())
    }

    async fn retry_at_minimum(&mut self, current: i64, rejection: Option<&str>) -> Result<()> {
        let stream = self.stream;
        if self.retries_at_minimum < self.config.retries_at_minimum {
            self.retries_at_minimum += 1;
            let wait = self.config.backoff_seconds * f64::from(self.retries_at_minimum);
            tracing::info!(stream = %stream, page_size = current, wait_seconds = wait,
                retry = self.retries_at_minimum, "the page size cannot shrink further; asking for the same page again");
            sleep(wait).await;
            return Ok(());
        }
        if self.current.is_none() && self.config.minimum > 1 {
            return Err(Error::config(format!(
                "the page size of stream '{stream}' ({current}) is already at or below the \
                 configured minimum of {}, so the connector cannot reduce it: raise the page size \
                 of the stream, or lower `minimum_page_size`",
                self.config.minimum
            )));
        }
        Err(Error::transient(self.failure(
            format!(
                "the source keeps rejecting pages of stream '{stream}' at the smallest page size \
                 the connector is allowed to request ({current} records per page)"
            ),
            rejection,
        )))
    }

    /// A page got through: the budgets restart, and the page size too under
    /// `AFTER_SUCCESSFUL_PAGE`.
    pub fn on_successful_page(&mut self) {
        self.attempts = 0;
        self.retries_at_minimum = 0;
        if self.config.restore_after_success {
            self.current = None;
        }
    }

    fn failure(&self, message: String, rejection: Option<&str>) -> String {
        let mut out = message;
        if let Some(r) = rejection.filter(|r| !r.is_empty()) {
            out.push_str(&format!("; the API said: {r}"));
        }
        if let Some(extra) = self
            .config
            .failure_message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            out.push_str(". ");
            out.push_str(extra);
        }
        out
    }
}

async fn sleep(seconds: f64) {
    if seconds > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(minimum: i64, retries: u32, restore: bool) -> PageSizeReduction {
        PageSizeReduction {
            factor: 2.0,
            minimum,
            max_attempts: 5,
            backoff_seconds: 0.0,
            retries_at_minimum: retries,
            failure_message: Some("Select fewer fields.".into()),
            restore_after_success: restore,
        }
    }

    #[tokio::test]
    async fn halves_down_to_the_floor_then_fails() {
        let c = config(10, 0, false);
        let mut r = Reducer::new(&c, Some(50), "s");
        let mut sizes = Vec::new();
        while r.reduce(None).await.is_ok() {
            sizes.push(r.size_override().unwrap());
        }
        assert_eq!(sizes, vec![25, 12, 10]);
        let e = r.reduce(Some("too big")).await.unwrap_err().to_string();
        assert!(
            e.contains("smallest page size") && e.contains("(10 records per page)"),
            "{e}"
        );
        assert!(
            e.contains("too big") && e.ends_with("Select fewer fields."),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_page_restarts_the_budget_and_maybe_the_size() {
        let c = config(1, 1, true);
        let mut r = Reducer::new(&c, Some(8), "s");
        r.reduce(None).await.unwrap();
        assert_eq!(r.size_override(), Some(4));
        r.on_successful_page();
        assert_eq!(r.size_override(), None);
        let c = config(1, 1, false);
        let mut r = Reducer::new(&c, Some(2), "s");
        r.reduce(None).await.unwrap();
        r.reduce(None).await.unwrap(); // at the floor: one retry unchanged
        assert_eq!(r.size_override(), Some(1));
        assert!(r.reduce(None).await.is_err());
        r.on_successful_page();
        assert_eq!(r.size_override(), Some(1));
    }

    #[tokio::test]
    async fn max_attempts_in_a_row() {
        let mut c = config(1, 0, false);
        c.max_attempts = 2;
        let mut r = Reducer::new(&c, Some(1000), "s");
        r.reduce(None).await.unwrap();
        r.reduce(None).await.unwrap();
        let e = r.reduce(None).await.unwrap_err().to_string();
        assert!(e.contains("down to 250 records per page"), "{e}");
    }
}
