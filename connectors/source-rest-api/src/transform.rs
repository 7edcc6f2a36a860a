//! Record transformations: `AddFields` (values and paths interpolated, `value_type`,
//! `condition`), `RemoveFields` (pointers with `*` and `**`, `condition` on the property),
//! `KeysToLower`, `KeysReplace`, and the reshaping ones of [`reshape`]: `KeysToSnakeCase`,
//! `FlattenFields`, `DpathFlattenFields`.

mod reshape;

use cdk::Result;
use serde_json::{Map, Value};

use crate::interpolation::{Template, Vars, literal_eval, to_mj, with_record};
use crate::manifest::{Build, Node, unsupported_type};

#[derive(Debug)]
pub enum Transformation {
    AddFields {
        fields: Vec<AddedField>,
        condition: Option<Template>,
    },
    RemoveFields {
        pointers: Vec<Vec<String>>,
        condition: Option<Template>,
    },
    KeysToLower,
    KeysReplace {
        old: Template,
        new: Template,
    },
    KeysToSnakeCase,
    FlattenFields {
        flatten_lists: bool,
    },
    DpathFlattenFields {
        /// Evaluated with the config when the manifest loads.
        path: Vec<String>,
        prefix: Option<String>,
        suffix: Option<String>,
        replace_record: bool,
        delete_origin_value: bool,
    },
}

#[derive(Debug)]
pub struct AddedField {
    path: Vec<Template>,
    /// The path when no step of it is a template (evaluated once).
    constant_path: Option<Vec<String>>,
    value: FieldValue,
    value_type: Option<ValueType>,
}

#[derive(Debug)]
enum FieldValue {
    Template(Template),
    Literal(Value),
}

#[derive(Debug, Clone, Copy)]
enum ValueType {
    String,
    Number,
    Integer,
    Boolean,
}

const SUPPORTED: [&str; 7] = [
    "AddFields",
    "RemoveFields",
    "KeysToLower",
    "KeysReplace",
    "KeysToSnakeCase",
    "FlattenFields",
    "DpathFlattenFields",
];

impl Transformation {
    pub fn decode(node: Node<'_>, b: &Build) -> Result<Self> {
        let mut c = node.component(None)?;
        c.expect(&SUPPORTED)?;
        let cond = |c: &mut crate::manifest::Component<'_>| -> Result<Option<Template>> {
            Ok(c.opt_template(b, "condition")?
                .filter(|t| !t.source().is_empty()))
        };
        let t = match c.type_name.as_str() {
            "AddFields" => {
                let mut fields = Vec::new();
                for n in c.children("fields")? {
                    let mut f = n.component(Some("AddedFieldDefinition"))?;
                    f.expect(&["AddedFieldDefinition"])?;
                    let path = f
                        .string_list("path")?
                        .ok_or_else(|| f.error("the field 'path' is required"))?
                        .iter()
                        .map(|p| f.template_of(b, "path", p))
                        .collect::<Result<Vec<_>>>()?;
                    if path.is_empty() {
                        return Err(f.error("path must not be empty"));
                    }
                    let value = match f.required("value")? {
                        Value::String(s) => FieldValue::Template(f.template_of(b, "value", &s)?),
                        other => FieldValue::Literal(other),
                    };
                    let value_type = match f.opt_str("value_type")?.as_deref() {
                        None => None,
                        Some("string") => Some(ValueType::String),
                        Some("number") => Some(ValueType::Number),
                        Some("integer") => Some(ValueType::Integer),
                        Some("boolean") => Some(ValueType::Boolean),
                        Some(other) => return Err(f.error(format!("unknown value_type '{other}'"))),
                    };
                    f.finish()?;
                    let constant_path = path
                        .iter()
                        .map(|t| t.is_constant().then(|| t.source().to_string()))
                        .collect();
                    fields.push(AddedField {
                        path,
                        constant_path,
                        value,
                        value_type,
                    });
                }
                if fields.is_empty() {
                    return Err(c.error("fields must not be empty"));
                }
                Transformation::AddFields {
                    fields,
                    condition: cond(&mut c)?,
                }
            }
            "RemoveFields" => {
                let pointers = match c.required("field_pointers")? {
                    Value::Array(items) => items
                        .into_iter()
                        .map(|p| match p {
                            Value::Array(keys) => Ok(keys
                                .into_iter()
                                .map(|k| match k {
                                    Value::String(s) => s,
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()),
                            other => Err(c.error(format!(
                                "field_pointers must be lists of keys, got {other}"
                            ))),
                        })
                        .collect::<Result<Vec<_>>>()?,
                    other => {
                        return Err(c.error(format!("field_pointers must be a list, got {other}")));
                    }
                };
                Transformation::RemoveFields {
                    pointers,
                    condition: cond(&mut c)?,
                }
            }
            "KeysToLower" => Transformation::KeysToLower,
            "KeysToSnakeCase" => Transformation::KeysToSnakeCase,
            "FlattenFields" => Transformation::FlattenFields {
                flatten_lists: c.bool_or("flatten_lists", true)?,
            },
            "DpathFlattenFields" => {
                let vars = Vars::new();
                let path = c
                    .string_list("field_path")?
                    .ok_or_else(|| c.error("'field_path' is required"))?
                    .iter()
                    .map(|p| {
                        Ok(c.template_of(b, "field_path", p)?
                            .eval_str(&vars)?
                            .unwrap_or_default())
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (mut prefix, mut suffix) = (None, None);
                if let Some(n) = c.child("key_transformation") {
                    let mut k = n.component(Some("KeyTransformation"))?;
                    prefix = k
                        .opt_template(b, "prefix")?
                        .map(|t| t.eval_str(&vars))
                        .transpose()?
                        .flatten();
                    suffix = k
                        .opt_template(b, "suffix")?
                        .map(|t| t.eval_str(&vars))
                        .transpose()?
                        .flatten();
                    k.finish()?;
                }
                Transformation::DpathFlattenFields {
                    path,
                    prefix,
                    suffix,
                    replace_record: c.bool_or("replace_record", false)?,
                    delete_origin_value: c.bool_or("delete_origin_value", false)?,
                }
            }
            "KeysReplace" => Transformation::KeysReplace {
                old: c.template(b, "old")?,
                new: c.template(b, "new")?,
            },
            other => return Err(unsupported_type(other, c.at(), &SUPPORTED)),
        };
        c.finish()?;
        Ok(t)
    }

    pub fn apply(&self, record: &mut Value, vars: &Vars) -> Result<()> {
        match self {
            Transformation::AddFields { fields, condition } => {
                if let Some(cond) = condition
                    && !cond.eval_bool_with_record(record, vars)?
                {
                    return Ok(());
                }
                for f in fields {
                    let value = f.eval(record, vars)?;
                    match &f.constant_path {
                        Some(path) => set_path(record, path, value),
                        None => {
                            let path = with_record(record, vars, |v| {
                                f.path
                                    .iter()
                                    .map(|t| Ok(t.eval_str(v)?.unwrap_or_default()))
                                    .collect::<Result<Vec<String>>>()
                            })?;
                            set_path(record, &path, value);
                        }
                    }
                }
            }
            Transformation::RemoveFields {
                pointers,
                condition,
            } => {
                for p in pointers {
                    remove(record, p, condition.as_ref(), vars)?;
                }
            }
            Transformation::KeysToLower => {
                if let Value::Object(m) = record {
                    *m = std::mem::take(m)
                        .into_iter()
                        .map(|(k, v)| (k.to_lowercase(), v))
                        .collect();
                }
            }
            Transformation::KeysReplace { old, new } => {
                let (old, new) = with_record(record, vars, |v| {
                    Ok((
                        old.eval_str(v)?.unwrap_or_default(),
                        new.eval_str(v)?.unwrap_or_default(),
                    ))
                })?;
                if !old.is_empty() {
                    replace_keys(record, &old, &new);
                }
            }
            Transformation::KeysToSnakeCase => reshape::keys_to_snake_case(record),
            Transformation::FlattenFields { flatten_lists } => {
                reshape::flatten(record, *flatten_lists)
            }
            Transformation::DpathFlattenFields {
                path,
                prefix,
                suffix,
                replace_record,
                delete_origin_value,
            } => reshape::dpath_flatten(
                record,
                path,
                prefix.as_deref(),
                suffix.as_deref(),
                *replace_record,
                *delete_origin_value,
            ),
        }
        Ok(())
    }
}

/// Renames keys of `value` and of every object nested in it (not inside lists), as
/// airbyte-cdk's `KeysReplaceTransformation` does.
fn replace_keys(value: &mut Value, old: &str, new: &str) {
    if let Value::Object(m) = value {
        *m = std::mem::take(m)
            .into_iter()
            .map(|(k, mut v)| {
                replace_keys(&mut v, old, new);
                (k.replace(old, new), v)
            })
            .collect();
    }
}

impl AddedField {
    /// The value for `record` (the record as earlier fields left it).
    fn eval(&self, record: &mut Value, vars: &Vars) -> Result<Value> {
        let t = match &self.value {
            FieldValue::Literal(v) => return Ok(v.clone()),
            FieldValue::Template(t) => t,
        };
        let Some(text) = t.render_with_record(record, vars)? else {
            return Ok(Value::Null);
        };
        let lit = literal_eval(&text);
        Ok(match (self.value_type, lit) {
            (None, Some(v)) => v,
            (None, None) => Value::String(text),
            (Some(ValueType::String), Some(Value::String(s))) => Value::String(s),
            (Some(ValueType::String), _) => Value::String(text),
            (Some(ValueType::Integer), Some(Value::Number(n))) if n.is_i64() || n.is_u64() => {
                Value::Number(n)
            }
            (Some(ValueType::Number), Some(Value::Number(n))) => Value::Number(n),
            (Some(ValueType::Boolean), Some(Value::Bool(b))) => Value::Bool(b),
            (Some(_), _) => Value::String(text),
        })
    }
}

fn set_path(record: &mut Value, path: &[String], value: Value) {
    let mut target = record;
    for key in &path[..path.len() - 1] {
        let Value::Object(m) = target else { return };
        let entry = m
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        target = entry;
    }
    if let Value::Object(m) = target {
        m.insert(path[path.len() - 1].clone(), value);
    }
}

/// Removes what `pointer` matches (`*` one level, `**` any depth); with a condition, only the
/// properties for which it holds (`property` is the value).
fn remove(
    v: &mut Value,
    pointer: &[String],
    condition: Option<&Template>,
    vars: &Vars,
) -> Result<()> {
    let Some((head, rest)) = pointer.split_first() else {
        return Ok(());
    };
    if head == "**" {
        remove(v, rest, condition, vars)?;
        match v {
            Value::Object(m) => {
                for child in m.values_mut() {
                    remove(child, pointer, condition, vars)?;
                }
            }
            Value::Array(a) => {
                for child in a.iter_mut() {
                    remove(child, pointer, condition, vars)?;
                }
            }
            _ => {}
        }
        return Ok(());
    }
    let Value::Object(m) = v else { return Ok(()) };
    if rest.is_empty() && condition.is_none() && head != "*" {
        m.remove(head);
        return Ok(());
    }
    let keys: Vec<String> = if head == "*" {
        m.keys().cloned().collect()
    } else if m.contains_key(head) {
        vec![head.clone()]
    } else {
        Vec::new()
    };
    for k in keys {
        if rest.is_empty() {
            let remove_it = match condition {
                None => true,
                Some(c) => {
                    let property = m.get(&k).cloned().unwrap_or(Value::Null);
                    c.eval_bool(&vars.clone().with("property", to_mj(&property)))?
                }
            };
            if remove_it {
                m.remove(&k);
            }
        } else if let Some(child) = m.get_mut(&k) {
            remove(child, rest, condition, vars)?;
        }
    }
    Ok(())
}
