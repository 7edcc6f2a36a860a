//! Property tests: arbitrary Unicode templates, formats and values through the rewrite, the
//! template engine and the datetime code give a value or an error, never a panic.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::datetime::{PyDuration, parse_airbyte, parse_loose, strftime, strptime, utc_now};
use super::rewrite::rewrite;
use super::{Interpolator, Template, Vars, json_value, literal_eval, to_mj};

/// Pieces templates are made of: delimiters, datetime macros, operators, quotes, and
/// arbitrary (often multi-byte) text.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ".{0,4}",
        1 => "[éü中😀\u{0301}]{1,3}",
        1 => prop::sample::select(vec![
            "{{", "}}", "{%", "%}", "{#", "#}", "{{-", "-}}", "now_utc()", "today_utc()",
            "duration('P1D')", "duration(", "str_to_datetime('2024-01-01')", " - ", " + ", "-",
            "+", "'", "\"", "\\", "(", ")", "[", "]", "|", " if ", " else ", ",", ":", "=",
            "record['a']", "record.b", "config['x']", "response", "1e-", "2", " not ", "~",
            "format_datetime(", "%Y-%m-%d", "set x = ", "for i in ", " endfor ", "é'",
        ]).prop_map(str::to_string),
    ]
}

fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..12).prop_map(|p| p.concat())
}

fn interp() -> Arc<Interpolator> {
    Interpolator::new(&json!({"x": "é", "start_date": "2024-01-01T00:00:00Z"}))
}

fn vars() -> Vars {
    Vars::new()
        .with(
            "record",
            json_value(Arc::new(json!({"a": "ü", "b": [1, "中"]}))),
        )
        .with("response", json_value(Arc::new(json!({"data": []}))))
        .with(
            "stream_interval",
            to_mj(json!({"start_time": "2024-01-01"})),
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rewrite_never_panics(s in template_text()) {
        let _ = rewrite(&s);
    }

    #[test]
    fn rewrite_never_panics_on_any_text(s in "\\PC{0,40}") {
        let _ = rewrite(&s);
    }

    #[test]
    fn templates_compile_and_render_or_fail(s in template_text()) {
        let i = interp();
        if let Ok(t) = Template::new(&i, &s, &json!({"p": "ß"})) {
            let v = vars();
            let _ = t.eval(&v);
            let _ = t.eval_str(&v);
            let _ = t.eval_bool(&v);
        }
    }

    #[test]
    fn datetime_functions_take_any_text(text in "\\PC{0,24}", format in "(%[a-zA-Z_%]|\\PC){0,8}") {
        let _ = strptime(&text, &format);
        let _ = parse_airbyte(&text, &format);
        let _ = parse_loose(&text);
        let _ = PyDuration::parse(&text);
        let _ = strftime(&utc_now(), &format);
        let _ = literal_eval(&text);
    }

    #[test]
    fn macros_take_any_arguments(a in "\\PC{0,16}", b in "\\PC{0,8}") {
        let i = interp();
        let v = vars()
            .with("a", minijinja::Value::from(a.clone()))
            .with("b", minijinja::Value::from(b));
        for src in [
            "{{ format_datetime(a, b) }}",
            "{{ format_datetime(a, '%Y', b) }}",
            "{{ str_to_datetime(a) }}",
            "{{ duration(a) }}",
            "{{ now_utc() - duration(a) }}",
            "{{ timestamp(a) }}",
            "{{ today_with_timezone(a) }}",
            "{{ a | regex_search(b) }}",
            "{{ a | regex_replace(b, a) }}",
            "{{ a | base64decode }}",
            "{{ a | hash(b) }}",
            "{{ camel_case_to_snake_case(a) }}",
            "{{ a.split(b) }}",
            "{{ max(a, b) }}",
        ] {
            let t = Template::new(&i, src, &json!({})).expect(src);
            let _ = t.eval(&v);
        }
    }
}

#[test]
fn comment_with_accents_before_datetime_arithmetic() {
    let i = interp();
    let t = Template::new(
        &i,
        "{# début #}{{ now_utc() - duration('P1D') }}",
        &json!({}),
    )
    .expect("compiles");
    let v = t.eval(&Vars::new()).expect("renders");
    assert!(
        matches!(v, Value::String(ref s) if s.ends_with("+00:00")),
        "{v}"
    );
}
