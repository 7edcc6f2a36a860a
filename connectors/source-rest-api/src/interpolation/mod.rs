//! `{{ }}` interpolation as Airbyte's low-code engine does it: Jinja templates (minijinja,
//! sandboxed, no `range`) over `config`, `parameters` and the variables of the place the
//! template is used (`stream_interval`, `next_page_token`, `response`, `record`, ...), with
//! Airbyte's macros and filters, Python-style methods (`dict.get`, `str.split`), Python-style
//! printing, and the rendered text read back as a Python literal.

pub mod datetime;
mod fast;
mod functions;
pub mod json_object;
pub mod literal;
pub mod objects;
#[cfg(test)]
mod proptests;
mod rewrite;

use std::sync::Arc;

use cdk::protocol::FailureType;
use cdk::{Error, Result};
use minijinja::value::Value as Mj;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

pub use json_object::{Headers, json_value};
pub use literal::literal_eval;

/// A template value built from any serialisable value (copied).
pub fn to_mj<T: serde::Serialize>(v: T) -> Mj {
    Mj::from(minijinja::value::Serde(v))
}

/// The template engine of one run: the environment and the config every template sees.
pub struct Interpolator {
    env: Environment<'static>,
    config: Mj,
}

impl std::fmt::Debug for Interpolator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interpolator")
    }
}

impl Interpolator {
    pub fn new(config: &Value) -> Arc<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Templates are looked up by their (rewritten) source and compiled once.
        env.set_loader(|source| Ok(Some(source.to_string())));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(|out, _state, value| {
            let mut s = String::new();
            literal::py_str(value, &mut s);
            out.write_str(&s).map_err(minijinja::Error::from)
        });
        env.remove_global("range");
        functions::register(&mut env);
        Arc::new(Self {
            env,
            config: to_mj(config),
        })
    }

    /// Checks a template compiles; returns the key it renders under.
    fn compile(&self, source: &str) -> std::result::Result<String, String> {
        let key = rewrite::rewrite(source);
        self.env
            .get_template(&key)
            .map_err(|e| format!("invalid template: {}", cdk::chain_text(&e)))?;
        Ok(key)
    }

    /// Renders; `None` when the result is empty or an undefined value was used.
    fn render(&self, key: &str, source: &str, ctx: Mj) -> Result<Option<String>> {
        let rendered = self.env.get_template(key).and_then(|t| t.render(ctx));
        match rendered {
            Ok(s) if s.is_empty() => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == ErrorKind::UndefinedError => Ok(None),
            Err(e) => Err(Error::from_cause(
                FailureType::ConfigError,
                format!("template '{source}' failed"),
                e,
            )),
        }
    }

    pub fn config(&self) -> &Mj {
        &self.config
    }
}

/// The variables of one evaluation besides `config` and `parameters`.
#[derive(Default, Clone)]
pub struct Vars {
    pairs: Vec<(&'static str, Mj)>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &'static str, value: Mj) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &'static str, value: Mj) {
        if let Some(slot) = self.pairs.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.pairs.push((name, value));
        }
    }
}

/// A manifest string that may hold `{{ }}`: compiled once, evaluated many times.
#[derive(Clone, Debug)]
pub struct Template {
    source: Arc<str>,
    /// `None` for text without template tags.
    key: Option<Arc<str>>,
    params: Mj,
    interp: Arc<Interpolator>,
    /// The same template evaluated without the engine, when it is simple enough.
    fast: Option<Arc<fast::Fast>>,
}

impl Template {
    /// Compiles `source` for a component whose `$parameters` are `params`. The error names
    /// what is wrong with the template (the caller adds where it is).
    pub fn new(
        interp: &Arc<Interpolator>,
        source: &str,
        params: &Value,
    ) -> std::result::Result<Self, String> {
        let key = if source.contains("{{") || source.contains("{%") {
            Some(Arc::from(interp.compile(source)?))
        } else {
            None
        };
        let fast = key
            .as_ref()
            .and_then(|_| fast::Fast::compile(source))
            .map(Arc::new);
        Ok(Self {
            source: Arc::from(source),
            key,
            params: to_mj(params),
            interp: interp.clone(),
            fast,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_constant(&self) -> bool {
        self.key.is_none()
    }

    /// The rendered text; `None` when empty or undefined.
    pub fn render(&self, vars: &Vars) -> Result<Option<String>> {
        let Some(key) = &self.key else {
            return Ok((!self.source.is_empty()).then(|| self.source.to_string()));
        };
        let ctx = Mj::from_pairs(
            [
                ("config", self.interp.config.clone()),
                ("parameters", self.params.clone()),
            ]
            .into_iter()
            .chain(vars.pairs.iter().cloned()),
        );
        self.interp.render(key, &self.source, ctx)
    }

    /// The value: rendered, then read as a Python literal when it is one (`"5"` → 5).
    pub fn eval(&self, vars: &Vars) -> Result<Value> {
        Ok(value_of(self.render(vars)?))
    }

    /// The value as text, for URLs, headers and parameters: a quoted literal loses its
    /// quotes, anything else is the rendered text as is.
    pub fn eval_str(&self, vars: &Vars) -> Result<Option<String>> {
        Ok(text_of(self.render(vars)?))
    }

    /// A condition: false for empty, `False`, `None`, `0`, `[]`, `{}`.
    pub fn eval_bool(&self, vars: &Vars) -> Result<bool> {
        Ok(truthy(&self.eval(vars)?))
    }

    /// `render` with `record` visible to the template as `record`. Simple templates
    /// (lookups in the record, literals, comparisons) are evaluated without the engine.
    pub fn render_with_record(&self, record: &mut Value, vars: &Vars) -> Result<Option<String>> {
        if let Some(f) = &self.fast
            && let Some(out) = f.eval(record)
        {
            let s = out.text();
            return Ok((!s.is_empty()).then_some(s));
        }
        with_record(record, vars, |v| self.render(v))
    }

    /// `eval` with `record` visible to the template.
    pub fn eval_with_record(&self, record: &mut Value, vars: &Vars) -> Result<Value> {
        Ok(value_of(self.render_with_record(record, vars)?))
    }

    /// `eval_str` with `record` visible to the template.
    pub fn eval_str_with_record(&self, record: &mut Value, vars: &Vars) -> Result<Option<String>> {
        Ok(text_of(self.render_with_record(record, vars)?))
    }

    /// `eval_bool` with `record` visible to the template.
    pub fn eval_bool_with_record(&self, record: &mut Value, vars: &Vars) -> Result<bool> {
        if let Some(f) = &self.fast
            && let Some(fast::Out::Owned(Value::Bool(b))) = f.eval(record)
        {
            return Ok(b);
        }
        Ok(truthy(&self.eval_with_record(record, vars)?))
    }
}

/// Runs `f` with `record` visible to templates as `record`, then puts the record back.
pub fn with_record<T>(
    record: &mut Value,
    vars: &Vars,
    f: impl FnOnce(&Vars) -> Result<T>,
) -> Result<T> {
    let shared = Arc::new(std::mem::take(record));
    let vars = vars.clone().with("record", json_value(shared.clone()));
    let out = f(&vars);
    drop(vars);
    *record = Arc::try_unwrap(shared).unwrap_or_else(|arc| (*arc).clone());
    out
}

/// A rendering read as a Python literal when it is one.
fn value_of(rendered: Option<String>) -> Value {
    match rendered {
        None => Value::Null,
        Some(s) => literal_eval(&s).unwrap_or(Value::String(s)),
    }
}

/// A rendering as text: a quoted literal loses its quotes, `None` is nothing.
fn text_of(rendered: Option<String>) -> Option<String> {
    rendered.and_then(|s| match literal_eval(&s) {
        Some(Value::String(inner)) => Some(inner),
        Some(Value::Null) => None,
        _ => Some(s),
    })
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "False" || s == "false" || s == "None"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value of a manifest that may contain templates at any depth (request parameters, bodies):
/// strings are templates, keys too; everything else is kept.
#[derive(Clone, Debug)]
pub enum Structure {
    Template(Template),
    Literal(Value),
    Map(Vec<(Template, Structure)>),
    List(Vec<Structure>),
}

impl Structure {
    pub fn new(
        interp: &Arc<Interpolator>,
        v: &Value,
        params: &Value,
    ) -> std::result::Result<Self, String> {
        Ok(match v {
            Value::String(s) => Structure::Template(Template::new(interp, s, params)?),
            Value::Object(m) => Structure::Map(
                m.iter()
                    .map(|(k, v)| {
                        Ok((
                            Template::new(interp, k, params)?,
                            Self::new(interp, v, params)?,
                        ))
                    })
                    .collect::<std::result::Result<_, String>>()?,
            ),
            Value::Array(a) => Structure::List(
                a.iter()
                    .map(|v| Self::new(interp, v, params))
                    .collect::<std::result::Result<_, String>>()?,
            ),
            other => Structure::Literal(other.clone()),
        })
    }

    /// Evaluates every template: values typed as Python literals, keys as text; entries whose
    /// value evaluates to nothing are dropped.
    pub fn eval(&self, vars: &Vars) -> Result<Value> {
        Ok(match self {
            Structure::Template(t) => t.eval(vars)?,
            Structure::Literal(v) => v.clone(),
            Structure::List(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.eval(vars))
                    .collect::<Result<Vec<_>>>()?,
            ),
            Structure::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let Some(key) = k.eval_str(vars)? else {
                        continue;
                    };
                    let value = v.eval(vars)?;
                    if !value.is_null() {
                        map.insert(key, value);
                    }
                }
                Value::Object(map)
            }
        })
    }

    /// Evaluates to string values (query parameters, headers, form fields): strings stay the
    /// text they rendered to rather than becoming numbers.
    pub fn eval_strings(&self, vars: &Vars) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        match self {
            Structure::Map(entries) => {
                for (k, v) in entries {
                    let Some(key) = k.eval_str(vars)? else {
                        continue;
                    };
                    match v {
                        Structure::Template(t) => {
                            if let Some(s) = t.eval_str(vars)? {
                                out.push((key, s));
                            }
                        }
                        other => match other.eval(vars)? {
                            Value::Null => {}
                            Value::String(s) => out.push((key, s)),
                            Value::Array(items) => {
                                for item in items {
                                    out.push((key.clone(), scalar_text(&item)));
                                }
                            }
                            v => out.push((key, scalar_text(&v))),
                        },
                    }
                }
            }
            Structure::Template(t) => {
                // A template producing a whole mapping.
                if let Value::Object(m) = t.eval(vars)? {
                    for (k, v) in m {
                        if !v.is_null() {
                            out.push((k, scalar_text(&v)));
                        }
                    }
                }
            }
            Structure::Literal(_) | Structure::List(_) => {}
        }
        Ok(out)
    }
}

/// A JSON scalar as query-string text (`true` → `true`, strings unquoted).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn interp() -> Arc<Interpolator> {
        Interpolator::new(&json!({
            "start_date": "2024-01-02T03:04:05Z", "n": 3, "nested": {"k": "v"},
            "list": ["a", "b"]
        }))
    }

    fn eval(src: &str) -> Value {
        eval_with(src, Vars::new())
    }

    fn eval_with(src: &str, vars: Vars) -> Value {
        Template::new(&interp(), src, &json!({"name": "users", "page_size": 50}))
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .eval(&vars)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn variables_and_python_subscripts() {
        assert_eq!(
            eval("{{ config['start_date'] }}"),
            json!("2024-01-02T03:04:05Z")
        );
        assert_eq!(eval("{{ config.nested.k }}"), json!("v"));
        assert_eq!(eval("{{ config.get('missing', 'dflt') }}"), json!("dflt"));
        assert_eq!(eval("{{ config.get('missing') }}"), Value::Null);
        assert_eq!(eval("{{ config['missing'] }}"), Value::Null);
        assert_eq!(eval("{{ config['missing']['deeper'] }}"), Value::Null);
        assert_eq!(eval("{{ parameters['name'] }}"), json!("users"));
        assert_eq!(eval("{{ parameters.page_size }}"), json!(50));
        assert_eq!(eval("{{ config['n'] + 1 }}"), json!(4));
        assert_eq!(eval("{{ config['list'] }}"), json!(["a", "b"]));
        assert_eq!(eval("{{ config['nested'] }}"), json!({"k": "v"}));
        assert_eq!(eval("{{ 'a,b'.split(',') }}"), json!(["a", "b"]));
        assert_eq!(eval("{{ not True }}"), json!(false));
        assert_eq!(eval("{{ None }}"), Value::Null);
        assert_eq!(eval("plain"), json!("plain"));
        assert_eq!(eval("42"), json!(42));
        let vars = Vars::new()
            .with("next_page_token", to_mj(json!({"next_page_token": 7})))
            .with(
                "stream_interval",
                to_mj(json!({"start_time": "2024-01-01"})),
            )
            .with("stream_partition", to_mj(json!({"id": 9})))
            .with("last_page_size", Mj::from(10))
            .with(
                "record",
                json_value(Arc::new(json!({"id": 1, "tags": ["x"]}))),
            )
            .with("last_record", json_value(Arc::new(json!({"id": 2}))))
            .with(
                "response",
                json_value(Arc::new(json!({"next": "abc", "data": [1, 2]}))),
            )
            .with(
                "headers",
                Mj::from_object(Headers::new(vec![
                    ("X-Next".into(), "h1".into()),
                    ("link".into(), "<https://x/?p=2>; rel=\"next\"".into()),
                ])),
            );
        assert_eq!(
            eval_with("{{ next_page_token['next_page_token'] }}", vars.clone()),
            json!(7)
        );
        assert_eq!(
            eval_with("{{ stream_interval.start_time }}", vars.clone()),
            json!("2024-01-01")
        );
        assert_eq!(
            eval_with("{{ stream_partition['id'] }}", vars.clone()),
            json!(9)
        );
        assert_eq!(eval_with("{{ last_page_size }}", vars.clone()), json!(10));
        assert_eq!(
            eval_with("{{ record['id'] + 1000000 }}", vars.clone()),
            json!(1000001)
        );
        assert_eq!(eval_with("{{ record.tags[0] }}", vars.clone()), json!("x"));
        assert_eq!(eval_with("{{ last_record['id'] }}", vars.clone()), json!(2));
        assert_eq!(
            eval_with("{{ response['next'] }}", vars.clone()),
            json!("abc")
        );
        assert_eq!(
            eval_with("{{ response.data | length }}", vars.clone()),
            json!(2)
        );
        assert_eq!(
            eval_with("{{ headers['x-next'] }}", vars.clone()),
            json!("h1")
        );
        assert_eq!(
            eval_with("{{ headers.link.next.url }}", vars),
            json!("https://x/?p=2")
        );
    }

    #[test]
    fn macros() {
        let now = chrono::Utc::now();
        let today = now.format("%Y-%m-%d").to_string();
        assert_eq!(eval("{{ today_utc() }}"), json!(today));
        assert_eq!(eval("{{ now_utc().strftime('%Y-%m-%d') }}"), json!(today));
        assert!(
            eval("{{ now_utc() }}")
                .as_str()
                .unwrap()
                .ends_with("+00:00")
        );
        let yesterday = (now - chrono::TimeDelta::days(1))
            .format("%Y-%m-%d")
            .to_string();
        assert_eq!(
            eval("{{ (now_utc() - duration('P1D')).strftime('%Y-%m-%d') }}"),
            json!(yesterday)
        );
        assert_eq!(
            eval("{{ (today_utc() - duration('P1D')).strftime('%Y-%m-%d') }}"),
            json!(yesterday)
        );
        assert_eq!(
            eval("{{ day_delta(-1, format='%Y-%m-%d') }}"),
            json!(yesterday)
        );
        assert_eq!(eval("{{ day_delta(-1, '%Y-%m-%d') }}"), json!(yesterday));
        assert_eq!(eval("{{ duration('P1D') }}"), json!("1 day, 0:00:00"));
        assert_eq!(eval("{{ duration('P6DT23H') }}"), json!("6 days, 23:00:00"));
        assert_eq!(eval("{{ timestamp(1646006400) }}"), json!(1646006400));
        assert_eq!(eval("{{ timestamp('2022-02-28') }}"), json!(1646006400));
        assert_eq!(
            eval("{{ timestamp('2022-02-28T00:00:00-08:00') }}"),
            json!(1646035200)
        );
        assert_eq!(eval("{{ max(2, 3) }}"), json!(3));
        assert_eq!(eval("{{ max([2, 3]) }}"), json!(3));
        assert_eq!(eval("{{ min(2, 3) }}"), json!(2));
        assert_eq!(
            eval("{{ min('2024-01-02', '2023-05-06') }}"),
            json!("2023-05-06")
        );
        assert_eq!(
            eval("{{ format_datetime(config['start_date'], '%Y-%m-%d') }}"),
            json!("2024-01-02")
        );
        assert_eq!(
            eval("{{ format_datetime('01/02/2024', '%Y-%m-%d', '%m/%d/%Y') }}"),
            json!("2024-01-02")
        );
        assert_eq!(
            eval("{{ format_datetime(config['start_date'], '%s') }}"),
            json!(1704164645)
        );
        assert_eq!(
            eval("{{ str_to_datetime('2022-01-01 13:45:30') }}"),
            json!("2022-01-01 13:45:30+00:00")
        );
        assert_eq!(
            eval("{{ str_to_datetime('2022-01-01T13:45:30.123456Z').isoformat() }}"),
            json!("2022-01-01T13:45:30.123456+00:00")
        );
        assert_eq!(
            eval("{{ (str_to_datetime('2022-01-31') + duration('P1M')).strftime('%Y-%m-%d') }}"),
            json!("2022-02-28")
        );
        assert_eq!(
            eval("{{ str_to_datetime('2022-01-02') > str_to_datetime('2022-01-01') }}"),
            json!(true)
        );
        assert_eq!(
            eval("{{ 1 + 2 - duration('PT1S').total_seconds() }}"),
            json!(2.0)
        );
        assert_eq!(
            eval("{{ camel_case_to_snake_case('someName') }}"),
            json!("some_name")
        );
    }

    #[test]
    fn filters() {
        assert_eq!(
            eval("{{ 'Test client_secret' | hash }}"),
            json!("3032d57a12f76b61a820e47b9a5a0cbb")
        );
        assert_eq!(
            eval("{{ 'Test client_secret' | hash('md5') }}"),
            json!("3032d57a12f76b61a820e47b9a5a0cbb")
        );
        assert_eq!(
            eval("{{ 'Test client_secret' | hash('md5', salt='salt') }}"),
            json!("5011a0168579c2d94cbbe1c6ad14327c")
        );
        assert_eq!(
            eval("{{ 'abc' | hash('sha256') }}"),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            eval("{{ 'Test client_secret' | base64encode }}"),
            json!("VGVzdCBjbGllbnRfc2VjcmV0")
        );
        assert_eq!(
            eval("{{ 'ZmFrZSByZWZyZXNoX3Rva2VuIHZhbHVl' | base64decode }}"),
            json!("fake refresh_token value")
        );
        assert_eq!(eval("{{ 1 | string }}"), json!("1"));
        assert_eq!(
            eval("{{ ['hello', 'world'] | string }}"),
            json!("[\"hello\", \"world\"]")
        );
        assert_eq!(
            eval(r#"{{ "goodbye, cruel world" | regex_search("goodbye,\s(.*)$") }}"#),
            json!("cruel world")
        );
        assert_eq!(
            eval(r#"{{ "hello world" | regex_replace("world", "universe") }}"#),
            json!("hello universe")
        );
        assert_eq!(
            eval(r#"{{ "hello-world_foo" | regex_replace("[_-]", " ") }}"#),
            json!("hello world foo")
        );
    }

    #[test]
    fn sandbox_and_errors() {
        let i = interp();
        assert!(
            Template::new(&i, "{{ range(3) }}", &json!({}))
                .unwrap()
                .eval(&Vars::new())
                .is_err()
        );
        let t = Template::new(&i, "{{ stream_state.get('x', 'none') }}", &json!({})).unwrap();
        let state = Vars::new().with("stream_state", to_mj(json!({"x": "2024-01-01"})));
        assert_eq!(t.eval(&state).unwrap(), json!("2024-01-01"));
        assert!(Template::new(&i, "{{ unclosed", &json!({})).is_err());
        let t = Template::new(&i, "{{ 1 | nosuchfilter }}", &json!({})).unwrap();
        assert!(t.eval(&Vars::new()).is_err());
    }

    #[test]
    fn string_and_bool_evaluation() {
        let i = interp();
        let t = Template::new(&i, "{{ config['n'] }}", &json!({})).unwrap();
        assert_eq!(t.eval_str(&Vars::new()).unwrap().as_deref(), Some("3"));
        let t = Template::new(&i, "{{ 'x' if config['n'] > 2 else '' }}", &json!({})).unwrap();
        assert!(t.eval_bool(&Vars::new()).unwrap());
        let t = Template::new(&i, "{{ config['n'] > 5 }}", &json!({})).unwrap();
        assert!(!t.eval_bool(&Vars::new()).unwrap());
        let s = Structure::new(&i, &json!({"limit": 100, "since": "{{ config['start_date'] }}", "gone": "{{ config.get('x') }}"}), &json!({})).unwrap();
        assert_eq!(
            s.eval_strings(&Vars::new()).unwrap(),
            vec![
                ("limit".to_string(), "100".to_string()),
                ("since".to_string(), "2024-01-02T03:04:05Z".to_string())
            ]
        );
    }
}
