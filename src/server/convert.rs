//! Hand-written conversions between proto messages and domain types: proto types never leave
//! `server/`.

use std::collections::BTreeMap;

use tonic::Status;

use crate::engine::Accounting;
use crate::engine::warnings::Warning;
use crate::host::{SessionInfo, Target, VariantInfo};
use crate::model::grid::Grid;
use crate::model::params::{ParamDecl, ParamValue};
use crate::model::template::Supplied;
use crate::server::pb;
use crate::server::status::invalid_field;

pub(crate) fn grid(g: &Grid) -> pb::Grid {
    pb::Grid {
        bins: g.bins,
        bin_size: g.bin_size,
        bin_unit: g.bin_unit.name().to_string(),
        bin_minutes: g.bin_minutes(),
        start: g.start_utc().unwrap_or_default(),
    }
}

pub(crate) fn param(v: &ParamValue) -> pb::ParamValue {
    use pb::param_value::Kind;
    let kind = match v {
        ParamValue::Number(x) => Kind::Number(*x),
        ParamValue::Integer(x) => Kind::Integer(*x),
        ParamValue::Boolean(b) => Kind::Boolean(*b),
        ParamValue::Text(s) => Kind::Text(s.clone()),
        ParamValue::Series(s) => Kind::Series(s.clone()),
    };
    pb::ParamValue { kind: Some(kind) }
}

/// Stored provenance (a JSON object) as the wire's key → text map: text stays text, any other
/// value becomes its JSON text, and a provenance that is not an object is kept under `value`.
pub(crate) fn provenance(v: &serde_json::Value) -> std::collections::HashMap<String, String> {
    let text = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        serde_json::Value::Object(m) => m.iter().map(|(k, x)| (k.clone(), text(x))).collect(),
        serde_json::Value::Null => std::collections::HashMap::new(),
        other => std::collections::HashMap::from([("value".to_string(), text(other))]),
    }
}

/// The wire's provenance map as the JSON object the store keeps (keys sorted).
pub(crate) fn provenance_json(m: &std::collections::HashMap<String, String>) -> serde_json::Value {
    let sorted: BTreeMap<&String, &String> = m.iter().collect();
    serde_json::json!(sorted)
}

pub(crate) fn params(values: &BTreeMap<String, ParamValue>) -> std::collections::HashMap<String, pb::ParamValue> {
    values.iter().map(|(k, v)| (k.clone(), param(v))).collect()
}

/// A supplied value: its declared type decides how it is read (an integer may come as a number).
pub(crate) fn supplied(field: &str, v: &pb::ParamValue) -> Result<Supplied, Status> {
    use pb::param_value::Kind;
    use yaml_serde::Value;
    let value = match &v.kind {
        Some(Kind::Number(x)) => Value::Number((*x).into()),
        Some(Kind::Integer(x)) => Value::Number((*x).into()),
        Some(Kind::Boolean(b)) => Value::Bool(*b),
        // Text is read by the parameter's declared type, like `-p name=value` on the command line.
        Some(Kind::Text(s)) | Some(Kind::Series(s)) => return Ok(Supplied::Text(s.clone())),
        None => {
            return Err(invalid_field(field, "a parameter value needs one of number, integer, boolean, text, series"));
        }
    };
    Ok(Supplied::Yaml(value))
}

pub(crate) fn supplied_map(
    field: &str,
    m: &std::collections::HashMap<String, pb::ParamValue>,
) -> Result<BTreeMap<String, Supplied>, Status> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        out.insert(k.clone(), supplied(&format!("{field}[{k}]"), v)?);
    }
    Ok(out)
}

/// Series bindings of a request, checked for shape; CSV text is read against a grid later
/// ([`Bindings::resolve`]), once the grid of what they bind into is known.
pub(crate) struct Bindings(Vec<(String, Binding)>);

enum Binding {
    Values(Vec<f64>),
    Csv { text: String, source: String },
}

impl Bindings {
    /// Whether any binding is CSV text (and so needs the grid).
    pub(crate) fn needs_grid(&self) -> bool {
        self.0.iter().any(|(_, b)| matches!(b, Binding::Csv { .. }))
    }

    /// Target → values, reading CSV text against `grid` (required when [`Bindings::needs_grid`]).
    pub(crate) fn resolve(self, grid: Option<&Grid>) -> Result<BTreeMap<String, Vec<f64>>, crate::host::HostError> {
        let mut out = BTreeMap::new();
        for (target, b) in self.0 {
            let values = match (b, grid) {
                (Binding::Values(v), _) => v,
                (Binding::Csv { text, source }, Some(g)) => {
                    crate::model::series::parse_series_csv(text.as_bytes(), g, &source)?.values
                }
                (Binding::Csv { .. }, None) => {
                    return Err(crate::host::HostError::FailedPrecondition(format!(
                        "the grid `{target}` binds into is unknown"
                    )));
                }
            };
            out.insert(target, values);
        }
        Ok(out)
    }
}

pub(crate) fn bindings(field: &str, b: &[pb::SeriesBinding]) -> Result<Bindings, Status> {
    let mut out: Vec<(String, Binding)> = Vec::new();
    for (i, s) in b.iter().enumerate() {
        if s.target.is_empty() {
            return Err(invalid_field(&format!("{field}[{i}].target"), "name a const node or a series parameter"));
        }
        if out.iter().any(|(t, _)| t == &s.target) {
            return Err(invalid_field(&format!("{field}[{i}].target"), format!("`{}` is bound twice", s.target)));
        }
        let binding = match (s.values.is_empty(), s.csv.is_empty()) {
            (false, false) => {
                return Err(invalid_field(&format!("{field}[{i}]"), "give `values` or `csv`, not both"));
            }
            (_, true) => Binding::Values(s.values.clone()),
            (true, false) => Binding::Csv {
                text: s.csv.clone(),
                source: if s.source.is_empty() { format!("{field}[{i}].csv") } else { s.source.clone() },
            },
        };
        out.push((s.target.clone(), binding));
    }
    Ok(Bindings(out))
}

pub(crate) fn decl(d: &ParamDecl) -> pb::ParamDecl {
    pb::ParamDecl {
        name: d.name.clone(),
        r#type: d.ty.name().to_string(),
        default_value: d.default.as_ref().map(param),
        min: d.min,
        max: d.max,
        values: d.values.clone(),
        description: d.description.clone().unwrap_or_default(),
    }
}

pub(crate) fn accounting(a: &Accounting) -> pb::Accounting {
    pb::Accounting {
        nodes_total: a.nodes_total,
        nodes_evaluated: a.nodes_evaluated,
        nodes_reused: a.nodes_reused,
        nodes_loaded: a.nodes_loaded,
        elapsed_us: a.elapsed_us,
    }
}

pub(crate) fn warning(w: &Warning) -> pb::Warning {
    pb::Warning {
        code: w.code.clone(),
        severity: w.severity.to_string(),
        node_id: w.node_id.clone(),
        message: w.message.clone(),
        bins: w.bins.clone(),
        value: w.value,
    }
}

pub(crate) fn session(s: &SessionInfo, g: Option<&Grid>) -> pb::Session {
    pb::Session {
        id: s.id.clone(),
        template_id: s.template_id.clone(),
        template_version: s.template_version.clone(),
        parameters: params(&s.params),
        inputs: s.inputs.clone(),
        series_bindings: s.overrides.clone(),
        tenant: s.tenant.clone().unwrap_or_default(),
        revision: s.revision,
        variants: s.variants.clone(),
        created_utc: s.created_utc.clone(),
        grid: g.map(grid),
        bound_to_stored: Vec::new(),
    }
}

pub(crate) fn variant(v: &VariantInfo) -> pb::Variant {
    pb::Variant {
        session_id: v.session.clone(),
        name: v.name.clone(),
        parameters: params(&v.params),
        series_bindings: v.series.clone(),
        revision: v.revision,
        created_utc: v.created_utc.clone(),
    }
}

/// The longest session, variant, series or template name a request may carry.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// A name a request stores (series, session, variant): at most [`MAX_NAME_BYTES`].
pub(crate) fn check_name(field: &str, v: &str) -> Result<(), Status> {
    if v.len() > MAX_NAME_BYTES {
        return Err(invalid_field(
            field,
            format!("`{v}` is {} bytes long; names have at most {MAX_NAME_BYTES}", v.len()),
        ));
    }
    Ok(())
}

pub(crate) fn target(field: &str, t: Option<&pb::Target>) -> Result<Target, Status> {
    let Some(t) = t else { return Err(invalid_field(field, "a target {session, variant?} is required")) };
    if t.session.is_empty() {
        return Err(invalid_field(&format!("{field}.session"), "a session id is required"));
    }
    check_name(&format!("{field}.session"), &t.session)?;
    check_name(&format!("{field}.variant"), &t.variant)?;
    let target = Target { session: t.session.clone(), variant: (!t.variant.is_empty()).then(|| t.variant.clone()) };
    crate::server::edge::Call::note_target(&target.to_string());
    Ok(target)
}

pub(crate) fn inference(v: &serde_json::Value) -> pb::Inference {
    pb::Inference {
        method: v["method"].as_str().unwrap_or("saturation").to_string(),
        confidence: v["confidence"].as_f64().unwrap_or(f64::NAN),
        saturated_bins: v["saturated_bins"].as_u64().unwrap_or(0),
        refused: v["refused"].as_str().unwrap_or_default().to_string(),
    }
}
