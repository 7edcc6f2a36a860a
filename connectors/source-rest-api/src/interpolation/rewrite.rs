//! Datetime arithmetic in templates. Manifests write `now_utc() - duration('P1D')`; minijinja
//! has no operator overloading for objects, so in templates that use the datetime macros every
//! binary `+`/`-` is rewritten to `__ab_add(a, b)`/`__ab_sub(a, b)`, which do Python's
//! datetime arithmetic and fall back to the usual meaning for numbers, strings and lists.
//!
//! The rewrite works on tokens with Jinja's precedences: the operands of `+`/`-` extend over
//! everything that binds tighter (`*`, `/`, `~`, `|` filters, calls, subscripts, attributes)
//! and stop at what binds looser (comparisons, `not`/`and`/`or`, `if`/`else`, `,`, `:`, `=`).

/// Names whose use makes a template eligible for the rewrite.
const DATETIME_MACROS: [&str; 5] = [
    "now_utc",
    "today_utc",
    "today_with_timezone",
    "duration",
    "str_to_datetime",
];

const BOUNDARY_WORDS: [&str; 14] = [
    "in", "not", "is", "and", "or", "if", "else", "elif", "for", "set", "with", "as", "import",
    "from",
];

const BOUNDARY_OPS: [&str; 9] = [",", ":", "=", "==", "!=", "<", ">", "<=", ">="];

/// The template with `+`/`-` rewritten when it uses datetime macros; else unchanged.
pub fn rewrite(source: &str) -> String {
    if !DATETIME_MACROS.iter().any(|m| source.contains(m)) || !source.contains(['+', '-']) {
        return source.to_string();
    }
    let mut out = String::with_capacity(source.len() + 32);
    let mut rest = source;
    loop {
        let next = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|open| rest.find(open).map(|i| (i, *open)))
            .min();
        let Some((start, open)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        let close = match open {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        let body_start = start + 2;
        let Some(end) = find_close(&rest[body_start..], close) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let body = &rest[body_start..body_start + end];
        out.push_str(open);
        if open == "{#" {
            out.push_str(body);
        } else {
            // Whitespace-control markers stay attached to the delimiters.
            let (lead, inner) = match body.chars().next() {
                Some(c @ ('-' | '+')) => (c.to_string(), &body[1..]),
                _ => (String::new(), body),
            };
            let (inner, trail) = match inner.chars().last() {
                Some(c @ ('-' | '+')) => (&inner[..inner.len() - 1], c.to_string()),
                _ => (inner, String::new()),
            };
            out.push_str(&lead);
            out.push_str(&rewrite_expr(inner));
            out.push_str(&trail);
        }
        out.push_str(close);
        rest = &rest[body_start + end + 2..];
    }
}

/// Position of `close` in `s`, skipping string literals. Works on bytes (the delimiters and
/// quotes are ASCII, so a match is always at a char boundary).
fn find_close(s: &str, close: &str) -> Option<usize> {
    let b = s.as_bytes();
    let close = close.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            _ if b[i..].starts_with(close) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone)]
struct Tok {
    ws: String,
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Name,
    Num,
    Str,
    Op,
    Open,
    Close,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let mut ws = String::new();
        while i < chars.len() && chars[i].is_whitespace() {
            ws.push(chars[i]);
            i += 1;
        }
        if i >= chars.len() {
            if let Some(last) = toks.last_mut() {
                let last: &mut Tok = last;
                last.text.push_str(&ws);
            }
            break;
        }
        let c = chars[i];
        let start = i;
        let kind = if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            Kind::Str
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Kind::Name
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            Kind::Num
        } else if "([{".contains(c) {
            i += 1;
            Kind::Open
        } else if ")]}".contains(c) {
            i += 1;
            Kind::Close
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            i += if ["**", "//", "==", "!=", "<=", ">="].contains(&two.as_str()) {
                2
            } else {
                1
            };
            Kind::Op
        };
        toks.push(Tok {
            ws,
            text: chars[start..i].iter().collect(),
            kind,
        });
    }
    toks
}

#[derive(Debug)]
enum Item {
    Tok(Tok),
    Group(Tok, Vec<Item>, Option<Tok>),
}

fn group(toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>) -> Vec<Item> {
    let mut items = Vec::new();
    while let Some(t) = toks.next() {
        match t.kind {
            Kind::Open => {
                let inner = group(toks);
                let close = toks.next_if(|t| t.kind == Kind::Close);
                items.push(Item::Group(t, inner, close));
            }
            Kind::Close => {
                // Leave it for the caller (the end of this group).
                let mut rest = vec![t];
                rest.extend(toks.by_ref());
                *toks = rest.into_iter().peekable();
                return items;
            }
            _ => items.push(Item::Tok(t)),
        }
    }
    items
}

fn rewrite_expr(s: &str) -> String {
    let mut toks = tokenize(s).into_iter().peekable();
    let mut items = group(&mut toks);
    // Unbalanced closers: keep them verbatim.
    for t in toks {
        items.push(Item::Tok(t));
    }
    let mut out = emit(&items);
    if s.ends_with(char::is_whitespace) && !out.ends_with(char::is_whitespace) {
        out.push(' ');
    }
    out
}

fn is_boundary(item: &Item) -> bool {
    match item {
        Item::Tok(t) => match t.kind {
            Kind::Name => BOUNDARY_WORDS.contains(&t.text.as_str()),
            Kind::Op => BOUNDARY_OPS.contains(&t.text.as_str()),
            _ => false,
        },
        Item::Group(..) => false,
    }
}

fn is_plus_minus(item: &Item) -> Option<&str> {
    match item {
        Item::Tok(t) if t.kind == Kind::Op && (t.text == "+" || t.text == "-") => Some(&t.text),
        _ => None,
    }
}

fn ends_operand(item: &Item) -> bool {
    match item {
        Item::Tok(t) => matches!(t.kind, Kind::Name | Kind::Num | Kind::Str | Kind::Close),
        Item::Group(..) => true,
    }
}

fn emit(items: &[Item]) -> String {
    let mut out = String::new();
    let mut seg_start = 0;
    for i in 0..=items.len() {
        if i == items.len() || is_boundary(&items[i]) {
            out.push_str(&emit_segment(&items[seg_start..i]));
            if i < items.len() {
                out.push_str(&emit_plain(&items[i..=i]));
            }
            seg_start = i + 1;
        }
    }
    out
}

/// A segment between looser operators: `a - b + c` becomes nested helper calls.
fn emit_segment(seg: &[Item]) -> String {
    let mut ops: Vec<(usize, &str)> = Vec::new();
    for (i, item) in seg.iter().enumerate() {
        if let Some(op) = is_plus_minus(item)
            && i > 0
            && ends_operand(&seg[i - 1])
        {
            ops.push((i, op));
        }
    }
    if ops.is_empty() {
        return emit_plain(seg);
    }
    let lead_ws = leading_ws(&seg[0]);
    let mut acc = emit_plain(&seg[..ops[0].0]).trim().to_string();
    for (k, (pos, op)) in ops.iter().enumerate() {
        let end = ops.get(k + 1).map_or(seg.len(), |(p, _)| *p);
        let rhs = emit_plain(&seg[pos + 1..end]);
        let helper = if *op == "+" { "__ab_add" } else { "__ab_sub" };
        acc = format!("{helper}({acc}, {})", rhs.trim());
    }
    format!("{lead_ws}{acc}")
}

fn leading_ws(item: &Item) -> &str {
    match item {
        Item::Tok(t) | Item::Group(t, _, _) => &t.ws,
    }
}

fn emit_plain(items: &[Item]) -> String {
    let mut out = String::new();
    for item in items {
        match item {
            Item::Tok(t) => {
                out.push_str(&t.ws);
                out.push_str(&t.text);
            }
            Item::Group(open, inner, close) => {
                out.push_str(&open.ws);
                out.push_str(&open.text);
                out.push_str(&emit(inner));
                if let Some(c) = close {
                    out.push_str(&c.ws);
                    out.push_str(&c.text);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_datetime_templates() {
        assert_eq!(rewrite("{{ a - b }}"), "{{ a - b }}");
        assert_eq!(
            rewrite("{{ (now_utc() - duration('P1D')).strftime('%Y') }}"),
            "{{ (__ab_sub(now_utc(), duration('P1D'))).strftime('%Y') }}"
        );
    }

    #[test]
    fn respects_precedence() {
        let r = rewrite("{{ now_utc() - duration('P1D') * 2 | abs > x and -1 + y }}");
        assert_eq!(
            r,
            "{{ __ab_sub(now_utc(), duration('P1D') * 2 | abs) > __ab_add(-1, y) }}"
                .replace("> __ab_add(-1, y)", "> x and __ab_add(-1, y)")
        );
        let r = rewrite("{% set d = now_utc() - duration('PT1H') - duration('PT1H') %}{{ d }}");
        assert_eq!(
            r,
            "{% set d = __ab_sub(__ab_sub(now_utc(), duration('PT1H')), duration('PT1H')) %}{{ d }}"
        );
        assert_eq!(
            rewrite("{{- x[1:-1] ~ duration('P1D') -}}"),
            "{{- x[1:-1] ~ duration('P1D') -}}"
        );
        assert_eq!(
            rewrite("{{ f(a='-', b=now_utc() + duration('P1D')) }}"),
            "{{ f(a='-', b=__ab_add(now_utc(), duration('P1D'))) }}"
        );
    }
}
