//! `DefaultPaginator` with `PageIncrement`, `OffsetIncrement` and `CursorPagination` (cursor
//! from the body, a header or the `Link` header; `stop_condition`), the page token injected by
//! a `RequestOption` or used as the next URL (`RequestPath`), and `page_size_option`.

use cdk::Result;
use serde_json::Value;

use crate::interpolation::{Template, Vars};
use crate::manifest::{Build, Component, Node};
use crate::request_option::{RequestOption, RequestParts};

#[derive(Debug)]
pub struct Paginator {
    strategy: Strategy,
    token_option: TokenOption,
    size_option: Option<RequestOption>,
}

#[derive(Debug)]
enum TokenOption {
    None,
    Option(RequestOption),
    Path,
}

#[derive(Debug)]
enum Strategy {
    Page {
        size: Option<i64>,
        start: i64,
        inject_first: bool,
    },
    Offset {
        size: Option<i64>,
        inject_first: bool,
    },
    Cursor {
        value: Template,
        stop: Option<Template>,
        size: Option<i64>,
    },
}

/// What the paginator sees of the last page.
pub struct LastPage<'a> {
    /// `response`, `headers`, `last_record`, `last_page_size` (and the slice's variables).
    pub vars: &'a Vars,
    pub last_page_size: usize,
}

fn page_size(c: &mut Component<'_>, b: &Build) -> Result<Option<i64>> {
    match c.get("page_size") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64()),
        Some(Value::String(s)) => {
            let t = c.template_of(b, "page_size", &s)?;
            match t.eval(&Vars::new())? {
                Value::Number(n) => Ok(n.as_i64()),
                Value::Null => Ok(None),
                other => Err(c.error(format!(
                    "page_size must evaluate to an integer, got {other}"
                ))),
            }
        }
        Some(other) => Err(c.error(format!("page_size must be an integer, got {other}"))),
    }
}

impl Paginator {
    /// `None` for `NoPagination` or no paginator.
    pub fn decode(node: Option<Node<'_>>, b: &Build) -> Result<Option<Self>> {
        let Some(node) = node else { return Ok(None) };
        let mut c = node.component(Some("DefaultPaginator"))?;
        c.expect(&["DefaultPaginator", "NoPagination"])?;
        if c.type_name == "NoPagination" {
            c.finish()?;
            return Ok(None);
        }
        let mut s = c.required_child("pagination_strategy")?.component(None)?;
        s.expect(&["PageIncrement", "OffsetIncrement", "CursorPagination"])?;
        let strategy = match s.type_name.as_str() {
            "PageIncrement" => Strategy::Page {
                size: page_size(&mut s, b)?,
                start: s.opt_i64("start_from_page")?.unwrap_or(0),
                inject_first: s.bool_or("inject_on_first_request", false)?,
            },
            "OffsetIncrement" => Strategy::Offset {
                size: page_size(&mut s, b)?,
                inject_first: s.bool_or("inject_on_first_request", false)?,
            },
            _ => {
                if s.has("decoder") {
                    return Err(s.error("a decoder on the pagination strategy is not supported"));
                }
                Strategy::Cursor {
                    value: s.template(b, "cursor_value")?,
                    stop: s.opt_template(b, "stop_condition")?,
                    size: page_size(&mut s, b)?,
                }
            }
        };
        s.finish()?;
        let token_option = match c.child("page_token_option") {
            None => TokenOption::None,
            Some(n) => {
                if n.value.get("type").and_then(Value::as_str) == Some("RequestPath") {
                    let p = n.component(None)?;
                    p.finish()?;
                    TokenOption::Path
                } else {
                    TokenOption::Option(RequestOption::decode(n, b)?)
                }
            }
        };
        let size_option = c
            .child("page_size_option")
            .map(|n| RequestOption::decode(n, b))
            .transpose()?;
        c.finish()?;
        Ok(Some(Self {
            strategy,
            token_option,
            size_option,
        }))
    }

    /// The token of the first request (only when the strategy injects on the first request).
    pub fn initial_token(&self) -> Option<Value> {
        match self.strategy {
            Strategy::Page {
                start,
                inject_first: true,
                ..
            } => Some(Value::from(start)),
            Strategy::Offset {
                inject_first: true, ..
            } => Some(Value::from(0)),
            _ => None,
        }
    }

    /// True when computing the next token may look at the response body.
    pub fn uses_response(&self) -> bool {
        match &self.strategy {
            Strategy::Cursor { value, stop, .. } => {
                value.source().contains("response")
                    || stop
                        .as_ref()
                        .is_some_and(|s| s.source().contains("response"))
            }
            _ => false,
        }
    }

    /// The token for the next page, or `None` when this was the last page.
    pub fn next_token(
        &self,
        last: &LastPage<'_>,
        current: Option<&Value>,
    ) -> Result<Option<Value>> {
        let n = last.last_page_size as i64;
        Ok(match &self.strategy {
            Strategy::Page { size, start, .. } => {
                if size.is_some_and(|s| n < s) || n == 0 {
                    None
                } else {
                    match current.and_then(Value::as_i64) {
                        None => Some(Value::from(start + 1)),
                        Some(p) => Some(Value::from(p + 1)),
                    }
                }
            }
            Strategy::Offset { size, .. } => {
                if size.is_some_and(|s| n < s) || n == 0 {
                    None
                } else {
                    Some(Value::from(
                        current.and_then(Value::as_i64).unwrap_or(0) + n,
                    ))
                }
            }
            Strategy::Cursor { value, stop, .. } => {
                if let Some(stop) = stop
                    && stop.eval_bool(last.vars)?
                {
                    return Ok(None);
                }
                match value.eval(last.vars)? {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::Bool(false) => None,
                    v => Some(v),
                }
            }
        })
    }

    fn size(&self) -> Option<i64> {
        match self.strategy {
            Strategy::Page { size, .. }
            | Strategy::Offset { size, .. }
            | Strategy::Cursor { size, .. } => size,
        }
    }

    /// Adds the page size and the token (unless it goes in the path) to a request.
    pub fn inject(
        &self,
        token: Option<&Value>,
        vars: &Vars,
        parts: &mut RequestParts,
    ) -> Result<()> {
        if let (Some(opt), Some(size)) = (&self.size_option, self.size()) {
            opt.inject(&Value::from(size), vars, parts)?;
        }
        if let (TokenOption::Option(opt), Some(token)) = (&self.token_option, token) {
            opt.inject(token, vars, parts)?;
        }
        Ok(())
    }

    /// The next URL or path when the token is one (`RequestPath`).
    pub fn path(&self, token: Option<&Value>) -> Option<String> {
        match (&self.token_option, token) {
            (TokenOption::Path, Some(Value::String(s))) => Some(s.clone()),
            (TokenOption::Path, Some(v)) => Some(v.to_string()),
            _ => None,
        }
    }
}
