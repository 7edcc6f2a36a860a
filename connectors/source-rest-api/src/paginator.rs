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

/// The paginator as `page_size_reduction` sees it.
pub struct Shape<'a> {
    /// `PageIncrement`, `OffsetIncrement` or `CursorPagination`.
    pub strategy: &'static str,
    pub page_size: Option<i64>,
    /// A `page_size_option` is set.
    pub size_option: bool,
    /// The page token is a `RequestPath`.
    pub token_path: bool,
    /// The source of a `CursorPagination`'s `stop_condition`.
    pub stop_condition: Option<&'a str>,
}

/// What the paginator sees of the last page.
pub struct LastPage<'a> {
    /// `response`, `headers`, `last_record` and `last_page_size` of the records emitted (after
    /// the record filter, as airbyte-cdk's cursor pagination sees them), and the slice's
    /// variables.
    pub vars: &'a Vars,
    /// How many records the extractor found in the response, before any filter: what
    /// `PageIncrement` and `OffsetIncrement` count.
    pub extracted: usize,
    /// The page size actually requested when it was reduced from the configured one.
    pub page_size_override: Option<i64>,
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

/// airbyte-cdk refuses a `CursorPagination` whose templates read `page_size` when it declares
/// none: the condition would render as its own text, which is true, and end the pagination.
fn unbound_page_size(s: &Component<'_>, value: &Template, stop: Option<&Template>) -> Result<()> {
    for (field, t) in [("stop_condition", stop), ("cursor_value", Some(value))] {
        if let Some(t) = t
            && crate::actions::reads_variable(t.source(), "page_size")
        {
            return Err(s.error(format!(
                "the `{field}` '{}' reads the `page_size` variable, but the CursorPagination \
                 strategy declares no `page_size`: declare `page_size` on the pagination \
                 strategy, or compare against a value the manifest defines, such as \
                 `config['page_size']`",
                t.source()
            )));
        }
    }
    Ok(())
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
                // airbyte-cdk 7.39.1's CursorPagination defines no `decoder`: one written there
                // is ignored (with the debug line of any unknown field) and the response is
                // read with the retriever's decoder.
                let (value, stop) = (
                    s.template(b, "cursor_value")?,
                    s.opt_template(b, "stop_condition")?,
                );
                let size = page_size(&mut s, b)?;
                if size.is_none() {
                    unbound_page_size(&s, &value, stop.as_ref())?;
                }
                Strategy::Cursor { value, stop, size }
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
        let n = last.extracted as i64;
        let requested = last.page_size_override.or(self.size());
        Ok(match &self.strategy {
            Strategy::Page { start, .. } => {
                if requested.is_some_and(|s| n < s) || n == 0 {
                    None
                } else {
                    match current.and_then(Value::as_i64) {
                        None => Some(Value::from(start + 1)),
                        Some(p) => Some(Value::from(p + 1)),
                    }
                }
            }
            Strategy::Offset { .. } => {
                if requested.is_some_and(|s| n < s) || n == 0 {
                    None
                } else {
                    Some(Value::from(
                        current.and_then(Value::as_i64).unwrap_or(0) + n,
                    ))
                }
            }
            Strategy::Cursor { value, stop, .. } => {
                let vars = last
                    .vars
                    .clone()
                    .with("page_size", crate::interpolation::to_mj(requested));
                if let Some(stop) = stop
                    && stop.eval_bool(&vars)?
                {
                    return Ok(None);
                }
                // airbyte-cdk keeps a token only when it is truthy.
                match value.eval(&vars)? {
                    Value::Null | Value::Bool(false) => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::Number(n) if n.as_f64() == Some(0.0) => None,
                    Value::Array(a) if a.is_empty() => None,
                    Value::Object(o) if o.is_empty() => None,
                    v => Some(v),
                }
            }
        })
    }

    /// What `page_size_reduction` checks of the paginator when a manifest loads.
    pub fn shape(&self) -> Shape<'_> {
        let (strategy, stop_condition) = match &self.strategy {
            Strategy::Page { .. } => ("PageIncrement", None),
            Strategy::Offset { .. } => ("OffsetIncrement", None),
            Strategy::Cursor { stop, .. } => {
                ("CursorPagination", stop.as_ref().map(Template::source))
            }
        };
        Shape {
            strategy,
            page_size: self.size(),
            size_option: self.size_option.is_some(),
            token_path: matches!(self.token_option, TokenOption::Path),
            stop_condition,
        }
    }

    /// The configured page size of the strategy.
    pub fn page_size(&self) -> Option<i64> {
        self.size()
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
        self.inject_sized(token, None, vars, parts)
    }

    /// [`Paginator::inject`] with the page size reduced to `size_override` when set.
    pub fn inject_sized(
        &self,
        token: Option<&Value>,
        size_override: Option<i64>,
        vars: &Vars,
        parts: &mut RequestParts,
    ) -> Result<()> {
        let size = size_override.or(self.size()).filter(|s| *s != 0);
        if let (Some(opt), Some(size)) = (&self.size_option, size) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use proptest::strategy::Strategy;
    use serde_json::json;

    use super::{Build, LastPage, Node, Paginator, Value, Vars};
    use crate::interpolation::{Headers, json_value, to_mj};

    fn paginator(strategy: Value) -> Paginator {
        let b = Build::new(&json!({"n": 3}), None, 1);
        let v = json!({"type": "DefaultPaginator", "pagination_strategy": strategy,
            "page_token_option": {"type": "RequestOption", "inject_into": "request_parameter", "field_name": "p"}});
        Paginator::decode(Some(Node::root(&v)), &b)
            .expect("decodes")
            .expect("a paginator")
    }

    fn next(
        p: &Paginator,
        extracted: usize,
        emitted: usize,
        current: Option<Value>,
    ) -> Option<Value> {
        let vars = Vars::new()
            .with("response", json_value(Arc::new(json!({"next": "c"}))))
            .with("last_page_size", to_mj(emitted));
        let last = LastPage {
            vars: &vars,
            extracted,
            page_size_override: None,
        };
        p.next_token(&last, current.as_ref())
            .expect("a token or none")
    }

    #[test]
    fn counting_strategies_use_the_records_the_api_returned() {
        let offset = paginator(json!({"type": "OffsetIncrement", "page_size": 10}));
        assert_eq!(next(&offset, 10, 1, None), Some(json!(10)));
        assert_eq!(next(&offset, 10, 0, Some(json!(10))), Some(json!(20)));
        assert_eq!(next(&offset, 9, 9, Some(json!(20))), None);
        assert_eq!(next(&offset, 0, 0, None), None);
        let page =
            paginator(json!({"type": "PageIncrement", "page_size": 10, "start_from_page": 1}));
        assert_eq!(next(&page, 10, 0, None), Some(json!(2)));
        assert_eq!(next(&page, 10, 2, Some(json!(2))), Some(json!(3)));
        assert_eq!(next(&page, 3, 3, Some(json!(3))), None);
    }

    #[test]
    fn cursor_sees_the_emitted_page_and_the_page_size() {
        let cursor = paginator(json!({"type": "CursorPagination", "page_size": 5,
            "cursor_value": "{{ response.next }}",
            "stop_condition": "{{ last_page_size < page_size }}"}));
        assert_eq!(next(&cursor, 5, 5, None), Some(json!("c")));
        assert_eq!(next(&cursor, 5, 2, None), None);
        let zero = paginator(json!({"type": "CursorPagination", "cursor_value": "{{ 0 }}"}));
        assert_eq!(next(&zero, 5, 5, None), None);
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("next|meta|has_more|[a-zé]{0,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any response, headers and token through every strategy: a token, none, or an error.
        #[test]
        fn next_token_never_panics(
            response in json(),
            last_record in json(),
            headers in prop::collection::vec(("link|Link|x-next|\\PC{0,4}", "\\PC{0,40}"), 0..3),
            link in "(<\\PC{0,8}>; rel=\"?(next|prev|\\PC{0,3})\"?,? ?){0,3}",
            current in json(),
            extracted in 0usize..40,
            emitted in 0usize..40,
        ) {
            let strategies = [
                json!({"type": "OffsetIncrement", "page_size": 10}),
                json!({"type": "OffsetIncrement"}),
                json!({"type": "PageIncrement", "page_size": 10, "start_from_page": 1}),
                json!({"type": "CursorPagination", "cursor_value": "{{ response.next }}",
                    "stop_condition": "{{ not response['meta']['has_more'] }}"}),
                json!({"type": "CursorPagination", "cursor_value": "{{ headers.link.next.url }}"}),
                json!({"type": "CursorPagination", "cursor_value": "{{ headers['x-next'] }}",
                    "stop_condition": "{{ last_record.id == response.next }}"}),
                json!({"type": "CursorPagination", "page_size": 2,
                    "cursor_value": "{{ last_record['next'] | string }}",
                    "stop_condition": "{{ last_page_size < page_size }}"}),
            ];
            let mut headers = headers;
            headers.push(("link".into(), link));
            for s in strategies {
                let p = paginator(s);
                let vars = Vars::new()
                    .with("response", json_value(Arc::new(response.clone())))
                    .with("last_record", json_value(Arc::new(last_record.clone())))
                    .with("headers", minijinja::Value::from_object(Headers::new(headers.clone())))
                    .with("last_page_size", to_mj(emitted));
                let last = LastPage { vars: &vars, extracted, page_size_override: None };
                let _ = p.next_token(&last, Some(&current));
                let _ = p.next_token(&last, None);
                let _ = p.path(Some(&current));
            }
        }
    }
}
