//! Binding parameter values to a template's declarations (§3): defaults, types, ranges,
//! enumerations, and errors that name the parameter.

use std::collections::BTreeMap;

use yaml_serde::Value;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::params::{ParamDecl, ParamType, ParamValue};
use crate::model::series::parse_ref;

/// A value as a caller supplied it: command-line text, or a typed YAML/JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Supplied {
    Text(String),
    Yaml(Value),
}

/// Resolves every declared parameter to a value: supplied, else default. Unknown names, missing
/// values and wrong or out-of-range values are errors naming the parameter.
pub fn bind(
    decls: &[ParamDecl],
    supplied: &BTreeMap<String, Supplied>,
) -> Result<BTreeMap<String, ParamValue>, Diagnostics> {
    let mut diags = Vec::new();
    let declared: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    for name in supplied.keys() {
        if !declared.contains(&name.as_str()) {
            let help = match crate::model::doc::closest(name, &declared) {
                _ if declared.is_empty() => "this template declares no parameters".to_string(),
                Some(n) => format!("did you mean `{n}`? declared parameters: {}", declared.join(", ")),
                None => format!("declared parameters: {}", declared.join(", ")),
            };
            diags.push(
                Diagnostic::error("unknown_parameter", format!("value given for unknown parameter `{name}`"))
                    .at_path(format!("parameters.{name}"))
                    .with_help(help),
            );
        }
    }
    let mut out = BTreeMap::new();
    for d in decls {
        let path = format!("parameters.{}", d.name);
        let value = match supplied.get(&d.name) {
            Some(s) => {
                let v = match s {
                    Supplied::Text(t) => d.value_from_text(t),
                    Supplied::Yaml(v) => d.value_from_yaml(v),
                };
                match v {
                    Ok(v) => v,
                    Err(e) => {
                        diags.push(
                            Diagnostic::error(
                                "parameter_type",
                                format!("parameter `{}` ({}): {e}", d.name, d.ty.name()),
                            )
                            .at_path(path)
                            .with_help(type_help(d)),
                        );
                        continue;
                    }
                }
            }
            None => match &d.default {
                Some(v) => v.clone(),
                None => {
                    diags.push(
                        Diagnostic::error(
                            "parameter_missing",
                            format!("parameter `{}` has no value and no default", d.name),
                        )
                        .at_path(path)
                        .with_help(format!("pass it, e.g. `-p {}=<{}>`", d.name, d.ty.name())),
                    );
                    continue;
                }
            },
        };
        if let Err(e) = d.check(&value) {
            diags.push(
                Diagnostic::error("parameter_range", format!("parameter `{}`: {e}", d.name))
                    .at_path(path)
                    .with_help(type_help(d)),
            );
            continue;
        }
        if let ParamValue::Series(r) = &value
            && let Err(e) = parse_ref(r)
        {
            diags.push(Diagnostic::error("parameter_type", format!("parameter `{}`: {e}", d.name)).at_path(path));
            continue;
        }
        out.insert(d.name.clone(), value);
    }
    if diags.is_empty() { Ok(out) } else { Err(Diagnostics(diags)) }
}

fn type_help(d: &ParamDecl) -> String {
    let mut s = match d.ty {
        ParamType::Number => "a number".to_string(),
        ParamType::Integer => "a whole number".to_string(),
        ParamType::Boolean => "true or false".to_string(),
        ParamType::String => "text".to_string(),
        ParamType::Enum => format!("one of {}", d.values.join(", ")),
        ParamType::Series => "a series reference: file:path.csv, series:name or a node id".to_string(),
    };
    match (d.min, d.max) {
        (Some(lo), Some(hi)) => s.push_str(&format!(" between {lo} and {hi}")),
        (Some(lo), None) => s.push_str(&format!(" ≥ {lo}")),
        (None, Some(hi)) => s.push_str(&format!(" ≤ {hi}")),
        _ => {}
    }
    format!("`{}` takes {s}", d.name)
}
