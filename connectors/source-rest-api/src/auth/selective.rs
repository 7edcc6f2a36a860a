//! `SelectiveAuthenticator`: one of several authenticators, chosen by the config value at
//! `authenticator_selection_path` (its text is the key in `authenticators`). Every listed
//! authenticator is decoded, as in Airbyte, so a broken one is reported even when not chosen.

use std::sync::Arc;

use cdk::Result;
use serde_json::Value;

use super::Authenticator;
use crate::interpolation::literal::py_str;
use crate::interpolation::to_mj;
use crate::manifest::{Build, Component, Node};

pub fn decode(c: &mut Component<'_>, b: &Build) -> Result<Arc<dyn Authenticator>> {
    let path = c
        .string_list("authenticator_selection_path")?
        .ok_or_else(|| c.error("the field 'authenticator_selection_path' is required"))?;
    let node = c.required_child("authenticators")?;
    let Value::Object(entries) = node.value else {
        return Err(c.error(format!(
            "'authenticators' must map names to authenticators, got {}",
            node.value
        )));
    };
    let mut decoded = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        let child = Node {
            value,
            path: format!("{}/{name}", node.path),
            params: node.params.clone(),
        };
        decoded.push((name.clone(), super::decode(child, b)?));
    }
    let selected = {
        let config = b.config.lock().unwrap_or_else(|p| p.into_inner());
        let value = path.iter().try_fold(&*config, |v, k| match v {
            Value::Object(m) => m.get(k),
            Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        });
        match value {
            None => {
                return Err(c.error(format!(
                    "the config has no value at authenticator_selection_path {path:?}"
                )));
            }
            Some(v) => {
                let mut text = String::new();
                py_str(&to_mj(v), &mut text);
                text
            }
        }
    };
    decoded
        .into_iter()
        .find(|(name, _)| *name == selected)
        .map(|(_, auth)| auth)
        .ok_or_else(|| {
            c.error(format!(
                "the authenticator '{selected}' (from the config at {path:?}) is not among 'authenticators' ({})",
                entries.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
}
