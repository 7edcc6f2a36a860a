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

/// Operands of simple templates: lookups of every kind of field, and literals.
fn simple_operand() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "record['i']",
        "record.i",
        "record['f']",
        "record[\"s\"]",
        "record.s",
        "record['n']",
        "record['b']",
        "record['t']",
        "record['e']",
        "record['missing']",
        "record['o']['k']",
        "record['o'].k",
        "record['a'][0]",
        "record['a'][5]",
        "record['a']",
        "record['o']",
        "record['big']",
        "record['neg']",
        "record['num']",
        "record['fs']",
        "0",
        "1",
        "-1",
        "2.5",
        "-0.5",
        "'x'",
        "\"1\"",
        "''",
        "True",
        "False",
        "None",
        "record['u']",
    ])
    .prop_map(str::to_string)
}

fn simple_template() -> impl Strategy<Value = String> {
    let cmp = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    let term = prop_oneof![
        simple_operand(),
        (simple_operand(), cmp, simple_operand()).prop_map(|(a, c, b)| format!("{a} {c} {b}")),
    ];
    let expr = prop_oneof![
        term.clone(),
        term.clone().prop_map(|t| format!("not {t}")),
        (term.clone(), term.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
        (term.clone(), term.clone()).prop_map(|(a, b)| format!("{a} or ({b})")),
        (term.clone(), term).prop_map(|(a, b)| format!("not ({a}) or {b}")),
    ];
    (expr, prop::sample::select(vec!["", " ", "  "]))
        .prop_map(|(e, ws)| format!("{{{{{ws}{e}{ws}}}}}"))
}

fn sample_record(i: i64, f: f64, s: String) -> Value {
    json!({"i": i, "f": f, "s": s, "n": null, "b": true, "t": "True", "e": "",
        "o": {"k": s}, "a": [i, "z"], "big": u64::MAX, "neg": -i, "num": "12",
        "fs": "[1, 2]", "u": "ünï"})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Simple templates give exactly what the template engine gives, for every way of
    /// evaluating them.
    #[test]
    fn simple_templates_match_the_engine(
        src in simple_template(),
        i in prop_oneof![Just(0i64), Just(1), Just(12), any::<i64>()],
        f in prop_oneof![Just(0.0f64), Just(2.5), Just(1e20), -1e6f64..1e6],
        s in prop_oneof![Just(String::new()), Just("x".to_string()), Just("1".to_string()),
            Just("None".to_string()), "\\PC{0,4}"],
    ) {
        let i_ = interp();
        let t = Template::new(&i_, &src, &json!({})).expect("compiles");
        let record = sample_record(i, f, s);
        let engine = |record: &Value| {
            let vars = Vars::new().with("record", json_value(Arc::new(record.clone())));
            (t.render(&vars).ok(), t.eval_bool(&vars).ok(), t.eval_str(&vars).ok())
        };
        let (text, truth, string) = engine(&record);
        let mut r = record.clone();
        if let Some(text) = text {
            prop_assert_eq!(t.render_with_record(&mut r, &Vars::new()).ok(), Some(text), "{}", src);
        }
        if let Some(truth) = truth {
            prop_assert_eq!(t.eval_bool_with_record(&mut r, &Vars::new()).ok(), Some(truth), "{}", src);
        }
        if let Some(string) = string {
            prop_assert_eq!(t.eval_str_with_record(&mut r, &Vars::new()).ok(), Some(string), "{}", src);
        }
        prop_assert_eq!(r, record);
    }
}

#[test]
fn simple_templates_are_compiled() {
    for src in [
        "{{ record['age'] >= 0 }}",
        "{{ record['id'] }}",
        "{{record.a.b}}",
        "{{ record['x'] == 'y' and not record['z'] }}",
        "{{ (record['a'] > 1) or record['b'] < -2.5 }}",
    ] {
        assert!(super::fast::Fast::compile(src).is_some(), "{src}");
    }
    let f = super::fast::Fast::compile("{{ record['age'] >= 0 and record.n }}").expect("simple");
    assert_eq!(
        f.eval(&json!({"age": 3, "n": "x"}))
            .map(|o| o.to_mj().to_string()),
        Some("x".to_string())
    );
    assert!(
        f.eval(&json!({"age": "3", "n": "x"})).is_none(),
        "a string and a number"
    );
    for src in [
        "{{ record['id'] | string }}",
        "x{{ record['id'] }}",
        "{{- record['id'] }}",
        "{{ config['a'] }}",
        "{{ record['a'] + 1 }}",
        "{{ record['a'] in [1] }}",
        "{{ record.get('a') }}",
        "{{ 'a\\'b' }}",
    ] {
        assert!(super::fast::Fast::compile(src).is_none(), "{src}");
    }
}
