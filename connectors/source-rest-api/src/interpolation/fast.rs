//! Simple templates evaluated without the template engine: `{{ operand }}` and
//! `{{ operand <cmp> operand }}` (optionally joined by `and`/`or`, each side optionally under
//! `not`), where an operand is a lookup in `record` (`record['a']`, `record.a`,
//! `record["a"][0]`) or a literal (`1`, `-2.5`, `'x'`, `True`, `None`). The result is what the
//! template engine would give; whenever that is not certain (a missing field, a container,
//! comparing different kinds) evaluation returns `None` and the caller uses the engine.

use std::cmp::Ordering;

use minijinja::value::Value as Mj;
use serde_json::Value;

/// A compiled simple template.
#[derive(Debug, Clone)]
pub struct Fast(Expr);

#[derive(Debug, Clone)]
enum Expr {
    Operand(Operand),
    Compare(Operand, Cmp, Operand),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
enum Operand {
    Record(Vec<Step>),
    Literal(Value),
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What an evaluation gives: a scalar, or a boolean from a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Out<'r> {
    Value(&'r Value),
    Owned(Value),
}

impl Out<'_> {
    fn value(&self) -> &Value {
        match self {
            Out::Value(v) => v,
            Out::Owned(v) => v,
        }
    }

    /// The text the template engine renders for the value (Python's `str`).
    pub fn text(&self) -> String {
        match self.value() {
            Value::Null => "None".to_string(),
            Value::Bool(true) => "True".to_string(),
            Value::Bool(false) => "False".to_string(),
            Value::String(s) => s.clone(),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.to_string(),
                (None, Some(u)) => u.to_string(),
                _ => super::datetime::python_float(n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => {
                let mut s = String::new();
                super::literal::py_str(&self.to_mj(), &mut s);
                s
            }
        }
    }

    /// The value as the template engine sees it.
    pub fn to_mj(&self) -> Mj {
        match self.value() {
            Value::Null => Mj::from(()),
            Value::Bool(b) => Mj::from(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Mj::from(i)
                } else if let Some(u) = n.as_u64() {
                    Mj::from(u)
                } else {
                    Mj::from(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Mj::from(s.as_str()),
            // Never produced: containers are left to the engine.
            other => Mj::from(other.to_string()),
        }
    }
}

impl Fast {
    /// Compiles `source` when it is a simple template.
    pub fn compile(source: &str) -> Option<Self> {
        let inner = source.strip_prefix("{{")?.strip_suffix("}}")?;
        if inner.starts_with(['-', '+']) || inner.ends_with(['-', '+']) {
            return None;
        }
        if ["{{", "}}", "{%", "%}", "{#", "#}"]
            .iter()
            .any(|d| inner.contains(d))
        {
            return None;
        }
        let toks = tokenize(inner)?;
        let mut p = Parser { toks, i: 0 };
        let e = p.or()?;
        (p.i == p.toks.len()).then_some(Fast(e))
    }

    /// Evaluates against `record`; `None` when the template engine must decide.
    pub fn eval<'r>(&self, record: &'r Value) -> Option<Out<'r>> {
        eval(&self.0, record)
    }
}

fn eval<'r>(e: &Expr, record: &'r Value) -> Option<Out<'r>> {
    match e {
        Expr::Operand(o) => operand(o, record),
        Expr::Compare(a, cmp, b) => {
            let (a, b) = (operand(a, record)?, operand(b, record)?);
            compare(a.value(), *cmp, b.value()).map(|r| Out::Owned(Value::Bool(r)))
        }
        Expr::Not(inner) => {
            let v = eval(inner, record)?;
            truthy(v.value()).map(|t| Out::Owned(Value::Bool(!t)))
        }
        // Jinja's `and`/`or` give an operand, not a boolean.
        Expr::And(a, b) => {
            let l = eval(a, record)?;
            if truthy(l.value())? {
                eval(b, record)
            } else {
                Some(l)
            }
        }
        Expr::Or(a, b) => {
            let l = eval(a, record)?;
            if truthy(l.value())? {
                Some(l)
            } else {
                eval(b, record)
            }
        }
    }
}

fn operand<'r>(o: &Operand, record: &'r Value) -> Option<Out<'r>> {
    match o {
        Operand::Literal(v) => Some(Out::Owned(v.clone())),
        Operand::Record(steps) => {
            let mut v = record;
            for s in steps {
                v = match (s, v) {
                    (Step::Key(k), Value::Object(m)) => m.get(k)?,
                    (Step::Index(i), Value::Array(a)) => a.get(*i)?,
                    _ => return None,
                };
            }
            (!v.is_array() && !v.is_object()).then_some(Out::Value(v))
        }
    }
}

/// Jinja truthiness of a scalar.
fn truthy(v: &Value) -> Option<bool> {
    Some(match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => return None,
    })
}

/// Compares numbers with numbers, strings with strings, booleans and nulls with their own
/// kind; anything else is left to the engine.
fn compare(a: &Value, cmp: Cmp, b: &Value) -> Option<bool> {
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?)?,
        },
        (Value::String(x), Value::String(y)) => x.as_str().cmp(y.as_str()),
        (Value::Bool(x), Value::Bool(y)) if matches!(cmp, Cmp::Eq | Cmp::Ne) => x.cmp(y),
        (Value::Null, Value::Null) if matches!(cmp, Cmp::Eq | Cmp::Ne) => Ordering::Equal,
        _ => return None,
    };
    Some(match cmp {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Ne => ord != Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(Value),
    Op(&'static str),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i;
            while let Some(&(j, c)) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    end = j + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Name(s[i..end].to_string()));
        } else if c.is_ascii_digit() {
            let mut end = i;
            while let Some(&(j, c)) = chars.peek() {
                if c.is_ascii_digit() || c == '.' {
                    end = j + 1;
                    chars.next();
                } else {
                    break;
                }
            }
            let text = &s[i..end];
            let v = if text.contains('.') {
                let f: f64 = text.parse().ok()?;
                Value::from(f)
            } else {
                Value::from(text.parse::<i64>().ok()?)
            };
            out.push(Tok::Num(v));
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                let (_, d) = chars.next()?;
                if d == c {
                    break;
                }
                // Escapes are left to the engine.
                if d == '\\' {
                    return None;
                }
                text.push(d);
            }
            out.push(Tok::Str(text));
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            let op = ["==", "!=", "<=", ">="]
                .into_iter()
                .find(|o| *o == two)
                .or_else(|| {
                    ["<", ">", "[", "]", ".", "-", "(", ")"]
                        .into_iter()
                        .find(|o| o.starts_with(c))
                })?;
            for _ in 0..op.len() {
                chars.next();
            }
            out.push(Tok::Op(op));
        }
    }
    Some(out)
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn word(w: &str) -> Tok {
        Tok::Name(w.to_string())
    }

    fn or(&mut self) -> Option<Expr> {
        let mut e = self.and()?;
        while self.eat(&Self::word("or")) {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Some(e)
    }

    fn and(&mut self) -> Option<Expr> {
        let mut e = self.not()?;
        while self.eat(&Self::word("and")) {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Some(e)
    }

    fn not(&mut self) -> Option<Expr> {
        if self.eat(&Self::word("not")) {
            return Some(Expr::Not(Box::new(self.not()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Option<Expr> {
        if self.eat(&Tok::Op("(")) {
            let e = self.or()?;
            return self.eat(&Tok::Op(")")).then_some(e);
        }
        let a = self.operand()?;
        let cmp = match self.peek() {
            Some(Tok::Op("==")) => Cmp::Eq,
            Some(Tok::Op("!=")) => Cmp::Ne,
            Some(Tok::Op("<")) => Cmp::Lt,
            Some(Tok::Op("<=")) => Cmp::Le,
            Some(Tok::Op(">")) => Cmp::Gt,
            Some(Tok::Op(">=")) => Cmp::Ge,
            _ => return Some(Expr::Operand(a)),
        };
        self.i += 1;
        let b = self.operand()?;
        Some(Expr::Compare(a, cmp, b))
    }

    fn operand(&mut self) -> Option<Operand> {
        let t = self.peek()?.clone();
        self.i += 1;
        Some(match t {
            Tok::Num(v) => Operand::Literal(v),
            Tok::Str(s) => Operand::Literal(Value::String(s)),
            Tok::Op("-") => match self.peek()?.clone() {
                Tok::Num(v) => {
                    self.i += 1;
                    Operand::Literal(negate(&v)?)
                }
                _ => return None,
            },
            Tok::Name(n) => match n.as_str() {
                "True" | "true" => Operand::Literal(Value::Bool(true)),
                "False" | "false" => Operand::Literal(Value::Bool(false)),
                "None" | "none" => Operand::Literal(Value::Null),
                "record" => Operand::Record(self.steps()?),
                _ => return None,
            },
            Tok::Op(_) => return None,
        })
    }

    fn steps(&mut self) -> Option<Vec<Step>> {
        let mut steps = Vec::new();
        loop {
            if self.eat(&Tok::Op(".")) {
                match self.peek()?.clone() {
                    Tok::Name(n) => {
                        self.i += 1;
                        steps.push(Step::Key(n));
                    }
                    _ => return None,
                }
            } else if self.eat(&Tok::Op("[")) {
                let step = match self.peek()?.clone() {
                    Tok::Str(s) => Step::Key(s),
                    Tok::Num(Value::Number(n)) => Step::Index(usize::try_from(n.as_u64()?).ok()?),
                    _ => return None,
                };
                self.i += 1;
                if !self.eat(&Tok::Op("]")) {
                    return None;
                }
                steps.push(step);
            } else {
                break;
            }
        }
        // A record is a mapping: its first step is a key.
        match steps.first() {
            Some(Step::Key(_)) => Some(steps),
            _ => None,
        }
    }
}

fn negate(v: &Value) -> Option<Value> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Value::from(-i)),
            None => Some(Value::from(-n.as_f64()?)),
        },
        _ => None,
    }
}
