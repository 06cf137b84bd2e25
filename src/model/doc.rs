//! The typed model document (§2, §6, §7, §8 `outputs`) and its reader from the YAML tree.
//!
//! Reading resolves *structural* placeholders (ids, references, grid, lags, weights: everything
//! that shapes the graph) through a parameter lookup, and keeps *evaluable* ones (expression
//! operands, `initial`, const values, queue initial conditions, WIP limits) as [`Num::Param`]
//! slots. The engine reads those parameter values during evaluation, so changing such a parameter
//! re-evaluates only the units that read it (§9).
//!
//! The reader is split by section: `read` (the reader itself: maps, scalars, placeholders, and
//! the root, metadata, parameters and grid), `nodes`, `expr` (formulas and their literal
//! placeholders), `topology`, and `checks` (outputs and validation). Every node of the YAML tree
//! carries its position, so every error names a place without looking anything up.

mod checks;
mod classes;
pub use classes::{MAX_CLASSES, UNATTRIBUTED};
mod expr;
mod nodes;
mod read;
mod topology;

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::expr::ast::Expr;
use crate::expr::parser::ExprError;
use crate::model::grid::Grid;
use crate::model::params::{ParamDecl, ParamValue};
use crate::model::series::SeriesRef;
use crate::model::yaml::{Pos, YamlDoc};

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
    /// §6.1: the declared flow classes, in declaration order (empty: no per-class series).
    pub classes: Vec<ClassSpec>,
}

/// A declared flow class (§6.1).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    pub id: String,
    pub display_name: Option<String>,
    pub loc: Loc,
}

/// One share of a `classMix` (§6.1): a number (possibly a parameter) or a series.
#[derive(Clone, Debug, PartialEq)]
pub enum Share {
    Num(Num),
    Series(SeriesRef),
}

/// A `classMix` or `initialClassMix`: per declared class (by index into
/// [`Document::classes`]), its share, in the order written.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMix {
    pub shares: Vec<(usize, Share)>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub id: String,
    pub loc: Loc,
    pub def: NodeDef,
    /// §6.1: makes this node a class source.
    pub class_mix: Option<ClassMix>,
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
    /// §6.1 class route: the classes (indices into [`Document::classes`]) this route carries.
    pub classes: Option<Vec<usize>>,
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
    /// §6.1: the class mix of the queue's initial content (numbers only).
    pub initial_class_mix: Option<ClassMix>,
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
    let Some(root) = doc.root.as_mapping() else {
        return Err(
            Diagnostic::error("yaml_shape", "the document must be a map of keys such as `grid` and `nodes`").into()
        );
    };
    let mut r = read::Reader::new(&read::NoParams);
    let decls = r.parameters(root);
    let diags = r.into_diags();
    if diags.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics(diags));
    }
    Ok(decls)
}

/// Reads the whole document, resolving structural placeholders through `lookup`.
pub fn read_document(doc: &YamlDoc, lookup: &dyn ParamLookup) -> Result<Document, Diagnostics> {
    let Some(root) = doc.root.as_mapping() else {
        return Err(Diagnostic::error(
            "yaml_shape",
            format!("the document must be a map of keys such as `grid` and `nodes`, found {}", doc.root.kind()),
        )
        .into());
    };
    let mut r = read::Reader::new(lookup);
    let document = r.document(root, doc.root.pos);
    let diags = r.into_diags();
    if diags.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics(diags));
    }
    document.ok_or(Diagnostics(diags))
}

pub fn expr_diag(loc: &Loc, text: &str, e: &ExprError) -> Diagnostic {
    let mut d = loc.diag("expr", e.message.clone()).with_expr(text, e.span.start as usize, e.span.len());
    if let Some(h) = &e.help {
        d = d.with_help(h.clone());
    }
    d
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
