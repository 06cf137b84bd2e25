//! The typed model document (§2, §6, §7, §8 `outputs`) and its reader from the YAML tree.
//!
//! Reading resolves *structural* placeholders (ids, references, grid, lags, weights: everything
//! that shapes the graph) through a parameter lookup, and keeps *evaluable* ones (expression
//! operands, `initial`, const values, queue initial conditions, WIP limits) as [`Num::Param`]
//! slots. The engine reads those parameter values during evaluation, so changing such a parameter
//! re-evaluates only the units that read it (§9).

use std::collections::{BTreeMap, BTreeSet};

use yaml_serde::{Mapping, Value};

use crate::diag::{Diagnostic, Diagnostics};
use crate::expr::ast::{Expr, ExprKind, Lit, LitValue};
use crate::expr::parser::{self, ExprError, Mode, check_int};
use crate::model::grid::{BinUnit, Grid};
use crate::model::params::{ParamDecl, ParamType, ParamValue, Piece, split_placeholders, whole_placeholder, yaml_kind};
use crate::model::series::{SeriesRef, is_valid_id, parse_ref};
use crate::model::yaml::{Pos, YPath, YamlDoc};

/// A number that is either written in the document or read from a parameter at evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Num {
    Lit(f64),
    Param(String),
}

/// Where something is in the document: the human YAML path and, when known, line and column.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Loc {
    pub path: String,
    pub pos: Option<Pos>,
}

impl Loc {
    pub fn diag(&self, code: &str, message: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::error(code, message).at_path(&self.path);
        if let Some(p) = self.pos {
            d = d.at_line(p.line, p.column);
        }
        d
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Meta {
    pub id: Option<String>,
    pub version: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub template_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub meta: Meta,
    pub parameters: Vec<ParamDecl>,
    pub grid: Grid,
    pub nodes: Vec<NodeSpec>,
    pub topology: Topology,
    pub outputs: Vec<OutputSpec>,
    pub validation: Vec<CheckSpec>,
    pub provenance: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub id: String,
    pub loc: Loc,
    pub def: NodeDef,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeDef {
    Values(Vec<Num>),
    Source { source: SeriesRef, loc: Loc },
    Expr { text: String, expr: Expr, initial: Option<Num>, loc: Loc },
    Pmf { values: Vec<f64>, probabilities: Vec<f64> },
    Router { source: SeriesRef, source_loc: Loc, routes: Vec<Route> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub target: String,
    pub weight: f64,
    pub loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopoKind {
    Queue,
    ServiceWithBuffer,
    Dlq,
    Service,
    Router,
    Sink,
    External,
    Dependency,
}

impl TopoKind {
    fn parse(s: &str) -> Option<TopoKind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "queue" => TopoKind::Queue,
            "servicewithbuffer" => TopoKind::ServiceWithBuffer,
            "dlq" => TopoKind::Dlq,
            "service" => TopoKind::Service,
            "router" => TopoKind::Router,
            "sink" => TopoKind::Sink,
            "external" => TopoKind::External,
            "dependency" => TopoKind::Dependency,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TopoKind::Queue => "queue",
            TopoKind::ServiceWithBuffer => "serviceWithBuffer",
            TopoKind::Dlq => "dlq",
            TopoKind::Service => "service",
            TopoKind::Router => "router",
            TopoKind::Sink => "sink",
            TopoKind::External => "external",
            TopoKind::Dependency => "dependency",
        }
    }

    pub fn is_queue(self) -> bool {
        matches!(self, TopoKind::Queue | TopoKind::ServiceWithBuffer | TopoKind::Dlq)
    }

    pub fn computes(self) -> bool {
        self.is_queue() || self == TopoKind::Service
    }
}

/// Semantic roles a topology node maps to series (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Arrivals,
    Served,
    Errors,
    ExternalDemand,
    QueueDepth,
    Capacity,
    Attempts,
    Failures,
    RetryEcho,
    ProcessingTimeMsSum,
    ServedCount,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Arrivals,
        Role::Served,
        Role::Errors,
        Role::ExternalDemand,
        Role::QueueDepth,
        Role::Capacity,
        Role::Attempts,
        Role::Failures,
        Role::RetryEcho,
        Role::ProcessingTimeMsSum,
        Role::ServedCount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Arrivals => "arrivals",
            Role::Served => "served",
            Role::Errors => "errors",
            Role::ExternalDemand => "externalDemand",
            Role::QueueDepth => "queueDepth",
            Role::Capacity => "capacity",
            Role::Attempts => "attempts",
            Role::Failures => "failures",
            Role::RetryEcho => "retryEcho",
            Role::ProcessingTimeMsSum => "processingTimeMsSum",
            Role::ServedCount => "servedCount",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// A number or a series reference (topology `parallelism`).
#[derive(Clone, Debug, PartialEq)]
pub enum NumOrRef {
    Num(f64),
    Ref(SeriesRef),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Semantics {
    pub roles: BTreeMap<Role, SeriesRef>,
    pub retry_kernel: Option<Vec<f64>>,
    pub sla_min: Option<f64>,
    pub parallelism: Option<NumOrRef>,
    /// The semantics as written (after substitution), for topology.json.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    pub period: u32,
    pub phase: i64,
    pub capacity: Option<SeriesRef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TopoNode {
    pub id: String,
    pub loc: Loc,
    pub kind: TopoKind,
    pub group: Option<String>,
    pub ui: Option<serde_json::Value>,
    pub semantics: Semantics,
    pub initial_queue: Option<Num>,
    pub wip_limit: Option<Num>,
    pub wip_limit_series: Option<SeriesRef>,
    pub wip_overflow: Option<String>,
    pub dispatch: Option<Dispatch>,
    pub constraints: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub weight: f64,
    pub multiplier: f64,
    pub lag: u32,
    pub ty: Option<String>,
    pub measure: Option<String>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintSpec {
    pub id: String,
    pub served: Option<SeriesRef>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Topology {
    pub nodes: Vec<TopoNode>,
    pub edges: Vec<Edge>,
    pub constraints: Vec<ConstraintSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSpec {
    pub series: String,
    pub file_name: Option<String>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    Conservation { node: String, tolerance: f64 },
    Expr { text: String, expr: Expr, message: Option<String>, expr_loc: Loc },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckSpec {
    pub id: String,
    pub kind: CheckKind,
    pub info: bool,
    pub loc: Loc,
}

/// Supplies parameter values for structural placeholders.
pub trait ParamLookup {
    fn value(&self, name: &str) -> Option<ParamValue>;
}

impl ParamLookup for BTreeMap<String, ParamValue> {
    fn value(&self, name: &str) -> Option<ParamValue> {
        self.get(name).cloned()
    }
}

/// Reads only the parameter declarations (no substitution).
pub fn read_parameters(doc: &YamlDoc) -> Result<Vec<ParamDecl>, Diagnostics> {
    let Some(root) = doc.value.as_mapping() else {
        return Err(
            Diagnostic::error("yaml_shape", "the document must be a map of keys such as `grid` and `nodes`").into()
        );
    };
    let mut r = Reader { doc, diags: Vec::new(), decls: BTreeMap::new(), lookup: &NoParams };
    let decls = r.parameters(root);
    if r.diags.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics(r.diags));
    }
    Ok(decls)
}

struct NoParams;
impl ParamLookup for NoParams {
    fn value(&self, _: &str) -> Option<ParamValue> {
        None
    }
}

/// Reads the whole document, resolving structural placeholders through `lookup`.
pub fn read_document(doc: &YamlDoc, lookup: &dyn ParamLookup) -> Result<Document, Diagnostics> {
    let Some(root) = doc.value.as_mapping() else {
        return Err(Diagnostic::error(
            "yaml_shape",
            format!("the document must be a map of keys such as `grid` and `nodes`, found {}", yaml_kind(&doc.value)),
        )
        .into());
    };
    let mut r = Reader { doc, diags: Vec::new(), decls: BTreeMap::new(), lookup };
    let document = r.document(root);
    if r.diags.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics(r.diags));
    }
    document.ok_or(Diagnostics(r.diags))
}

const ROOT_KEYS: &[&str] = &[
    "schemaVersion",
    "id",
    "version",
    "title",
    "description",
    "templateType",
    "parameters",
    "grid",
    "nodes",
    "expressions",
    "topology",
    "outputs",
    "validation",
    "provenance",
    "classes",
    "traffic",
];

struct Reader<'a> {
    doc: &'a YamlDoc,
    diags: Vec<Diagnostic>,
    decls: BTreeMap<String, ParamDecl>,
    lookup: &'a dyn ParamLookup,
}

/// A map being read: remembers which keys were consumed so unknown ones can be reported.
struct Obj<'v> {
    map: &'v Mapping,
    path: YPath,
    label: String,
}

impl<'v> Obj<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key)
    }

    fn field_label(&self, key: &str) -> String {
        if self.label.is_empty() { key.to_string() } else { format!("{}.{key}", self.label) }
    }
}

impl<'a> Reader<'a> {
    fn loc(&self, path: &YPath, label: &str) -> Loc {
        Loc { path: label.to_string(), pos: self.doc.locator.value(path) }
    }

    fn err(&mut self, path: &YPath, label: &str, code: &str, msg: impl Into<String>, help: Option<&str>) {
        let mut d = self.loc(path, label).diag(code, msg);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.diags.push(d);
    }

    fn obj<'v>(&mut self, v: &'v Value, path: YPath, label: String, what: &str) -> Option<Obj<'v>> {
        match v.as_mapping() {
            Some(map) => Some(Obj { map, path, label }),
            None => {
                self.err(&path, &label, "yaml_shape", format!("{what} must be a map, found {}", yaml_kind(v)), None);
                None
            }
        }
    }

    /// Reports keys outside `allowed`, and non-string keys.
    fn check_keys(&mut self, obj: &Obj<'_>, allowed: &[&str]) {
        for k in obj.map.keys() {
            match k.as_str() {
                Some(s) if allowed.contains(&s) => {}
                Some(s) => {
                    let path = obj.path.key(s);
                    let near = closest(s, allowed);
                    let help = match near {
                        Some(n) => format!("did you mean `{n}`? allowed keys: {}", allowed.join(", ")),
                        None => format!("allowed keys: {}", allowed.join(", ")),
                    };
                    let d = Diagnostic::error("unknown_key", format!("unknown key `{s}`"))
                        .at_path(obj.field_label(s))
                        .with_help(help);
                    let d = match self.doc.locator.key(&path) {
                        Some(p) => d.at_line(p.line, p.column),
                        None => d,
                    };
                    self.diags.push(d);
                }
                None => self.err(
                    &obj.path,
                    &obj.label,
                    "unknown_key",
                    format!("keys must be strings, found {}", yaml_kind(k)),
                    None,
                ),
            }
        }
    }

    /// One of two alias keys; both present is an error.
    fn aliased<'v>(&mut self, obj: &Obj<'v>, a: &str, b: &str) -> Option<(&'v Value, String)> {
        match (obj.get(a), obj.get(b)) {
            (Some(_), Some(_)) => {
                self.err(
                    &obj.path.key(b),
                    &obj.field_label(b),
                    "duplicate_key",
                    format!("both `{a}` and its alias `{b}` are given"),
                    Some("keep one of them"),
                );
                None
            }
            (Some(v), None) => Some((v, a.to_string())),
            (None, Some(v)) => Some((v, b.to_string())),
            (None, None) => None,
        }
    }

    /// Resolves structural placeholders in a scalar. `Err(())` means a diagnostic was recorded.
    fn resolve(&mut self, v: &Value, path: &YPath, label: &str) -> Result<(Value, Option<String>), ()> {
        let Value::String(s) = v else { return Ok((v.clone(), None)) };
        if !s.contains("{{") {
            return Ok((v.clone(), None));
        }
        if let Some(name) = whole_placeholder(s) {
            let pv = self.param_value(name, path, label)?;
            return Ok((pv.to_yaml(), Some(name.to_string())));
        }
        let pieces = match split_placeholders(s) {
            Ok(p) => p,
            Err(e) => {
                self.err(path, label, "placeholder", e, None);
                return Err(());
            }
        };
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Param(name) => out.push_str(&self.param_value(name, path, label)?.to_string()),
            }
        }
        Ok((Value::String(out), None))
    }

    fn param_value(&mut self, name: &str, path: &YPath, label: &str) -> Result<ParamValue, ()> {
        if !self.decls.contains_key(name) {
            let known: Vec<&str> = self.decls.keys().map(String::as_str).collect();
            let help = if known.is_empty() {
                "declare it under `parameters:`".to_string()
            } else {
                format!("declared parameters: {}", known.join(", "))
            };
            self.err(
                path,
                label,
                "unknown_placeholder",
                format!("unknown placeholder `{{{{{name}}}}}`: no parameter `{name}` is declared"),
                Some(&help),
            );
            return Err(());
        }
        match self.lookup.value(name) {
            Some(v) => Ok(v),
            None => {
                self.err(
                    path,
                    label,
                    "parameter_missing",
                    format!("parameter `{name}` has no value and no default"),
                    Some("pass a value, e.g. `-p name=value`, or give it a default"),
                );
                Err(())
            }
        }
    }

    fn string(&mut self, obj: &Obj<'_>, key: &str) -> Option<String> {
        let v = obj.get(key)?;
        let path = obj.path.key(key);
        let label = obj.field_label(key);
        let (v, from) = self.resolve(v, &path, &label).ok()?;
        match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.type_err(&path, &label, "a string", &other, from.as_deref());
                None
            }
        }
    }

    fn type_err(&mut self, path: &YPath, label: &str, want: &str, got: &Value, from_param: Option<&str>) {
        let msg = match from_param {
            Some(p) => format!("parameter `{p}` gives {}, but `{label}` expects {want}", yaml_kind(got)),
            None => format!("expected {want}, found {}", yaml_kind(got)),
        };
        self.err(path, label, "type", msg, None);
    }

    /// A structural number.
    fn number(&mut self, obj: &Obj<'_>, key: &str) -> Option<f64> {
        let v = obj.get(key)?;
        let path = obj.path.key(key);
        let label = obj.field_label(key);
        self.number_value(v, &path, &label)
    }

    fn number_value(&mut self, v: &Value, path: &YPath, label: &str) -> Option<f64> {
        let (v, from) = self.resolve(v, path, label).ok()?;
        match v.as_f64() {
            Some(x) => Some(x),
            None => {
                self.type_err(path, label, "a number", &v, from.as_deref());
                None
            }
        }
    }

    fn integer(&mut self, obj: &Obj<'_>, key: &str) -> Option<i64> {
        let v = obj.get(key)?;
        let path = obj.path.key(key);
        let label = obj.field_label(key);
        let x = self.number_value(v, &path, &label)?;
        if x.fract() != 0.0 || !x.is_finite() || x.abs() > 9.0e15 {
            self.err(&path, &label, "type", format!("expected a whole number, found {x}"), None);
            return None;
        }
        Some(x as i64)
    }

    /// An evaluable number: a literal or a whole-scalar placeholder of a numeric parameter.
    fn num(&mut self, v: &Value, path: &YPath, label: &str) -> Option<Num> {
        if let Value::String(s) = v
            && let Some(name) = whole_placeholder(s)
        {
            return self.numeric_param(name, path, label).then(|| Num::Param(name.to_string()));
        }
        match v.as_f64() {
            Some(x) => Some(Num::Lit(x)),
            None => {
                let want = "a number or a `{{parameter}}`";
                self.type_err(path, label, want, v, None);
                None
            }
        }
    }

    fn numeric_param(&mut self, name: &str, path: &YPath, label: &str) -> bool {
        match self.decls.get(name) {
            None => {
                let _ = self.param_value(name, path, label);
                false
            }
            Some(d) if !d.ty.is_numeric() => {
                let ty = d.ty.with_article();
                self.err(
                    path,
                    label,
                    "type",
                    format!("parameter `{name}` is {ty}, but `{label}` expects a number"),
                    Some("only number and integer parameters can stand for numbers"),
                );
                false
            }
            Some(_) => true,
        }
    }

    fn series_ref(&mut self, obj: &Obj<'_>, key: &str) -> Option<(SeriesRef, Loc)> {
        let s = self.string(obj, key)?;
        let path = obj.path.key(key);
        let label = obj.field_label(key);
        match parse_ref(&s) {
            Ok(r) => Some((r, self.loc(&path, &label))),
            Err(e) => {
                self.err(&path, &label, "bad_reference", e, None);
                None
            }
        }
    }

    fn seq<'v>(&mut self, v: &'v Value, path: &YPath, label: &str) -> Option<&'v Vec<Value>> {
        match v.as_sequence() {
            Some(s) => Some(s),
            None => {
                self.type_err(path, label, "a list", v, None);
                None
            }
        }
    }

    fn document(&mut self, root: &Mapping) -> Option<Document> {
        let obj = Obj { map: root, path: YPath::default(), label: String::new() };
        self.check_keys(&obj, ROOT_KEYS);
        for key in ["classes", "traffic"] {
            if obj.get(key).is_some() {
                self.err(
                    &obj.path.key(key),
                    key,
                    "unsupported",
                    format!("`{key}`: per-class decomposition is not supported yet"),
                    Some("remove `classes`/`traffic` and model the aggregate flow"),
                );
            }
        }
        if let Some(v) = obj.get("schemaVersion")
            && v.as_i64() != Some(1)
        {
            self.err(
                &obj.path.key("schemaVersion"),
                "schemaVersion",
                "schema_version",
                format!("unsupported schemaVersion {}; only 1 is supported", render_scalar(v)),
                None,
            );
        }
        let parameters = self.parameters(root);
        let meta = self.meta(&obj);
        let grid = self.grid(&obj);
        let nodes = self.nodes(&obj);
        let topology = match obj.get("topology") {
            Some(v) => self.topology(v),
            None => Topology::default(),
        };
        let outputs = self.outputs(&obj);
        let validation = self.validation(&obj);
        let provenance = obj.get("provenance").and_then(|v| match v {
            Value::Mapping(_) => serde_json::to_value(v).ok(),
            other => {
                self.type_err(&YPath::default().key("provenance"), "provenance", "a map", other, None);
                None
            }
        });
        Some(Document { meta, parameters, grid: grid?, nodes: nodes?, topology, outputs, validation, provenance })
    }

    fn meta(&mut self, obj: &Obj<'_>) -> Meta {
        let id = self.string(obj, "id");
        if let Some(id) = &id
            && !valid_doc_id(id)
        {
            self.err(
                &obj.path.key("id"),
                "id",
                "bad_id",
                format!("document id `{id}` must match ^[a-z0-9][a-z0-9_-]*$"),
                Some("use lowercase letters, digits, `_` and `-`, e.g. `order-system`"),
            );
        }
        let version = match obj.get("version") {
            Some(Value::String(_)) => self.string(obj, "version"),
            Some(other) => {
                self.err(
                    &obj.path.key("version"),
                    "version",
                    "type",
                    format!("version must be a string, found {}", yaml_kind(other)),
                    Some("quote it, e.g. version: \"1.0.0\""),
                );
                None
            }
            None => None,
        };
        Meta {
            id,
            version,
            title: self.string(obj, "title"),
            description: self.string(obj, "description"),
            template_type: self.string(obj, "templateType"),
        }
    }

    fn parameters(&mut self, root: &Mapping) -> Vec<ParamDecl> {
        let Some(v) = root.get("parameters") else { return Vec::new() };
        let path = YPath::default().key("parameters");
        let Some(items) = self.seq(v, &path, "parameters") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = path.index(i);
            let Some(o) = self.obj(item, ipath.clone(), format!("parameters[{i}]"), "a parameter") else { continue };
            self.check_keys(&o, &["name", "type", "default", "min", "max", "values", "description"]);
            let Some(name) = o.get("name").and_then(Value::as_str).map(str::to_string) else {
                self.err(&ipath, &o.label, "missing_key", "a parameter needs a `name`", None);
                continue;
            };
            let label = format!("parameters[{i}] (name {name})");
            let o = Obj { label: label.clone(), ..o };
            if !is_valid_id(&name) {
                self.err(
                    &ipath.key("name"),
                    &o.field_label("name"),
                    "bad_id",
                    format!("parameter name `{name}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                    None,
                );
            }
            let ty = match o.get("type").and_then(Value::as_str) {
                Some(t) => match ParamType::parse(t) {
                    Some(ty) => ty,
                    None => {
                        self.err(
                            &ipath.key("type"),
                            &o.field_label("type"),
                            "bad_type",
                            format!("unknown parameter type `{t}`"),
                            Some("use number, integer, boolean, string, enum or series"),
                        );
                        continue;
                    }
                },
                None => {
                    self.err(
                        &ipath,
                        &label,
                        "missing_key",
                        format!("parameter `{name}` needs a `type`"),
                        Some("use number, integer, boolean, string, enum or series"),
                    );
                    continue;
                }
            };
            let bound = |r: &mut Reader<'_>, key: &str| {
                o.get(key).and_then(|v| match v.as_f64() {
                    Some(x) => Some(x),
                    None => {
                        r.type_err(&ipath.key(key), &o.field_label(key), "a number", v, None);
                        None
                    }
                })
            };
            let min = bound(self, "min");
            let max = bound(self, "max");
            let values = match o.get("values") {
                Some(v) => match v.as_sequence() {
                    Some(vs) => vs.iter().map(render_scalar).collect(),
                    None => {
                        self.type_err(&ipath.key("values"), &o.field_label("values"), "a list", v, None);
                        Vec::new()
                    }
                },
                None => Vec::new(),
            };
            if ty == ParamType::Enum && values.is_empty() {
                self.err(&ipath, &label, "missing_key", format!("enum parameter `{name}` needs `values`"), None);
            }
            let mut decl = ParamDecl {
                name: name.clone(),
                ty,
                default: None,
                min,
                max,
                values,
                description: o.get("description").and_then(Value::as_str).map(str::to_string),
            };
            if let Some(dv) = o.get("default") {
                match decl.value_from_yaml(dv).and_then(|v| decl.check(&v).map(|_| v)) {
                    Ok(v) => decl.default = Some(v),
                    Err(e) => self.err(
                        &ipath.key("default"),
                        &o.field_label("default"),
                        "bad_default",
                        format!("default of parameter `{name}`: {e}"),
                        None,
                    ),
                }
            }
            if self.decls.insert(name.clone(), decl.clone()).is_some() {
                self.err(&ipath, &label, "duplicate_id", format!("parameter `{name}` is declared twice"), None);
                continue;
            }
            out.push(decl);
        }
        out
    }

    fn grid(&mut self, root: &Obj<'_>) -> Option<Grid> {
        let Some(v) = root.get("grid") else {
            self.err(
                &YPath::default(),
                "grid",
                "missing_key",
                "the document needs a `grid`",
                Some("e.g. grid: {bins: 288, binSize: 5, binUnit: minutes}"),
            );
            return None;
        };
        let g = self.obj(v, YPath::default().key("grid"), "grid".into(), "grid")?;
        self.check_keys(&g, &["bins", "binSize", "binUnit", "start", "startTimeUtc"]);
        let bins = self.integer(&g, "bins");
        let size = self.integer(&g, "binSize");
        let unit = self.string(&g, "binUnit");
        for (key, val) in [("bins", bins.is_some()), ("binSize", size.is_some()), ("binUnit", unit.is_some())] {
            if !val && g.get(key).is_none() {
                self.err(&g.path, "grid", "missing_key", format!("grid needs `{key}`"), None);
            }
        }
        let unit = match unit {
            Some(u) => match BinUnit::parse(&u) {
                Some(u) => Some(u),
                None => {
                    self.err(
                        &g.path.key("binUnit"),
                        "grid.binUnit",
                        "bad_value",
                        format!("unknown binUnit `{u}`"),
                        Some("use minutes, hours, days or weeks"),
                    );
                    None
                }
            },
            None => None,
        };
        let start = match self.aliased(&g, "start", "startTimeUtc") {
            Some((v, key)) => {
                let path = g.path.key(&key);
                let label = format!("grid.{key}");
                let (v, _) = self.resolve(v, &path, &label).ok()?;
                match v {
                    Value::String(s) => Some((s, path, label)),
                    other => {
                        self.type_err(&path, &label, "an RFC 3339 timestamp string", &other, None);
                        return None;
                    }
                }
            }
            None => None,
        };
        let (bins, size, unit) = (bins?, size?, unit?);
        match Grid::new(bins, size, unit, start.as_ref().map(|s| s.0.as_str())) {
            Ok(g) => Some(g),
            Err(e) => {
                let (path, label) = match &start {
                    Some((_, p, l)) if e.contains("start") || e.contains("timestamp") || e.contains("9999") => {
                        (p.clone(), l.clone())
                    }
                    _ => (g.path.clone(), "grid".to_string()),
                };
                self.err(&path, &label, "bad_grid", e, None);
                None
            }
        }
    }

    fn nodes(&mut self, root: &Obj<'_>) -> Option<Vec<NodeSpec>> {
        let Some((v, key)) = self.aliased(root, "nodes", "expressions") else {
            if root.get("nodes").is_none() && root.get("expressions").is_none() {
                self.err(&YPath::default(), "nodes", "missing_key", "the document needs `nodes` (at least one)", None);
            }
            return None;
        };
        let path = YPath::default().key(&key);
        let items = self.seq(v, &path, &key)?;
        if items.is_empty() {
            self.err(&path, &key, "missing_key", "`nodes` needs at least one node", None);
        }
        let mut out = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = path.index(i);
            let Some(o) = self.obj(item, ipath.clone(), format!("{key}[{i}]"), "a node") else { continue };
            let Some(id) = self.string(&o, "id") else {
                if o.get("id").is_none() {
                    self.err(&ipath, &o.label, "missing_key", "a node needs an `id`", None);
                }
                continue;
            };
            let o = Obj { label: format!("{key}[{i}] (id {id})"), ..o };
            if !is_valid_id(&id) {
                self.err(
                    &ipath.key("id"),
                    &o.field_label("id"),
                    "bad_id",
                    format!("node id `{id}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                    Some("use letters, digits and `_`, starting with a letter"),
                );
                continue;
            }
            if let Some(first) = seen.get(&id) {
                let msg = format!("duplicate node id `{id}` (first defined at {first})");
                self.err(&ipath.key("id"), &o.field_label("id"), "duplicate_id", msg, Some("node ids must be unique"));
                continue;
            }
            seen.insert(id.clone(), o.label.clone());
            if let Some(def) = self.node_def(&o) {
                out.push(NodeSpec { id, loc: self.loc(&ipath, &o.label), def });
            }
        }
        Some(out)
    }

    fn node_def(&mut self, o: &Obj<'_>) -> Option<NodeDef> {
        let kind = match self.string(o, "kind") {
            Some(k) => k.to_ascii_lowercase(),
            None => {
                if o.get("kind").is_none() {
                    self.err(
                        &o.path,
                        &o.label,
                        "missing_key",
                        "a node needs a `kind`",
                        Some("use const, expr, pmf or router"),
                    );
                }
                return None;
            }
        };
        match kind.as_str() {
            "const" => {
                self.check_keys(o, &["id", "kind", "values", "source"]);
                match (o.get("values"), o.get("source")) {
                    (Some(_), Some(_)) => {
                        self.err(
                            &o.path,
                            &o.label,
                            "const_shape",
                            "a const node takes exactly one of `values` and `source`, not both",
                            None,
                        );
                        None
                    }
                    (Some(v), None) => {
                        let path = o.path.key("values");
                        let label = o.field_label("values");
                        let items = self.seq(v, &path, &label)?;
                        let mut vals = Vec::with_capacity(items.len());
                        for (j, it) in items.iter().enumerate() {
                            vals.push(self.num(it, &path.index(j), &format!("{label}[{j}]"))?);
                        }
                        Some(NodeDef::Values(vals))
                    }
                    (None, Some(_)) => {
                        let (source, loc) = self.series_ref(o, "source")?;
                        if source == SeriesRef::SelfQueue {
                            self.diags
                                .push(loc.diag("bad_reference", "`self` is only allowed as a topology queueDepth"));
                            return None;
                        }
                        Some(NodeDef::Source { source, loc })
                    }
                    (None, None) => {
                        self.err(
                            &o.path,
                            &o.label,
                            "const_shape",
                            "a const node needs `values` or `source`",
                            Some("e.g. values: [10, 12] or source: \"file:data/x.csv\""),
                        );
                        None
                    }
                }
            }
            "expr" => {
                self.check_keys(o, &["id", "kind", "expr", "initial"]);
                let path = o.path.key("expr");
                let label = o.field_label("expr");
                let Some(raw) = o.get("expr") else {
                    self.err(&o.path, &o.label, "missing_key", "an expr node needs `expr`", None);
                    return None;
                };
                let Some(text) = raw.as_str().map(str::to_string).or_else(|| raw.as_f64().map(|x| x.to_string()))
                else {
                    self.type_err(&path, &label, "an expression string", raw, None);
                    return None;
                };
                let loc = self.loc(&path, &label);
                let expr = self.expression(&text, Mode::Node, &loc)?;
                let initial = match o.get("initial") {
                    Some(v) => Some(self.num(v, &o.path.key("initial"), &o.field_label("initial"))?),
                    None => None,
                };
                Some(NodeDef::Expr { text, expr, initial, loc })
            }
            "pmf" => {
                self.check_keys(o, &["id", "kind", "pmf"]);
                let Some(v) = o.get("pmf") else {
                    self.err(&o.path, &o.label, "missing_key", "a pmf node needs `pmf: {values, probabilities}`", None);
                    return None;
                };
                let p = self.obj(v, o.path.key("pmf"), o.field_label("pmf"), "pmf")?;
                self.check_keys(&p, &["values", "probabilities"]);
                let values = self.number_list(&p, "values")?;
                let probabilities = self.number_list(&p, "probabilities")?;
                let loc = self.loc(&p.path, &p.label);
                let problem = if values.is_empty() {
                    Some("pmf needs at least one value".to_string())
                } else if values.len() != probabilities.len() {
                    Some(format!(
                        "pmf has {} values but {} probabilities; they must have equal length",
                        values.len(),
                        probabilities.len()
                    ))
                } else if values.iter().chain(&probabilities).any(|x| !x.is_finite()) {
                    Some("pmf values and probabilities must be finite".to_string())
                } else if probabilities.iter().any(|p| *p < 0.0) {
                    Some("pmf probabilities must not be negative".to_string())
                } else if probabilities.iter().sum::<f64>() <= 0.0 {
                    Some("pmf probabilities must sum to more than 0".to_string())
                } else {
                    None
                };
                if let Some(msg) = problem {
                    self.diags.push(loc.diag("bad_pmf", msg));
                    return None;
                }
                Some(NodeDef::Pmf { values, probabilities })
            }
            "router" => {
                self.check_keys(o, &["id", "kind", "router"]);
                let Some(v) = o.get("router") else {
                    self.err(
                        &o.path,
                        &o.label,
                        "missing_key",
                        "a router node needs `router: {inputs: {queue: <id>}, routes: [...]}`",
                        None,
                    );
                    return None;
                };
                let r = self.obj(v, o.path.key("router"), o.field_label("router"), "router")?;
                self.check_keys(&r, &["inputs", "routes"]);
                let inputs = self.obj(
                    r.get("inputs").unwrap_or(&Value::Null),
                    r.path.key("inputs"),
                    r.field_label("inputs"),
                    "router.inputs",
                )?;
                self.check_keys(&inputs, &["queue"]);
                let Some((source, source_loc)) = self.series_ref(&inputs, "queue") else {
                    if inputs.get("queue").is_none() {
                        self.err(&inputs.path, &inputs.label, "missing_key", "router.inputs needs `queue`", None);
                    }
                    return None;
                };
                let rpath = r.path.key("routes");
                let rlabel = r.field_label("routes");
                let items = self.seq(r.get("routes").unwrap_or(&Value::Null), &rpath, &rlabel)?;
                let mut routes = Vec::new();
                for (j, it) in items.iter().enumerate() {
                    let ro = self.obj(it, rpath.index(j), format!("{rlabel}[{j}]"), "a route")?;
                    self.check_keys(&ro, &["target", "weight"]);
                    let Some(target) = self.string(&ro, "target") else {
                        self.err(&ro.path, &ro.label, "missing_key", "a route needs a `target`", None);
                        return None;
                    };
                    let weight = if ro.get("weight").is_some() { self.number(&ro, "weight")? } else { 1.0 };
                    routes.push(Route { target, weight, loc: self.loc(&ro.path, &ro.label) });
                }
                Some(NodeDef::Router { source, source_loc, routes })
            }
            other => {
                self.err(
                    &o.path.key("kind"),
                    &o.field_label("kind"),
                    "bad_kind",
                    format!("unknown node kind `{other}`"),
                    Some("use const, expr, pmf or router"),
                );
                None
            }
        }
    }

    fn number_list(&mut self, o: &Obj<'_>, key: &str) -> Option<Vec<f64>> {
        let path = o.path.key(key);
        let label = o.field_label(key);
        let Some(v) = o.get(key) else {
            self.err(&o.path, &o.label, "missing_key", format!("`{key}` is required"), None);
            return None;
        };
        let items = self.seq(v, &path, &label)?;
        let mut out = Vec::with_capacity(items.len());
        for (j, it) in items.iter().enumerate() {
            out.push(self.number_value(it, &path.index(j), &format!("{label}[{j}]"))?);
        }
        Some(out)
    }

    /// Parses an expression, checks its placeholders, and resolves literal placeholders (lags,
    /// periods, kernel coefficients) to numbers: those shape the dependency graph.
    fn expression(&mut self, text: &str, mode: Mode, loc: &Loc) -> Option<Expr> {
        let mut expr = match parser::parse(text, mode) {
            Ok(e) => e,
            Err(e) => {
                self.diags.push(expr_diag(loc, text, &e));
                return None;
            }
        };
        let mut ok = true;
        let mut operands = Vec::new();
        expr.walk(
            &mut |e| {
                if let ExprKind::Param(p) = &e.kind {
                    operands.push((p.clone(), e.span));
                }
            },
            &mut |_| {},
        );
        for (name, span) in operands {
            if !self.expr_param_ok(&name, text, span, loc) {
                ok = false;
            }
        }
        if ok && !self.resolve_lits(&mut expr, text, loc) {
            ok = false;
        }
        ok.then_some(expr)
    }

    fn expr_param_ok(&mut self, name: &str, text: &str, span: crate::expr::ast::Span, loc: &Loc) -> bool {
        let problem = match self.decls.get(name) {
            None => Some(format!("unknown placeholder `{{{{{name}}}}}`: no parameter `{name}` is declared")),
            Some(d) if !d.ty.is_numeric() => Some(format!(
                "parameter `{name}` is {}; only number and integer parameters may appear in expressions (formulas are fixed)",
                d.ty.with_article()
            )),
            Some(_) => None,
        };
        match problem {
            Some(msg) => {
                self.diags.push(loc.diag("expr_param", msg).with_expr(text, span.start as usize, span.len()));
                false
            }
            None => true,
        }
    }

    fn resolve_lits(&mut self, expr: &mut Expr, text: &str, loc: &Loc) -> bool {
        let mut params = Vec::new();
        expr.walk(&mut |_| {}, &mut |l| {
            if let LitValue::Param { name, negate } = &l.value {
                params.push((name.clone(), *negate, l.span));
            }
        });
        let mut ok = true;
        let mut values = Vec::new();
        for (name, negate, span) in params.iter().cloned() {
            if !self.expr_param_ok(&name, text, span, loc) {
                ok = false;
                continue;
            }
            match self.lookup.value(&name).and_then(|v| v.as_f64()) {
                Some(v) => values.push((span, if negate { -v } else { v })),
                None => {
                    self.diags.push(
                        loc.diag("parameter_missing", format!("parameter `{name}` has no value and no default"))
                            .with_expr(text, span.start as usize, span.len()),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return false;
        }
        // Write pass, then re-check the literal rules with the actual values.
        substitute_lits(expr, &values);
        if let Err(mut e) = check_literals(expr) {
            // The value came from a placeholder: name the parameter as well as the field (§3).
            if let Some((name, _, _)) = params.iter().find(|(_, _, span)| *span == e.span) {
                e.message.push_str(&format!(", from parameter `{name}`"));
            }
            self.diags.push(expr_diag(loc, text, &e));
            return false;
        }
        true
    }

    fn topology(&mut self, v: &Value) -> Topology {
        let mut topo = Topology::default();
        let Some(t) = self.obj(v, YPath::default().key("topology"), "topology".into(), "topology") else { return topo };
        self.check_keys(&t, &["nodes", "edges", "constraints"]);
        if let Some(nv) = t.get("nodes") {
            let path = t.path.key("nodes");
            if let Some(items) = self.seq(nv, &path, "topology.nodes") {
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(n) = self.topo_node(item, path.index(i), i) {
                        if !seen.insert(n.id.clone()) {
                            self.diags
                                .push(n.loc.diag("duplicate_id", format!("duplicate topology node id `{}`", n.id)));
                            continue;
                        }
                        topo.nodes.push(n);
                    }
                }
            }
        }
        if let Some(ev) = t.get("edges") {
            let path = t.path.key("edges");
            if let Some(items) = self.seq(ev, &path, "topology.edges") {
                for (i, item) in items.iter().enumerate() {
                    if let Some(e) = self.edge(item, path.index(i), i) {
                        topo.edges.push(e);
                    }
                }
            }
        }
        if let Some(cv) = t.get("constraints") {
            let path = t.path.key("constraints");
            if let Some(items) = self.seq(cv, &path, "topology.constraints") {
                for (i, item) in items.iter().enumerate() {
                    let Some(o) = self.obj(item, path.index(i), format!("topology.constraints[{i}]"), "a constraint")
                    else {
                        continue;
                    };
                    self.check_keys(&o, &["id", "semantics"]);
                    let Some(id) = self.string(&o, "id") else {
                        self.err(&o.path, &o.label, "missing_key", "a constraint needs an `id`", None);
                        continue;
                    };
                    let o = Obj { label: format!("topology.constraints[{i}] (id {id})"), ..o };
                    let served = match o.get("semantics") {
                        Some(sv) => {
                            match self.obj(sv, o.path.key("semantics"), o.field_label("semantics"), "semantics") {
                                Some(s) => {
                                    self.check_keys(&s, &["served", "arrivals", "errors", "latencyMinutes"]);
                                    self.series_ref(&s, "served").map(|x| x.0)
                                }
                                None => None,
                            }
                        }
                        None => None,
                    };
                    topo.constraints.push(ConstraintSpec { id, served, loc: self.loc(&o.path, &o.label) });
                }
            }
        }
        topo
    }

    fn topo_node(&mut self, v: &Value, path: YPath, i: usize) -> Option<TopoNode> {
        let o = self.obj(v, path.clone(), format!("topology.nodes[{i}]"), "a topology node")?;
        self.check_keys(
            &o,
            &[
                "id",
                "kind",
                "group",
                "ui",
                "semantics",
                "initialCondition",
                "wipLimit",
                "wipLimitSeries",
                "wipOverflow",
                "dispatchSchedule",
                "parallelism",
                "constraints",
            ],
        );
        let Some(id) = self.string(&o, "id") else {
            self.err(&path, &o.label, "missing_key", "a topology node needs an `id`", None);
            return None;
        };
        let o = Obj { label: format!("topology.nodes[{i}] (id {id})"), ..o };
        if !is_valid_id(&id) {
            self.err(
                &path.key("id"),
                &o.field_label("id"),
                "bad_id",
                format!("topology id `{id}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                None,
            );
            return None;
        }
        let kind = match self.string(&o, "kind") {
            Some(k) => match TopoKind::parse(&k) {
                Some(k) => k,
                None => {
                    self.err(
                        &path.key("kind"),
                        &o.field_label("kind"),
                        "bad_kind",
                        format!("unknown topology kind `{k}`"),
                        Some("use service, queue, serviceWithBuffer, dlq, router, sink, external or dependency"),
                    );
                    return None;
                }
            },
            None => TopoKind::Service,
        };
        let group = self.string(&o, "group");
        let ui = o.get("ui").and_then(|u| serde_json::to_value(u).ok());
        let mut semantics = Semantics::default();
        if let Some(sv) = o.get("semantics")
            && let Some(s) = self.obj(sv, path.key("semantics"), o.field_label("semantics"), "semantics")
        {
            for (k, val) in s.map {
                let Some(key) = k.as_str() else { continue };
                let kpath = s.path.key(key);
                let klabel = s.field_label(key);
                match key {
                    "retryKernel" => {
                        semantics.retry_kernel = self.number_list(&s, "retryKernel");
                        if let Some(kern) = &semantics.retry_kernel
                            && kern.iter().any(|x| !x.is_finite() || *x < 0.0)
                        {
                            self.err(
                                &kpath,
                                &klabel,
                                "bad_value",
                                "retryKernel coefficients must be finite and ≥ 0",
                                None,
                            );
                        }
                    }
                    "slaMin" => semantics.sla_min = self.number(&s, "slaMin"),
                    "parallelism" => semantics.parallelism = self.num_or_ref(val, &kpath, &klabel),
                    _ => match Role::parse(key) {
                        Some(role) => {
                            if let Some((r, _)) = self.series_ref(&s, key) {
                                if r == SeriesRef::SelfQueue && role != Role::QueueDepth {
                                    self.err(
                                        &kpath,
                                        &klabel,
                                        "bad_reference",
                                        "`self` is only allowed for queueDepth",
                                        None,
                                    );
                                    continue;
                                }
                                semantics.roles.insert(role, r);
                            }
                        }
                        None => {
                            let mut allowed: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                            allowed.extend(["parallelism", "retryKernel", "slaMin"]);
                            let help = match closest(key, &allowed) {
                                Some(n) => format!("did you mean `{n}`? roles: {}", allowed.join(", ")),
                                None => format!("roles: {}", allowed.join(", ")),
                            };
                            self.err(
                                &kpath,
                                &klabel,
                                "unknown_role",
                                format!("unknown semantics role `{key}`"),
                                Some(&help),
                            );
                            continue;
                        }
                    },
                }
                if let Ok((rv, _)) = self.resolve(val, &kpath, &klabel)
                    && let Ok(j) = serde_json::to_value(&rv)
                {
                    semantics.raw.insert(key.to_string(), j);
                }
            }
        }
        if semantics.parallelism.is_none()
            && let Some(pv) = o.get("parallelism")
        {
            semantics.parallelism = self.num_or_ref(pv, &path.key("parallelism"), &o.field_label("parallelism"));
        }
        let initial_queue = match o.get("initialCondition") {
            Some(ic) => {
                let c =
                    self.obj(ic, path.key("initialCondition"), o.field_label("initialCondition"), "initialCondition")?;
                self.check_keys(&c, &["queueDepth"]);
                match c.get("queueDepth") {
                    Some(q) => self.num(q, &c.path.key("queueDepth"), &c.field_label("queueDepth")),
                    None => None,
                }
            }
            None => None,
        };
        let wip_limit = match o.get("wipLimit") {
            Some(w) => Some(self.num(w, &path.key("wipLimit"), &o.field_label("wipLimit"))?),
            None => None,
        };
        let wip_limit_series =
            if o.get("wipLimitSeries").is_some() { Some(self.series_ref(&o, "wipLimitSeries")?.0) } else { None };
        let wip_overflow = self.string(&o, "wipOverflow");
        let dispatch = match o.get("dispatchSchedule") {
            Some(dv) => {
                let d =
                    self.obj(dv, path.key("dispatchSchedule"), o.field_label("dispatchSchedule"), "dispatchSchedule")?;
                self.check_keys(&d, &["kind", "periodBins", "phaseOffset", "capacitySeries"]);
                if let Some(k) = self.string(&d, "kind")
                    && !matches!(k.to_ascii_lowercase().as_str(), "time-based" | "periodic")
                {
                    self.err(
                        &d.path.key("kind"),
                        &d.field_label("kind"),
                        "bad_kind",
                        format!("unknown dispatch kind `{k}`"),
                        Some("use time-based or periodic"),
                    );
                }
                let Some(period) = self.integer(&d, "periodBins") else {
                    if d.get("periodBins").is_none() {
                        self.err(&d.path, &d.label, "missing_key", "dispatchSchedule needs `periodBins`", None);
                    }
                    return None;
                };
                if period < 1 {
                    self.err(
                        &d.path.key("periodBins"),
                        &d.field_label("periodBins"),
                        "bad_value",
                        format!("periodBins must be at least 1, got {period}"),
                        None,
                    );
                    return None;
                }
                let phase = self.integer(&d, "phaseOffset").unwrap_or(0);
                let capacity = if d.get("capacitySeries").is_some() {
                    Some(self.series_ref(&d, "capacitySeries")?.0)
                } else {
                    None
                };
                Some(Dispatch { period: period.min(u32::MAX as i64) as u32, phase, capacity })
            }
            None => None,
        };
        let constraints = match o.get("constraints") {
            Some(cv) => {
                let cpath = path.key("constraints");
                let clabel = o.field_label("constraints");
                let items = self.seq(cv, &cpath, &clabel)?;
                items.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
            }
            None => Vec::new(),
        };
        Some(TopoNode {
            id,
            loc: self.loc(&path, &o.label),
            kind,
            group,
            ui,
            semantics,
            initial_queue,
            wip_limit,
            wip_limit_series,
            wip_overflow,
            dispatch,
            constraints,
        })
    }

    fn num_or_ref(&mut self, v: &Value, path: &YPath, label: &str) -> Option<NumOrRef> {
        let (v, _) = self.resolve(v, path, label).ok()?;
        match &v {
            Value::Number(_) => v.as_f64().map(NumOrRef::Num),
            Value::String(s) => match parse_ref(s) {
                Ok(r) => Some(NumOrRef::Ref(r)),
                Err(e) => {
                    self.err(path, label, "bad_reference", e, None);
                    None
                }
            },
            other => {
                self.type_err(path, label, "a number or a series reference", other, None);
                None
            }
        }
    }

    fn edge(&mut self, v: &Value, path: YPath, i: usize) -> Option<Edge> {
        let o = self.obj(v, path.clone(), format!("topology.edges[{i}]"), "an edge")?;
        self.check_keys(
            &o,
            &["from", "to", "source", "target", "weight", "type", "measure", "multiplier", "lag", "id"],
        );
        let endpoint = |r: &mut Reader<'_>, a: &str, b: &str| -> Option<String> {
            let (_, key) = r.aliased(&o, a, b)?;
            r.string(&o, &key)
        };
        let from = endpoint(self, "from", "source");
        let to = endpoint(self, "to", "target");
        let (Some(from), Some(to)) = (from, to) else {
            self.err(&path, &o.label, "missing_key", "an edge needs `from` and `to`", None);
            return None;
        };
        let strip = |s: &str| s.split(':').next().unwrap_or(s).to_string();
        let weight = if o.get("weight").is_some() { self.number(&o, "weight")? } else { 1.0 };
        let multiplier = if o.get("multiplier").is_some() { self.number(&o, "multiplier")? } else { 1.0 };
        let lag = match self.integer(&o, "lag") {
            Some(l) if l < 0 => {
                self.err(
                    &path.key("lag"),
                    &o.field_label("lag"),
                    "bad_value",
                    format!("lag must not be negative, got {l}"),
                    None,
                );
                return None;
            }
            Some(l) => l.min(u32::MAX as i64) as u32,
            None => 0,
        };
        let label = format!("topology.edges[{i}] ({from} -> {to})");
        Some(Edge {
            from: strip(&from),
            to: strip(&to),
            weight,
            multiplier,
            lag,
            ty: self.string(&o, "type"),
            measure: self.string(&o, "measure"),
            loc: self.loc(&path, &label),
        })
    }

    fn outputs(&mut self, root: &Obj<'_>) -> Vec<OutputSpec> {
        let Some(v) = root.get("outputs") else { return Vec::new() };
        let path = YPath::default().key("outputs");
        let Some(items) = self.seq(v, &path, "outputs") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(o) = self.obj(item, path.index(i), format!("outputs[{i}]"), "an output") else { continue };
            self.check_keys(&o, &["series", "as"]);
            let Some(series) = self.string(&o, "series") else {
                self.err(&o.path, &o.label, "missing_key", "an output needs `series` (an id, `*` or `prefix*`)", None);
                continue;
            };
            let file_name = self.string(&o, "as");
            if let Some(f) = &file_name
                && !valid_csv_name(f)
            {
                self.err(
                    &o.path.key("as"),
                    &o.field_label("as"),
                    "bad_value",
                    format!("output file name `{f}` must match ^[A-Za-z0-9_-]+\\.csv$"),
                    None,
                );
                continue;
            }
            out.push(OutputSpec { series, file_name, loc: self.loc(&o.path, &o.label) });
        }
        out
    }

    fn validation(&mut self, root: &Obj<'_>) -> Vec<CheckSpec> {
        let Some(v) = root.get("validation") else { return Vec::new() };
        let path = YPath::default().key("validation");
        let Some(items) = self.seq(v, &path, "validation") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(o) = self.obj(item, path.index(i), format!("validation[{i}]"), "a validation check") else {
                continue;
            };
            self.check_keys(&o, &["id", "type", "node", "tolerance", "expr", "message", "action"]);
            let Some(id) = self.string(&o, "id") else {
                self.err(
                    &o.path,
                    &o.label,
                    "missing_key",
                    "a validation check needs an `id` (it becomes the warning code)",
                    None,
                );
                continue;
            };
            let o = Obj { label: format!("validation[{i}] (id {id})"), ..o };
            let info = match self.string(&o, "action").as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("warn") | Some("warning") => false,
                Some("info") => true,
                Some(other) => {
                    self.err(
                        &o.path.key("action"),
                        &o.field_label("action"),
                        "bad_value",
                        format!("unknown action `{other}`"),
                        Some("use warn or info (validation never blocks a run)"),
                    );
                    continue;
                }
            };
            let ty = self.string(&o, "type").unwrap_or_default().to_ascii_lowercase();
            let kind = match ty.as_str() {
                "conservation" => {
                    let Some(node) = self.string(&o, "node") else {
                        self.err(
                            &o.path,
                            &o.label,
                            "missing_key",
                            "a conservation check needs `node` (a topology node id)",
                            None,
                        );
                        continue;
                    };
                    let tolerance = self.number(&o, "tolerance").unwrap_or(0.01);
                    CheckKind::Conservation { node, tolerance }
                }
                "expr" => {
                    let Some(text) = self.string(&o, "expr") else {
                        self.err(&o.path, &o.label, "missing_key", "an expr check needs `expr`", None);
                        continue;
                    };
                    let expr_loc = self.loc(&o.path.key("expr"), &o.field_label("expr"));
                    let Some(expr) = self.expression(&text, Mode::Check, &expr_loc) else { continue };
                    CheckKind::Expr { text, expr, message: self.string(&o, "message"), expr_loc }
                }
                other => {
                    self.err(
                        &o.path.key("type"),
                        &o.field_label("type"),
                        "bad_kind",
                        format!("unknown validation type `{other}`"),
                        Some("use conservation or expr"),
                    );
                    continue;
                }
            };
            out.push(CheckSpec { id, kind, info, loc: self.loc(&o.path, &o.label) });
        }
        out
    }
}

/// Replaces placeholder literals by value, matching them by span.
fn substitute_lits(expr: &mut Expr, values: &[(crate::expr::ast::Span, f64)]) {
    use crate::expr::ast::Call;
    fn fix(l: &mut Lit, values: &[(crate::expr::ast::Span, f64)]) {
        if matches!(l.value, LitValue::Param { .. })
            && let Some((_, v)) = values.iter().find(|(s, _)| *s == l.span)
        {
            l.value = LitValue::Num(*v);
        }
    }
    match &mut expr.kind {
        ExprKind::Num(_) | ExprKind::Param(_) | ExprKind::Ref(_) => {}
        ExprKind::Neg(x) => substitute_lits(x, values),
        ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => {
            substitute_lits(a, values);
            substitute_lits(b, values);
        }
        ExprKind::Call(call) => match call {
            Call::Shift { x, lag } => {
                substitute_lits(x, values);
                fix(lag, values);
            }
            Call::Conv { x, kernel, .. } => {
                substitute_lits(x, values);
                kernel.iter_mut().for_each(|k| fix(k, values));
            }
            Call::Min(args) | Call::Max(args) => args.iter_mut().for_each(|a| substitute_lits(a, values)),
            Call::Clamp(a, b, c) => {
                substitute_lits(a, values);
                substitute_lits(b, values);
                substitute_lits(c, values);
            }
            Call::Mod(a, b) | Call::Step(a, b) | Call::InferFromSaturation(a, b) => {
                substitute_lits(a, values);
                substitute_lits(b, values);
            }
            Call::Unary(_, x) => substitute_lits(x, values),
            Call::Pulse { period, phase, amp } => {
                fix(period, values);
                if let Some(p) = phase {
                    fix(p, values);
                }
                if let Some(a) = amp {
                    substitute_lits(a, values);
                }
            }
        },
    }
}

/// Re-checks literal rules after placeholders were resolved.
fn check_literals(expr: &Expr) -> Result<(), ExprError> {
    use crate::expr::ast::Call;
    let mut err = None;
    expr.walk(
        &mut |e| {
            if err.is_some() {
                return;
            }
            if let ExprKind::Call(call) = &e.kind {
                let checks: Vec<(&Lit, i64, &str)> = match call {
                    Call::Shift { lag, .. } => vec![(lag, 0, "SHIFT's lag")],
                    Call::Pulse { period, phase, .. } => {
                        let mut v = vec![(period, 1, "PULSE's period")];
                        if let Some(p) = phase {
                            v.push((p, 0, "PULSE's phase"));
                        }
                        v
                    }
                    _ => vec![],
                };
                for (lit, min, what) in checks {
                    if let LitValue::Num(v) = lit.value
                        && let Err(message) = check_int(v, min, what)
                    {
                        err = Some(ExprError { message, span: lit.span, help: None });
                    }
                }
            }
        },
        &mut |_| {},
    );
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn expr_diag(loc: &Loc, text: &str, e: &ExprError) -> Diagnostic {
    let mut d = loc.diag("expr", e.message.clone()).with_expr(text, e.span.start as usize, e.span.len());
    if let Some(h) = &e.help {
        d = d.with_help(h.clone());
    }
    d
}

fn valid_doc_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn valid_csv_name(s: &str) -> bool {
    s.strip_suffix(".csv")
        .is_some_and(|stem| !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

fn render_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

/// The allowed word closest to `s` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(s: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = s.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&lower, &a.to_ascii_lowercase()), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min()
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
