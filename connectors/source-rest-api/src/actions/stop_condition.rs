//! Whether a `CursorPagination` `stop_condition` stays right when `page_size_reduction` shrinks
//! the page: `last_page_size < X` ends the pagination on a page that is full at a reduced size
//! unless `X` is the `page_size` variable (the size actually requested) or a literal at or
//! below `minimum_page_size`. Comparisons joined by `and` / `or` in one `{{ }}` expression are
//! read; any other shape is left unclassified (a warning, not a refusal), as airbyte-cdk does.

/// The verdict on a stop condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    Safe,
    Truncates,
    Unknown,
}

const LAST: &str = "last_page_size";

/// The verdict and its reason.
pub fn classify(stop_condition: &str, minimum_page_size: i64) -> (Safety, String) {
    if !mentions(stop_condition, LAST) {
        return (Safety::Safe, format!("it does not use `{LAST}`"));
    }
    let Some(expr) = single_expression(stop_condition) else {
        return (
            Safety::Unknown,
            format!("it uses `{LAST}` in a shape this check does not read"),
        );
    };
    let mut unknown = None;
    for part in split_top(expr, &[" and ", " or "]) {
        if !mentions(part, LAST) {
            continue;
        }
        match comparison(part, minimum_page_size) {
            (Safety::Truncates, why) => return (Safety::Truncates, why),
            (Safety::Unknown, why) => unknown = unknown.or(Some(why)),
            (Safety::Safe, _) => {}
        }
    }
    match unknown {
        Some(why) => (Safety::Unknown, why),
        None => (
            Safety::Safe,
            format!("every comparison against `{LAST}` holds whatever page size was requested"),
        ),
    }
}

/// One comparison that mentions `last_page_size`.
fn comparison(part: &str, minimum: i64) -> (Safety, String) {
    let part = part.trim();
    let unknown = |why: &str| (Safety::Unknown, why.to_string());
    let ops = ["<=", ">=", "==", "!=", "<", ">"];
    let found = find_ops(part, &ops);
    let [(at, op)] = found.as_slice() else {
        return unknown("it uses `last_page_size` outside of a single comparison");
    };
    let (left, right) = (part[..*at].trim(), part[at + op.len()..].trim());
    let (left, right, op) = if is_name(right, LAST) && !mentions(left, LAST) {
        (right, left, mirror(op))
    } else {
        (left, right, *op)
    };
    if !is_name(left, LAST) {
        return unknown("`last_page_size` is transformed before being compared");
    }
    match op {
        "==" | "!=" if right == "0" => (Safety::Safe, "it only tests for emptiness".into()),
        "==" | "!=" => {
            unknown("it tests `last_page_size` for equality against something else than 0")
        }
        ">" | ">=" => (
            Safety::Safe,
            "a smaller page only makes a lower bound less true".into(),
        ),
        _ => {
            if mentions(right, "page_size") {
                let bare = right.split('|').next().unwrap_or_default().trim();
                return if bare == "page_size" {
                    (Safety::Safe, "it compares against `page_size`".into())
                } else {
                    unknown("it compares against an expression built from `page_size`")
                };
            }
            if let Ok(v) = right.parse::<i64>() {
                let threshold = if op == "<" { v } else { v + 1 };
                if threshold <= minimum {
                    return (
                        Safety::Safe,
                        format!("no page the connector may ask for is smaller than {threshold}"),
                    );
                }
            }
            (
                Safety::Truncates,
                format!(
                    "it stops as soon as a page is smaller than `{right}`, which does not follow \
                     the reduction, so a full page at a reduced size reads as a short page"
                ),
            )
        }
    }
}

fn mirror(op: &str) -> &'static str {
    match op {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        ">=" => "<=",
        "==" => "==",
        _ => "!=",
    }
}

/// The expression of a template that is one `{{ }}` and nothing else.
fn single_expression(t: &str) -> Option<&str> {
    let inner = t.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

/// Whether a template's expressions (`{{ }}`, `{% %}`) read the variable `name` (not a key or
/// an attribute of that name, nor text outside the expressions).
pub fn reads_variable(template: &str, name: &str) -> bool {
    let mut rest = template;
    while let Some(open) = rest.find("{{").into_iter().chain(rest.find("{%")).min() {
        let close_mark = if rest[open..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let body = &rest[open + 2..];
        let end = body.find(close_mark).unwrap_or(body.len());
        if mentions(&body[..end], name) {
            return true;
        }
        rest = &body[(end + close_mark.len()).min(body.len())..];
    }
    false
}

/// `name` as a whole identifier of `text` (not inside quotes).
fn mentions(text: &str, name: &str) -> bool {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if text[i..].starts_with(name)
                && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b'.'))
                && bytes.get(i + name.len()).is_none_or(|n| !ident(*n)) =>
            {
                return true;
            }
            None => {}
        }
        i += 1;
    }
    false
}

fn is_name(text: &str, name: &str) -> bool {
    text.trim() == name
}

/// Splits at the separators that stand outside brackets and quotes.
fn split_top<'t>(text: &'t str, seps: &[&str]) -> Vec<&'t str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let (mut depth, mut quote) = (0i32, None);
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ if depth == 0 => {
                    if let Some(sep) = seps.iter().find(|s| text[i..].starts_with(**s)) {
                        parts.push(&text[start..i]);
                        i += sep.len();
                        start = i;
                        continue;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

/// The comparison operators outside brackets and quotes, with their byte offsets.
fn find_ops<'o>(text: &str, ops: &[&'o str]) -> Vec<(usize, &'o str)> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let (mut depth, mut quote) = (0i32, None);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ if depth == 0 => {
                    if let Some(op) = ops.iter().find(|o| text[i..].starts_with(**o)) {
                        found.push((i, *op));
                        i += op.len();
                        continue;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let v = |s: &str| classify(s, 1).0;
        assert_eq!(v("{{ last_page_size < page_size }}"), Safety::Safe);
        assert_eq!(v("{{ last_page_size == 0 }}"), Safety::Safe);
        assert_eq!(v("{{ not response.next }}"), Safety::Safe);
        assert_eq!(v("{{ last_page_size < 100 }}"), Safety::Truncates);
        assert_eq!(v("{{ 100 > last_page_size }}"), Safety::Truncates);
        assert_eq!(
            v("{{ last_page_size < config['page_size'] }}"),
            Safety::Truncates
        );
        assert_eq!(
            v("{{ not response.more or last_page_size <= 50 }}"),
            Safety::Truncates
        );
        assert_eq!(v("{{ last_page_size < 1 }}"), Safety::Safe);
        assert_eq!(v("{{ last_page_size - 100 < 0 }}"), Safety::Unknown);
        assert_eq!(
            v("{{ [page_size, 100] | max > last_page_size }}"),
            Safety::Unknown
        );
        assert_eq!(v("{{ last_page_size >= 10 }}"), Safety::Safe);
        assert_eq!(
            v("{{ last_page_size < config.page_size }}"),
            Safety::Truncates
        );
        assert_eq!(v("{{ last_page_size < page_size | int }}"), Safety::Safe);
        assert_eq!(v("{{ 'é < x' == last_page_size }}"), Safety::Unknown);
    }

    #[test]
    fn variables_read_by_expressions() {
        assert!(reads_variable(
            "{{ last_page_size < page_size }}",
            "page_size"
        ));
        assert!(reads_variable(
            "{% if page_size %}x{% endif %}",
            "page_size"
        ));
        assert!(!reads_variable(
            "{{ config['page_size'] }} page_size",
            "page_size"
        ));
        assert!(!reads_variable("{{ config.page_size }}", "page_size"));
        assert!(!reads_variable("{{ last_page_size < 3 ", "page_size"));
    }
}
