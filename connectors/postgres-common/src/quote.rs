//! Quoting for SQL text: identifiers from users (schemas, tables, columns, stream names) and
//! string literals are always quoted, never spliced.

/// `"name"` with embedded double quotes doubled: safe for any identifier.
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// `'text'` with embedded single quotes doubled. Sessions run with
/// `standard_conforming_strings` on (the default since PostgreSQL 9.1, and set by the session
/// setup), so backslashes are literal. NUL cannot occur in PostgreSQL text and is dropped.
pub fn quote_literal(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        match c {
            '\'' => s.push_str("''"),
            '\0' => {}
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals() {
        assert_eq!(quote_ident(r#"a "b"; --"#), r#""a ""b""; --""#);
        assert_eq!(quote_ident(""), r#""""#);
        assert_eq!(quote_ident("Ünïcode"), "\"Ünïcode\"");
        assert_eq!(quote_literal(r"it's \n"), r"'it''s \n'");
        assert_eq!(quote_literal("a\0b"), "'ab'");
    }
}
