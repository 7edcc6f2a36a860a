//! Object keys: `<bucket path>/<path format><file name pattern>` with Airbyte's variables
//! rendered, repeated slashes collapsed; and the matcher that finds a stream's earlier objects
//! (for overwrite) without touching other streams' files.

use chrono::{DateTime, Datelike, Timelike, Utc};

pub const DEFAULT_PATH_FORMAT: &str =
    "${NAMESPACE}/${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_";
pub const DEFAULT_FILE_NAME_PATTERN: &str = "{part_number}{format_extension}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Namespace,
    StreamName,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Epoch,
    Uuid,
    /// `{date}` (`yyyy_MM_dd`) or `{date:<java pattern>}`.
    Date(String),
    /// `{timestamp}` / `{timestamp:millis}` (false) or `{timestamp:micros}` (true).
    Timestamp(bool),
    PartNumber,
    SyncId,
    FormatExtension,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(String),
    Var(Var),
}

/// A parsed key template.
#[derive(Debug, Clone)]
pub struct Template {
    tokens: Vec<Token>,
}

/// Values of the variables for one stream of one sync.
#[derive(Debug, Clone)]
pub struct Context {
    pub namespace: String,
    pub stream: String,
    pub time: DateTime<Utc>,
    pub uuid: String,
    pub sync_id: i64,
    pub extension: String,
}

impl Template {
    /// `bucket_path/path_format` followed by the file name pattern; a pattern without
    /// `{part_number}` gets `_{part_number}` and one without `{format_extension}` gets the
    /// extension, so every file has a distinct, typed name.
    pub fn new(bucket_path: &str, path_format: Option<&str>, file_name: Option<&str>) -> Self {
        let path_format = path_format
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PATH_FORMAT);
        let mut file_name = file_name
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_FILE_NAME_PATTERN)
            .to_string();
        if !file_name.contains("{part_number}") {
            match file_name.find("{format_extension}") {
                Some(at) => file_name.insert_str(at, "_{part_number}"),
                None => file_name.push_str("_{part_number}"),
            }
        }
        if !file_name.contains("{format_extension}") {
            file_name.push_str("{format_extension}");
        }
        let mut tokens = Vec::new();
        parse_dollar(bucket_path, &mut tokens);
        tokens.push(Token::Lit("/".into()));
        parse_dollar(path_format, &mut tokens);
        parse_braces(&file_name, &mut tokens);
        Self { tokens }
    }

    /// The key of file `part`.
    pub fn render(&self, ctx: &Context, part: u64) -> String {
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Lit(s) => out.push_str(s),
                Token::Var(v) => out.push_str(&value(v, ctx, part)),
            }
        }
        collapse_slashes(&out)
    }

    /// The directory every object of the stream is under: the template up to its first
    /// variable that is not the namespace or stream name, cut at the last `/`.
    pub fn stream_prefix(&self, ctx: &Context) -> String {
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Lit(s) => out.push_str(s),
                Token::Var(Var::Namespace) => out.push_str(&ctx.namespace),
                Token::Var(Var::StreamName) => out.push_str(&ctx.stream),
                Token::Var(_) => break,
            }
        }
        let out = collapse_inner(&out);
        let out = out.trim_start_matches('/');
        match out.rfind('/') {
            Some(at) => out[..at].to_string(),
            None => String::new(),
        }
    }

    /// A matcher for keys this template produces for the stream of `ctx`, whatever the time,
    /// part number or extension.
    pub fn matcher(&self, ctx: &Context) -> Matcher {
        let mut items: Vec<Item> = Vec::new();
        let mut lit = String::new();
        for token in &self.tokens {
            let class = match token {
                Token::Lit(s) => {
                    lit.push_str(s);
                    continue;
                }
                Token::Var(Var::Namespace) => {
                    lit.push_str(&ctx.namespace);
                    continue;
                }
                Token::Var(Var::StreamName) => {
                    lit.push_str(&ctx.stream);
                    continue;
                }
                Token::Var(Var::Uuid) => Class::Uuid,
                Token::Var(Var::Date(_)) => Class::Date,
                Token::Var(Var::FormatExtension) => Class::Extension,
                Token::Var(_) => Class::Digits,
            };
            if !lit.is_empty() {
                items.push(Item::Lit(std::mem::take(&mut lit)));
            }
            items.push(Item::Class(class));
        }
        if !lit.is_empty() {
            items.push(Item::Lit(lit));
        }
        // Slashes collapse in keys, so they collapse in the literals too.
        let mut first = true;
        for item in &mut items {
            if let Item::Lit(s) = item {
                let mut c = collapse_inner(s);
                if first {
                    c = c.trim_start_matches('/').to_string();
                }
                *s = c;
            }
            first = false;
        }
        items.retain(|i| !matches!(i, Item::Lit(s) if s.is_empty()));
        Matcher { items }
    }
}

/// Does a key belong to a stream's template?
#[derive(Debug, Clone)]
pub struct Matcher {
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
enum Item {
    Lit(String),
    Class(Class),
}

#[derive(Debug, Clone, Copy)]
enum Class {
    Digits,
    Uuid,
    Date,
    Extension,
}

impl Class {
    fn accepts(self, c: char) -> bool {
        match self {
            Class::Digits => c.is_ascii_digit(),
            Class::Uuid => c.is_ascii_hexdigit() || c == '-',
            Class::Date => c.is_ascii_digit() || matches!(c, '_' | '-' | '.'),
            Class::Extension => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.',
        }
    }
}

impl Matcher {
    pub fn matches(&self, key: &str) -> bool {
        matches_from(&self.items, key)
    }
}

fn matches_from(items: &[Item], key: &str) -> bool {
    let Some((first, rest)) = items.split_first() else {
        return key.is_empty();
    };
    match first {
        Item::Lit(s) => key
            .strip_prefix(s.as_str())
            .is_some_and(|k| matches_from(rest, k)),
        Item::Class(class) => {
            let run = key
                .char_indices()
                .find(|&(_, c)| !class.accepts(c))
                .map_or(key.len(), |(i, _)| i);
            // Longest first; at least one character.
            (1..=run)
                .rev()
                .filter(|&n| key.is_char_boundary(n))
                .any(|n| matches_from(rest, &key[n..]))
        }
    }
}

fn parse_dollar(text: &str, tokens: &mut Vec<Token>) {
    parse_vars(text, "${", dollar_var, tokens);
}

fn parse_braces(text: &str, tokens: &mut Vec<Token>) {
    parse_vars(text, "{", brace_var, tokens);
}

/// A `${NAME}` variable of the bucket path and path format.
fn dollar_var(name: &str) -> Option<Var> {
    match name {
        "NAMESPACE" => Some(Var::Namespace),
        "STREAM_NAME" => Some(Var::StreamName),
        "YEAR" => Some(Var::Year),
        "MONTH" => Some(Var::Month),
        "DAY" => Some(Var::Day),
        "HOUR" => Some(Var::Hour),
        "MINUTE" => Some(Var::Minute),
        "SECOND" => Some(Var::Second),
        "MILLISECOND" => Some(Var::Millisecond),
        "EPOCH" => Some(Var::Epoch),
        "UUID" => Some(Var::Uuid),
        _ => None,
    }
}

/// A `{name}` or `{name:arg}` variable of the file name pattern.
fn brace_var(inner: &str) -> Option<Var> {
    let (name, arg) = match inner.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (inner, None),
    };
    match (name, arg) {
        ("date", None) => Some(Var::Date("yyyy_MM_dd".into())),
        ("date", Some(f)) => Some(Var::Date(f.into())),
        ("timestamp", None | Some("millis")) => Some(Var::Timestamp(false)),
        ("timestamp", Some("micros")) => Some(Var::Timestamp(true)),
        ("part_number", None) => Some(Var::PartNumber),
        ("sync_id", None) => Some(Var::SyncId),
        ("format_extension", None) => Some(Var::FormatExtension),
        _ => None,
    }
}

/// Splits `text` into literals and the variables `var_of` knows between `open` and `}`; an
/// unknown one stays literal text.
fn parse_vars(text: &str, open: &str, var_of: fn(&str) -> Option<Var>, tokens: &mut Vec<Token>) {
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        match var_of(&rest[start + open.len()..start + len]) {
            Some(var) => {
                push_lit(tokens, &rest[..start]);
                tokens.push(Token::Var(var));
            }
            None => push_lit(tokens, &rest[..start + len + 1]),
        }
        rest = &rest[start + len + 1..];
    }
    push_lit(tokens, rest);
}

fn push_lit(tokens: &mut Vec<Token>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Token::Lit(last)) = tokens.last_mut() {
        last.push_str(s);
    } else {
        tokens.push(Token::Lit(s.to_string()));
    }
}

fn value(var: &Var, ctx: &Context, part: u64) -> String {
    let t = &ctx.time;
    match var {
        Var::Namespace => ctx.namespace.clone(),
        Var::StreamName => ctx.stream.clone(),
        Var::Year => format!("{:04}", t.year()),
        Var::Month => format!("{:02}", t.month()),
        Var::Day => format!("{:02}", t.day()),
        Var::Hour => format!("{:02}", t.hour()),
        Var::Minute => format!("{:02}", t.minute()),
        Var::Second => format!("{:02}", t.second()),
        Var::Millisecond => format!("{:03}", t.timestamp_subsec_millis()),
        Var::Epoch => t.timestamp_millis().to_string(),
        Var::Uuid => ctx.uuid.clone(),
        Var::Date(pattern) => t.format(&java_to_strftime(pattern)).to_string(),
        Var::Timestamp(false) => t.timestamp_millis().to_string(),
        Var::Timestamp(true) => t.timestamp_micros().to_string(),
        Var::PartNumber => part.to_string(),
        Var::SyncId => ctx.sync_id.to_string(),
        Var::FormatExtension => ctx.extension.clone(),
    }
}

/// The usual letters of Java date patterns (`yyyy_MM_dd`, `HH`, `mm`, `ss`) as strftime.
fn java_to_strftime(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let run = rest.chars().take_while(|&d| d == c).count();
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', _) => "%m",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', _) => "%3f",
            ('%', _) => "%%",
            _ => "",
        };
        if spec.is_empty() {
            out.extend(std::iter::repeat_n(c, run));
        } else {
            out.push_str(spec);
        }
        rest = &rest[c.len_utf8() * run..];
    }
    out
}

/// `text` with every `${VARIABLE}` removed and slashes collapsed (for `check`'s test object).
pub fn without_variables(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(len) => rest = &rest[start + len + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    collapse_slashes(&out)
}

fn collapse_inner(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

fn collapse_slashes(s: &str) -> String {
    s.split('/')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx(namespace: &str, stream: &str) -> Context {
        Context {
            namespace: namespace.into(),
            stream: stream.into(),
            time: Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap(),
            uuid: "0b5d3c1e-aaaa-4bbb-8ccc-123456789abc".into(),
            sync_id: 42,
            extension: ".jsonl.gz".into(),
        }
    }

    #[test]
    fn default_layout_is_airbyte_s() {
        let t = Template::new("data_sync/test", None, None);
        let c = ctx("public", "users");
        assert_eq!(
            t.render(&c, 0),
            "data_sync/test/public/users/2024_03_05_1709622489000_0.jsonl.gz"
        );
        assert_eq!(t.stream_prefix(&c), "data_sync/test/public/users");
        // No namespace: the empty segment collapses.
        let c = ctx("", "users");
        assert_eq!(
            t.render(&c, 3),
            "data_sync/test/users/2024_03_05_1709622489000_3.jsonl.gz"
        );
    }

    #[test]
    fn the_seed_bucket_path_with_variables() {
        let t = Template::new("airbyte-data/${NAMESPACE}/${STREAM_NAME}", None, None);
        let c = ctx("shop", "orders");
        assert_eq!(
            t.render(&c, 1),
            "airbyte-data/shop/orders/shop/orders/2024_03_05_1709622489000_1.jsonl.gz"
        );
    }

    #[test]
    fn every_variable_and_placeholder() {
        let t = Template::new(
            "/p//",
            Some("${STREAM_NAME}/${HOUR}${MINUTE}${SECOND}.${MILLISECOND}/${UUID}/${UNKNOWN}/"),
            Some(
                "{date}-{date:yyyy_MM}-{timestamp:micros}-{sync_id}-{part_number}{format_extension}",
            ),
        );
        assert_eq!(
            t.render(&ctx("", "s"), 7),
            "p/s/070809.000/0b5d3c1e-aaaa-4bbb-8ccc-123456789abc/${UNKNOWN}/\
             2024_03_05-2024_03-1709622489000000-42-7.jsonl.gz"
        );
    }

    #[test]
    fn patterns_without_part_or_extension_get_them() {
        let t = Template::new("b", Some("${STREAM_NAME}/"), Some("{timestamp}"));
        assert_eq!(t.render(&ctx("", "s"), 2), "b/s/1709622489000_2.jsonl.gz");
    }

    #[test]
    fn the_matcher_finds_this_stream_only() {
        let t = Template::new("b", None, None);
        let m = t.matcher(&ctx("ns", "users"));
        assert!(m.matches("b/ns/users/2024_03_05_1709622489000_0.jsonl.gz"));
        assert!(m.matches("b/ns/users/2023_12_31_1703980800000_17.parquet"));
        assert!(!m.matches("b/ns/users_v2/2024_03_05_1709622489000_0.jsonl"));
        assert!(!m.matches("b/ns/users/notes.txt"));
        assert!(!m.matches("b/ns/users/2024_03_05_1709622489000_0.jsonl/x"));
        let flat = Template::new("b", Some("${STREAM_NAME}_${EPOCH}_"), None);
        let m = flat.matcher(&ctx("", "users"));
        assert!(m.matches("b/users_1709622489000_0.csv"));
        assert!(!m.matches("b/users_v2_1709622489000_0.csv"));
        assert_eq!(flat.stream_prefix(&ctx("", "users")), "b");
    }
}
