//! Table, column and index names as Airbyte's destination-postgres derives them, and SQL
//! identifier quoting. Every identifier that reaches SQL goes through [`quote`].

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// Longest identifier PostgreSQL keeps (in bytes).
pub const MAX_IDENTIFIER: usize = 63;

/// A schema-qualified table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `"schema"."name"`, quoted.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A quoted SQL identifier (`"a""b"` for `a"b`) and a quoted string literal.
pub use postgres_common::{quote_ident as quote, quote_literal as literal};

/// Airbyte's `toPostgresCompatibleName`: letters, digits and underscores only (accents
/// dropped), `_` before a leading digit, and names over 63 characters cut to 54 plus `_` and
/// the last 8 characters of their Java hash code.
pub fn compatible(name: &str) -> String {
    let mut out = alphanumeric_and_underscore(name);
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() {
        // Airbyte appends a random UUID here; a stable suffix keeps the name the same across
        // syncs.
        return format!("default_name_{}", hash_suffix(name));
    }
    if out.len() > MAX_IDENTIFIER {
        let suffix = hash_suffix(&out);
        out.truncate(54);
        out.push('_');
        out.push_str(&suffix);
    }
    out
}

/// NFKD, combining marks removed, whitespace runs and any other character to `_`.
fn alphanumeric_and_underscore(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_space = false;
    for c in name.nfkd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() {
            if !in_space {
                out.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

/// The last 8 characters of the decimal Java `String.hashCode` of `s`.
fn hash_suffix(s: &str) -> String {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let text = h.to_string();
    text[text.len().saturating_sub(8)..].to_string()
}

/// Airbyte's `concatenateRawTableName`: `<ns>_raw__stream_<name>`, with one more underscore
/// than the longest run of underscores in either part.
pub fn raw_table_name(namespace: &str, name: &str) -> String {
    let longest = [namespace, name]
        .iter()
        .map(|s| longest_underscore_run(s))
        .max()
        .unwrap_or(0);
    let underscores = "_".repeat(longest.max(1) + 1);
    format!("{namespace}_raw{underscores}stream_{name}")
}

fn longest_underscore_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == '_' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Column names for a stream's fields: [`compatible`] names, made unique case-insensitively
/// (and distinct from `reserved` names) by appending `_1`, `_2`, …
#[derive(Debug, Default)]
pub struct ColumnNamer {
    taken: HashSet<String>,
}

impl ColumnNamer {
    pub fn new(reserved: &[&str]) -> Self {
        Self {
            taken: reserved.iter().map(|r| r.to_lowercase()).collect(),
        }
    }

    pub fn name(&mut self, field: &str) -> String {
        let base = compatible(field);
        let mut candidate = base.clone();
        let mut n = 1;
        while self.taken.contains(&candidate.to_lowercase()) {
            let suffix = format!("_{n}");
            let mut stem = base.clone();
            stem.truncate(MAX_IDENTIFIER - suffix.len());
            candidate = format!("{stem}{suffix}");
            n += 1;
        }
        self.taken.insert(candidate.to_lowercase());
        candidate
    }
}

/// A derived name (`<base>_<suffix>`) that stays within the identifier limit.
pub fn derived(base: &str, suffix: &str) -> String {
    compatible(&format!("{base}_{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn airbyte_examples() {
        assert_eq!(compatible("users"), "users");
        assert_eq!(compatible("Users Table"), "Users_Table");
        assert_eq!(compatible("a-b.c"), "a_b_c");
        assert_eq!(compatible("1st"), "_1st");
        assert_eq!(compatible("café"), "cafe");
        assert_eq!(compatible("a  \t b"), "a_b");
        assert_eq!(compatible("\"; drop table x; --"), "___drop_table_x____");
        assert!(compatible("").starts_with("default_name_"));
        assert_eq!(compatible(""), compatible(""));
    }

    #[test]
    fn long_names_get_a_hash() {
        let long = "a".repeat(70);
        let name = compatible(&long);
        assert_eq!(name.len(), 54 + 1 + 8);
        assert!(name.starts_with(&"a".repeat(54)));
        assert_ne!(compatible(&"a".repeat(71)), name);
        // Java: "abc".hashCode() == 96354
        assert_eq!(hash_suffix("abc"), "96354");
    }

    #[test]
    fn raw_names() {
        assert_eq!(
            raw_table_name("public", "users"),
            "public_raw__stream_users"
        );
        assert_eq!(raw_table_name("a__b", "c"), "a__b_raw___stream_c");
    }

    #[test]
    fn column_names_are_unique() {
        let mut n = ColumnNamer::new(&["_airbyte_raw_id"]);
        assert_eq!(n.name("a b"), "a_b");
        assert_eq!(n.name("a_b"), "a_b_1");
        assert_eq!(n.name("A_B"), "A_B_2");
        assert_eq!(n.name("_airbyte_raw_id"), "_airbyte_raw_id_1");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(TableName::new("s", "t").sql(), "\"s\".\"t\"");
    }

    proptest! {
        #[test]
        fn compatible_names_are_valid_identifiers(s in "\\PC{0,100}") {
            let n = compatible(&s);
            prop_assert!(!n.is_empty() && n.len() <= MAX_IDENTIFIER);
            prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            prop_assert!(!n.starts_with(|c: char| c.is_ascii_digit()));
        }
    }
}
