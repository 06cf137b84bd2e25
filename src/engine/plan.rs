//! The compiler from a typed [`Document`] to an evaluation plan: every series definition with a
//! unique id, the dependency graph with lagged and same-bin edges (§5.3), same-bin cycle
//! detection, feedback loops as strongly connected components, and one [`UnitDef`] per unit in
//! topological order.
//!
//! Every graph walk here is iterative: a 10,000-node chain compiles on a test thread's stack.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::engine::cexpr::{Bits, CExpr, NumSlot};
use crate::engine::topology;
use crate::engine::unit::{Member, MemberDef, Src, UnitDef};
use crate::engine::warnings::Warning;
use crate::expr::ast::{Call, Expr, ExprKind, LitValue, ReadKind, Span};
use crate::model::doc::{CheckKind, Document, Loc, NodeDef, Num, closest};
use crate::model::grid::Grid;
use crate::model::series::SeriesRef;

/// What kind of series a definition produces; decides the artifact `kind` (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeriesKind {
    Const,
    Expr,
    Pmf,
    Router,
    RouterTarget,
    Queue,
    Overflow,
    RetryEcho,
    Utilization,
    Latency,
    ThroughputRatio,
    ServiceTime,
    Edge,
}

impl SeriesKind {
    /// `stock`, `ratio`, `time` or `flow`.
    pub fn artifact_kind(self) -> &'static str {
        match self {
            SeriesKind::Queue => "stock",
            SeriesKind::Utilization | SeriesKind::ThroughputRatio => "ratio",
            SeriesKind::Latency | SeriesKind::ServiceTime => "time",
            _ => "flow",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeriesInfo {
    pub id: String,
    pub kind: SeriesKind,
    pub unit: u32,
    pub output: u16,
    /// The node (or topology node) whose definition produced this series, for warnings.
    pub owner: String,
    /// For inferred-capacity nodes: the series ids of `served` and `queue`, and the queue's
    /// initial condition.
    pub inference: Option<(u32, u32, Option<Num>)>,
    /// The initial condition `SHIFT` reads for `t < k`.
    pub initial: Option<Num>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnitPlan {
    pub def: Arc<UnitDef>,
    /// Units this unit reads, in the order of `Src::Ext::dep`.
    pub deps: Vec<u32>,
    /// Parameter slot → parameter name.
    pub params: Vec<String>,
    /// Input slot → input key (`file:…`, `series:…`, `override:<node>`).
    pub inputs: Vec<String>,
    /// Series definitions in this unit (the accounting weight).
    pub weight: u32,
    /// §6.1: the (mix unit, output) per mix slot of the definition (routers with class routes).
    pub mixes: Vec<(u32, u16)>,
    /// Output slot → series index.
    pub series: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputPlan {
    pub series: u32,
    pub file_name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckPlan {
    Expr { id: String, info: bool, expr: CExpr, srcs: Vec<u32>, params: Vec<String>, message: String },
    Conservation { id: String, info: bool, node: String, tolerance: f64, roles: topology::ConservationRoles },
}

/// A compiled model: everything evaluation, reporting and artifacts need.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    pub document: Arc<Document>,
    pub grid: Grid,
    pub series: Vec<SeriesInfo>,
    pub by_id: BTreeMap<String, u32>,
    pub units: Vec<UnitPlan>,
    /// Input key → ids of the nodes reading it.
    pub inputs: BTreeMap<String, Vec<String>>,
    pub outputs: Vec<OutputPlan>,
    pub checks: Vec<CheckPlan>,
    pub static_warnings: Vec<Warning>,
    pub topology: topology::TopologyPlan,
    /// §6.1: the class plan, when the document declares classes.
    pub classes: Option<Arc<crate::engine::classes::ClassPlan>>,
}

impl Compiled {
    pub fn series_id(&self, s: u32) -> &str {
        &self.series[s as usize].id
    }

    /// Units needed to evaluate `targets` (all units when None), in evaluation order.
    pub fn closure(&self, targets: Option<&[u32]>) -> Vec<u32> {
        let Some(targets) = targets else { return (0..self.units.len() as u32).collect() };
        let mut need = vec![false; self.units.len()];
        let mut stack: Vec<u32> = targets.iter().map(|s| self.series[*s as usize].unit).collect();
        while let Some(u) = stack.pop() {
            if std::mem::replace(&mut need[u as usize], true) {
                continue;
            }
            stack.extend(self.units[u as usize].deps.iter().copied().filter(|d| !need[*d as usize]));
        }
        (0..self.units.len() as u32).filter(|u| need[*u as usize]).collect()
    }

    /// Units downstream of any unit in `roots` (inclusive), in evaluation order.
    pub fn downstream(&self, roots: &[u32]) -> Vec<u32> {
        let mut hit = vec![false; self.units.len()];
        for r in roots {
            hit[*r as usize] = true;
        }
        // Units are topologically ordered, so one forward pass suffices.
        for u in 0..self.units.len() {
            if !hit[u] && self.units[u].deps.iter().any(|d| hit[*d as usize]) {
                hit[u] = true;
            }
        }
        (0..self.units.len() as u32).filter(|u| hit[*u as usize]).collect()
    }
}

/// How a definition computes its series before references are resolved.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    Values(Vec<Num>),
    Input(String),
    Const(f64),
    Alias { name: String, loc: Loc },
    Expr { expr: Expr, text: String, loc: Loc },
    RouterTarget { src: String, weights: Vec<f64>, total: f64, loc: Loc },
    Topo(topology::TopoBody),
}

/// One series definition (the unit of accounting): one or two output series.
#[derive(Clone, Debug)]
pub(crate) struct Def {
    pub(crate) loc: Loc,
    pub(crate) body: Body,
    pub(crate) outputs: Vec<u32>,
}

/// A resolved read of one definition by another.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Read {
    pub(crate) series: u32,
    pub(crate) kind: ReadKind,
}

/// The series table under construction.
#[derive(Default)]
pub(crate) struct Table {
    pub(crate) series: Vec<SeriesInfo>,
    /// Series id → index. Lookups only: the sorted map of [`Compiled::by_id`] is built once at
    /// the end.
    pub(crate) index: FxHashMap<String, u32>,
    pub(crate) defined_at: Vec<String>,
    pub(crate) defs: Vec<Def>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl Table {
    /// Registers a definition with its output ids; a collision is an error naming both places.
    pub(crate) fn add(
        &mut self,
        owner: &str,
        loc: Loc,
        body: Body,
        outputs: &[(String, SeriesKind, Option<Num>)],
    ) -> Option<usize> {
        let d = self.defs.len();
        let mut idx = Vec::new();
        for (o, (id, kind, initial)) in outputs.iter().enumerate() {
            if let Some(&prev) = self.index.get(id) {
                let first = self.defined_at[prev as usize].clone();
                self.diags.push(
                    loc.diag("duplicate_id", format!("series id `{id}` is defined twice: here and by {first}"))
                        .with_help("rename one of them"),
                );
                return None;
            }
            let s = self.series.len() as u32;
            self.index.insert(id.clone(), s);
            self.defined_at.push(loc.path.clone());
            self.series.push(SeriesInfo {
                id: id.clone(),
                kind: *kind,
                unit: d as u32,
                output: o as u16,
                owner: owner.to_string(),
                inference: None,
                initial: initial.clone(),
            });
            idx.push(s);
        }
        self.defs.push(Def { loc, body, outputs: idx });
        Some(d)
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// An "unknown series" error with a did-you-mean hint.
    pub(crate) fn unknown(&self, name: &str, loc: &Loc, text: Option<(&str, Span)>) -> Diagnostic {
        let ids: Vec<&str> = self.index.keys().map(String::as_str).collect();
        let help = match closest(name, &ids) {
            Some(n) => format!("did you mean `{n}`?"),
            None => "define a node with that id, or reference an existing series".to_string(),
        };
        let d = loc.diag("unknown_reference", format!("unknown series `{name}`")).with_help(help);
        match text {
            Some((t, span)) => d.with_expr(t, span.start as usize, span.len()),
            None => d,
        }
    }
}

/// Compiles a document. `overrides` are const node ids whose series a scenario replaces.
pub fn compile(document: Arc<Document>, overrides: &BTreeSet<String>) -> Result<Compiled, Diagnostics> {
    let doc = &*document;
    let grid = doc.grid;
    let bins = grid.len();
    let mut t = Table::default();
    let mut static_warnings = Vec::new();
    let mut inputs: BTreeMap<String, Vec<String>> = BTreeMap::new();

    for n in &doc.nodes {
        let body = match &n.def {
            // A pmf is overridden only by the analyses (Monte Carlo draws it per bin); the host
            // lets users bind const nodes only.
            NodeDef::Values(_) | NodeDef::Source { .. } | NodeDef::Pmf { .. } if overrides.contains(&n.id) => {
                let key = format!("override:{}", n.id);
                inputs.entry(key.clone()).or_default().push(n.id.clone());
                Body::Input(key)
            }
            NodeDef::Values(vs) => {
                if vs.len() != 1 && vs.len() != bins {
                    t.diags.push(
                        n.loc
                            .diag(
                                "const_length",
                                format!("`values` has {} entries but the grid has {bins} bins", vs.len()),
                            )
                            .with_help(format!("give exactly {bins} values, or one value to broadcast")),
                    );
                    continue;
                }
                Body::Values(vs.clone())
            }
            NodeDef::Source { source, loc } => match source {
                SeriesRef::File(_) | SeriesRef::Stored(_) | SeriesRef::Snapshot(_) => {
                    let key = source.to_string();
                    inputs.entry(key.clone()).or_default().push(n.id.clone());
                    Body::Input(key)
                }
                SeriesRef::Node(name) => Body::Alias { name: name.clone(), loc: loc.clone() },
                SeriesRef::SelfQueue => continue,
            },
            NodeDef::Expr { text, expr, loc, .. } => {
                Body::Expr { expr: expr.clone(), text: text.clone(), loc: loc.clone() }
            }
            NodeDef::Pmf { values, probabilities } => {
                let mut num = 0.0;
                let mut den = 0.0;
                for (v, p) in values.iter().zip(probabilities) {
                    num += v * p;
                    den += p;
                }
                if (den - 1.0).abs() > 1e-6 {
                    static_warnings.push(
                        Warning::new(
                            "pmf_renormalised",
                            Severity::Info,
                            &n.id,
                            format!("probabilities sum to {den}; renormalised to 1"),
                        )
                        .with_bins(&[], Some(den)),
                    );
                }
                Body::Const(num / den)
            }
            NodeDef::Router { source, source_loc, .. } => match source {
                SeriesRef::Node(name) => Body::Alias { name: name.clone(), loc: source_loc.clone() },
                other => {
                    t.diags.push(
                        source_loc
                            .diag("bad_reference", format!("a router's input must be a series id, got `{other}`"))
                            .with_help("reference a node, e.g. inputs: {queue: arrivals}"),
                    );
                    continue;
                }
            },
        };
        if overrides.contains(&n.id)
            && !matches!(n.def, NodeDef::Values(_) | NodeDef::Source { .. } | NodeDef::Pmf { .. })
        {
            t.diags.push(n.loc.diag(
                "bad_override",
                format!(
                    "node `{}` is not a const node; only const nodes and series parameters can be overridden",
                    n.id
                ),
            ));
            continue;
        }
        let kind = match &n.def {
            NodeDef::Values(_) | NodeDef::Source { .. } => SeriesKind::Const,
            NodeDef::Expr { .. } => SeriesKind::Expr,
            NodeDef::Pmf { .. } => SeriesKind::Pmf,
            NodeDef::Router { .. } => SeriesKind::Router,
        };
        let initial = match &n.def {
            NodeDef::Expr { initial, .. } => initial.clone(),
            _ => None,
        };
        t.add(&n.id, n.loc.clone(), body, &[(n.id.clone(), kind, initial)]);
    }
    // Router targets: new series, summed when several routes share a target.
    for n in &doc.nodes {
        let NodeDef::Router { routes, .. } = &n.def else { continue };
        let total: f64 = routes.iter().fold(0.0, |a, r| a + r.weight);
        if routes.is_empty()
            || routes.iter().any(|r| !r.weight.is_finite() || r.weight < 0.0)
            || total <= 0.0
            || !total.is_finite()
        {
            t.diags.push(n.loc.diag(
                "bad_router",
                format!(
                    "router `{}` needs routes with finite weights ≥ 0 that sum to more than 0 (sum is {total})",
                    n.id
                ),
            ));
            continue;
        }
        let mut by_target: BTreeMap<&str, (Vec<f64>, Loc)> = BTreeMap::new();
        let mut order = Vec::new();
        for r in routes {
            let e = by_target.entry(&r.target).or_insert_with(|| {
                order.push(r.target.as_str());
                (Vec::new(), r.loc.clone())
            });
            e.0.push(r.weight);
        }
        for target in order {
            let (weights, loc) = by_target[target].clone();
            if !crate::model::series::is_valid_id(target) {
                t.diags
                    .push(loc.diag("bad_id", format!("route target `{target}` must match ^[A-Za-z_][A-Za-z0-9_]*$")));
                continue;
            }
            let body = Body::RouterTarget { src: n.id.clone(), weights, total, loc: loc.clone() };
            t.add(&n.id, loc, body, &[(target.to_string(), SeriesKind::RouterTarget, None)]);
        }
    }
    let topo_plan = topology::add_topology(doc, &mut t, &mut inputs);
    let share_series = crate::engine::classes::add_share_inputs(doc, &mut t, &mut inputs);
    if !t.diags.is_empty() {
        return Err(Diagnostics(t.diags));
    }

    // Resolve every definition's reads.
    let mut reads: Vec<Vec<Read>> = Vec::with_capacity(t.defs.len());
    let mut diags = Vec::new();
    for d in 0..t.defs.len() {
        let (r, missing) = resolve_reads(&t, d);
        reads.push(r);
        diags.extend(missing);
        diags.extend(check_self_shift(&t, d));
    }
    t.diags.extend(diags);
    if !t.diags.is_empty() {
        return Err(Diagnostics(t.diags));
    }
    let def_of = |t: &Table, s: u32| t.series[s as usize].unit as usize;
    // Def-level graph: reader → dependency, by kind.
    let n_defs = t.defs.len();
    let mut same: Vec<Vec<usize>> = vec![Vec::new(); n_defs];
    let mut all: Vec<Vec<usize>> = vec![Vec::new(); n_defs];
    let mut self_loop = vec![false; n_defs];
    for (d, rs) in reads.iter().enumerate() {
        for r in rs {
            let dep = def_of(&t, r.series);
            if dep == d {
                self_loop[d] = true;
                if r.kind == ReadKind::SameBin {
                    same[d].push(dep);
                }
                continue;
            }
            if r.kind == ReadKind::SameBin {
                same[d].push(dep);
            }
            all[d].push(dep);
        }
    }
    for v in same.iter_mut().chain(all.iter_mut()) {
        v.sort_unstable();
        v.dedup();
    }
    if let Some(cycle) = find_cycle(&same) {
        let names: Vec<&str> = cycle.iter().map(|&d| t.series[t.defs[d].outputs[0] as usize].id.as_str()).collect();
        let first = &t.defs[cycle[0]];
        return Err(first
            .loc
            .diag("cycle", format!("same-bin cycle: {}", names.join(" -> ")))
            .with_help(
                "each series reads the next in the same bin; break the loop with SHIFT(x, 1) on one of the references",
            )
            .into());
    }
    let sccs = tarjan(&all);
    let mut unit_of_def = vec![0u32; n_defs];
    for (u, scc) in sccs.iter().enumerate() {
        for &d in scc {
            unit_of_def[d] = u as u32;
        }
    }
    let looped: Vec<bool> = sccs.iter().map(|scc| scc.len() > 1 || self_loop[scc[0]]).collect();
    for (u, scc) in sccs.iter().enumerate() {
        for &d in scc {
            match check_inference(&t, d, looped[u]) {
                Ok(Some((served, queue))) => {
                    let initial = t.series[queue as usize].initial.clone();
                    let s = t.defs[d].outputs[0] as usize;
                    t.series[s].inference = Some((served, queue, initial));
                }
                Ok(None) => {}
                Err(e) => t.diags.push(e),
            }
        }
    }
    if !t.diags.is_empty() {
        return Err(Diagnostics(t.diags));
    }
    // feedback_initial_defaulted: SHIFT of a bare loop member without an initial condition.
    for (u, scc) in sccs.iter().enumerate() {
        if !looped[u] {
            continue;
        }
        let members: BTreeSet<usize> = scc.iter().copied().collect();
        let mut flagged = BTreeSet::new();
        for &d in scc {
            if let Body::Expr { expr, .. } = &t.defs[d].body {
                bare_shifts(expr, &mut |name| {
                    if let Some(s) = t.lookup(name)
                        && members.contains(&def_of(&t, s))
                        && t.series[s as usize].initial.is_none()
                        && flagged.insert(s)
                    {
                        let id = t.series[s as usize].id.clone();
                        static_warnings.push(Warning::new("feedback_initial_defaulted", Severity::Info, &id, format!("`{id}` is read by SHIFT inside a feedback loop and has no initial condition; bins before the lag read 0")));
                    }
                });
            }
        }
    }

    // Units, in evaluation order; members ordered by same-bin dependencies.
    for (u, scc) in sccs.iter().enumerate() {
        let ordered = order_members(scc, &same);
        let mut out = 0u16;
        for &d in &ordered {
            for &s in &t.defs[d].outputs {
                t.series[s as usize].unit = u as u32;
                t.series[s as usize].output = out;
                out += 1;
            }
        }
    }
    let mut units = Vec::with_capacity(sccs.len());
    for (u, scc) in sccs.iter().enumerate() {
        let ordered = order_members(scc, &same);
        units.push(lower_unit(&t, &ordered, u as u32, looped[u], grid.bins));
    }
    crate::engine::inference::add_guards(&mut units, &doc.parameters);
    let classes = if doc.classes.is_empty() {
        None
    } else {
        Some(Arc::new(crate::engine::classes::plan(doc, &t, &mut units, &topo_plan, &share_series)?))
    };

    let by_id: BTreeMap<String, u32> = t.series.iter().enumerate().map(|(i, s)| (s.id.clone(), i as u32)).collect();
    let outputs = select_outputs(doc, &t, &by_id)?;
    let checks = compile_checks(doc, &t, &topo_plan)?;
    Ok(Compiled {
        document: document.clone(),
        grid,
        by_id,
        series: t.series,
        units,
        inputs,
        outputs,
        checks,
        static_warnings,
        topology: topo_plan,
        classes,
    })
}

fn resolve_reads(t: &Table, d: usize) -> (Vec<Read>, Vec<Diagnostic>) {
    let def = &t.defs[d];
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let mut push = |name: &str, kind: ReadKind, span: Option<Span>, loc: &Loc, text: Option<&str>| match t.lookup(name)
    {
        Some(s) => out.push(Read { series: s, kind }),
        None => missing.push(t.unknown(name, loc, text.zip(span))),
    };
    match &def.body {
        Body::Values(_) | Body::Input(_) | Body::Const(_) => {}
        Body::Alias { name, loc } => push(name, ReadKind::SameBin, None, loc, None),
        Body::Expr { expr, text, loc } => {
            for (name, kind, span) in expr.refs() {
                push(name, kind, Some(span), loc, Some(text));
            }
        }
        Body::RouterTarget { src, loc, .. } => push(src, ReadKind::SameBin, None, loc, None),
        Body::Topo(b) => {
            for (name, kind, loc) in b.reads() {
                push(&name, kind, None, &loc, None);
            }
        }
    }
    (out, missing)
}

/// §5.3: an expression that SHIFTs its own node needs `initial`.
fn check_self_shift(t: &Table, d: usize) -> Option<Diagnostic> {
    let def = &t.defs[d];
    let Body::Expr { expr, text, loc } = &def.body else { return None };
    let own = &t.series[def.outputs[0] as usize];
    if own.initial.is_some() {
        return None;
    }
    let mut at = None;
    expr.walk(
        &mut |e| {
            if at.is_none()
                && let ExprKind::Call(Call::Shift { x, lag }) = &e.kind
                && matches!(lag.value, LitValue::Num(k) if k >= 1.0)
                && x.refs().iter().any(|(n, _, _)| *n == own.id)
            {
                at = Some(e.span);
            }
        },
        &mut |_| {},
    );
    at.map(|span| {
        loc.diag("self_shift_initial", "Self-referencing SHIFT requires explicit 'initial' value")
            .with_expr(text, span.start as usize, span.len())
            .with_help(format!("node `{}` reads its own earlier values; add `initial: <number>` to it", own.id))
    })
}

/// SHIFTs of bare ids inside an expression, by name.
fn bare_shifts(expr: &Expr, f: &mut dyn FnMut(&str)) {
    expr.walk(
        &mut |e| {
            if let ExprKind::Call(Call::Shift { x, lag }) = &e.kind
                && let ExprKind::Ref(name) = &x.kind
                && matches!(lag.value, LitValue::Num(k) if k >= 1.0)
            {
                f(name);
            }
        },
        &mut |_| {},
    );
}

/// `infer_from_saturation` must be a node's whole expression, over two series ids, neither in
/// the node's own feedback loop. Returns the (served, queue) series on success.
fn check_inference(t: &Table, d: usize, looped: bool) -> Result<Option<(u32, u32)>, Diagnostic> {
    let Body::Expr { expr, text, loc } = &t.defs[d].body else { return Ok(None) };
    let mut nested = None;
    expr.walk(
        &mut |e| {
            if nested.is_none()
                && !std::ptr::eq(e, expr)
                && matches!(e.kind, ExprKind::Call(Call::InferFromSaturation(..)))
            {
                nested = Some(e.span);
            }
        },
        &mut |_| {},
    );
    if let Some(span) = nested {
        return Err(loc
            .diag("expr", "infer_from_saturation must be the whole expression of its node")
            .with_expr(text, span.start as usize, span.len())
            .with_help(
                "put it in a node of its own, e.g. capacity_inferred = infer_from_saturation(served, queue_depth)",
            ));
    }
    let ExprKind::Call(Call::InferFromSaturation(served, queue)) = &expr.kind else { return Ok(None) };
    let (ExprKind::Ref(sn), ExprKind::Ref(qn)) = (&served.kind, &queue.kind) else {
        return Err(loc
            .diag("expr", "infer_from_saturation takes two series ids")
            .with_expr(text, expr.span.start as usize, expr.span.len())
            .with_help("e.g. infer_from_saturation(served, queue_depth)"));
    };
    if looped {
        return Err(loc
            .diag("expr", "the arguments of infer_from_saturation may not be in its own feedback loop")
            .with_expr(text, expr.span.start as usize, expr.span.len()));
    }
    Ok(t.lookup(sn).zip(t.lookup(qn)))
}

/// Finds a cycle in `g` (reader → dependency), iteratively. Returns it as `a, b, …, a`,
/// each entry reading the next.
pub(crate) fn find_cycle(g: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = g.len();
    let mut color = vec![0u8; n]; // 0 unvisited, 1 on the DFS stack, 2 finished
    for root in 0..n {
        if color[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        color[root] = 1;
        while let Some(top) = stack.last_mut() {
            let (v, i) = *top;
            if i < g[v].len() {
                top.1 += 1;
                let w = g[v][i];
                match color[w] {
                    0 => {
                        color[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        // The DFS path from w to v, then back to w.
                        let pos = stack.iter().position(|(x, _)| *x == w).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[pos..].iter().map(|(x, _)| *x).collect();
                        cycle.push(w);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                color[v] = 2;
                stack.pop();
            }
        }
    }
    None
}

/// Tarjan's strongly connected components, iteratively. With edges reader → dependency, the
/// components come out dependencies first: evaluation order.
pub(crate) fn tarjan(g: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = g.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, i)) = call.last() {
            if i < g[v].len() {
                if let Some(c) = call.last_mut() {
                    c.1 += 1;
                }
                let w = g[v][i];
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(p, _)) = call.last() {
                    low[p] = low[p].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comp.sort_unstable();
                    out.push(comp);
                }
            }
        }
    }
    out
}

/// Orders a component's members so that same-bin dependencies come first (stable by index).
pub(crate) fn order_members(scc: &[usize], same: &[Vec<usize>]) -> Vec<usize> {
    if scc.len() == 1 {
        return scc.to_vec();
    }
    let inside: BTreeSet<usize> = scc.iter().copied().collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::with_capacity(scc.len());
    while out.len() < scc.len() {
        let before = out.len();
        for &d in scc {
            if done.contains(&d) {
                continue;
            }
            if same[d].iter().all(|x| !inside.contains(x) || *x == d || done.contains(x)) {
                done.insert(d);
                out.push(d);
            }
        }
        if out.len() == before {
            // Unreachable: same-bin cycles were rejected. Keep the remaining order.
            out.extend(scc.iter().filter(|d| !done.contains(d)));
            break;
        }
    }
    out
}

/// Slot tables for lowering one unit.
pub(crate) struct Lower<'a> {
    t: &'a Table,
    unit: u32,
    srcs: Vec<Src>,
    src_of: FxHashMap<u32, u16>,
    deps: Vec<u32>,
    params: Vec<String>,
    inputs: Vec<String>,
}

impl<'a> Lower<'a> {
    /// A lowering that owns no series: every read is external (checks, mix units).
    pub(crate) fn global(t: &'a Table) -> Lower<'a> {
        Lower {
            t,
            unit: u32::MAX,
            srcs: Vec::new(),
            src_of: FxHashMap::default(),
            deps: Vec::new(),
            params: Vec::new(),
            inputs: Vec::new(),
        }
    }

    /// The source slots, the units they read and the parameters.
    pub(crate) fn finish(self) -> (Vec<Src>, Vec<u32>, Vec<String>) {
        (self.srcs, self.deps, self.params)
    }

    pub(crate) fn src(&mut self, series: u32) -> u16 {
        if let Some(&s) = self.src_of.get(&series) {
            return s;
        }
        let info = &self.t.series[series as usize];
        let src = if info.unit == self.unit {
            Src::Own(info.output)
        } else {
            let dep = match self.deps.iter().position(|d| *d == info.unit) {
                Some(p) => p,
                None => {
                    self.deps.push(info.unit);
                    self.deps.len() - 1
                }
            };
            Src::Ext { dep: dep as u16, output: info.output }
        };
        let slot = self.srcs.len() as u16;
        self.srcs.push(src);
        self.src_of.insert(series, slot);
        slot
    }

    pub(crate) fn src_named(&mut self, name: &str) -> u16 {
        let s = self.t.lookup(name).unwrap_or(0);
        self.src(s)
    }

    pub(crate) fn param(&mut self, name: &str) -> u16 {
        match self.params.iter().position(|p| p == name) {
            Some(p) => p as u16,
            None => {
                self.params.push(name.to_string());
                (self.params.len() - 1) as u16
            }
        }
    }

    pub(crate) fn input(&mut self, key: &str) -> u16 {
        match self.inputs.iter().position(|p| p == key) {
            Some(p) => p as u16,
            None => {
                self.inputs.push(key.to_string());
                (self.inputs.len() - 1) as u16
            }
        }
    }

    pub(crate) fn num(&mut self, n: &Num) -> NumSlot {
        match n {
            Num::Lit(v) => NumSlot::Lit(Bits::new(*v)),
            Num::Param(p) => NumSlot::Param(self.param(p)),
        }
    }

    /// The initial condition SHIFT reads for a bare series.
    pub(crate) fn initial_of(&mut self, series: u32) -> Option<NumSlot> {
        let init = self.t.series[series as usize].initial.clone();
        init.map(|n| self.num(&n))
    }

    pub(crate) fn expr(&mut self, e: &Expr) -> CExpr {
        let b = |l: &mut Self, x: &Expr| Box::new(l.expr(x));
        match &e.kind {
            ExprKind::Num(v) => CExpr::Num(Bits::new(*v)),
            ExprKind::Param(p) => CExpr::Param(self.param(p)),
            ExprKind::Ref(name) => CExpr::Src(self.src_named(name)),
            ExprKind::Neg(x) => CExpr::Neg(b(self, x)),
            ExprKind::Binary(op, x, y) => CExpr::Bin(*op, b(self, x), b(self, y)),
            ExprKind::Compare(op, x, y) => CExpr::Cmp(*op, b(self, x), b(self, y)),
            ExprKind::Call(call) => match call {
                Call::Shift { x, lag } => {
                    let lag = lit_u32(&lag.value);
                    let init = match &x.kind {
                        ExprKind::Ref(name) => self.t.lookup(name).and_then(|s| self.initial_of(s)),
                        _ => None,
                    };
                    CExpr::Shift { x: b(self, x), lag, init }
                }
                Call::Conv { x, kernel, .. } => {
                    CExpr::Conv { x: b(self, x), kernel: kernel.iter().map(|k| Bits::new(lit_f64(&k.value))).collect() }
                }
                Call::Min(args) => CExpr::Min(args.iter().map(|a| self.expr(a)).collect()),
                Call::Max(args) => CExpr::Max(args.iter().map(|a| self.expr(a)).collect()),
                Call::Clamp(x, lo, hi) => CExpr::Clamp(b(self, x), b(self, lo), b(self, hi)),
                Call::Mod(x, y) => CExpr::Mod(b(self, x), b(self, y)),
                Call::Unary(f, x) => CExpr::Unary(*f, b(self, x)),
                Call::Step(x, y) => CExpr::Step(b(self, x), b(self, y)),
                Call::Pulse { period, phase, amp } => CExpr::Pulse {
                    period: lit_u32(&period.value).max(1),
                    phase: phase.as_ref().map_or(0, |p| lit_u32(&p.value)),
                    amp: amp.as_ref().map(|a| b(self, a)),
                },
                // Only valid as a whole node expression; handled by `lower_unit`.
                Call::InferFromSaturation(..) => CExpr::Num(Bits::new(f64::NAN)),
            },
        }
    }
}

fn lit_f64(v: &LitValue) -> f64 {
    match v {
        LitValue::Num(x) => *x,
        // Placeholders were resolved by the document reader.
        LitValue::Param { .. } => f64::NAN,
    }
}

fn lit_u32(v: &LitValue) -> u32 {
    let x = lit_f64(v);
    if x.is_finite() && x >= 0.0 { x.min(u32::MAX as f64) as u32 } else { 0 }
}

fn lower_unit(t: &Table, ordered: &[usize], u: u32, looped: bool, bins: u32) -> UnitPlan {
    let mut l = Lower {
        t,
        unit: u,
        srcs: Vec::new(),
        src_of: FxHashMap::default(),
        deps: Vec::new(),
        params: Vec::new(),
        inputs: Vec::new(),
    };
    let mut members = Vec::with_capacity(ordered.len());
    let mut series = Vec::new();
    let mut sequential = looped;
    for &d in ordered {
        let def = &t.defs[d];
        let outputs: Vec<u16> = def.outputs.iter().map(|s| t.series[*s as usize].output).collect();
        series.extend(def.outputs.iter().copied());
        let member = match &def.body {
            Body::Values(vs) => MemberDef::Values(vs.iter().map(|v| l.num(v)).collect()),
            Body::Input(key) => MemberDef::Input(l.input(key)),
            Body::Const(v) => MemberDef::Const(Bits::new(*v)),
            Body::Alias { name, .. } => MemberDef::Alias(l.src_named(name)),
            Body::Expr { expr, .. } => match t.series[def.outputs[0] as usize].inference {
                Some((served, queue, _)) => {
                    let queue_init = l.initial_of(queue);
                    MemberDef::Infer {
                        served: l.src(served),
                        queue: l.src(queue),
                        queue_init,
                        guards: Default::default(),
                    }
                }
                None => MemberDef::Expr(l.expr(expr)),
            },
            Body::RouterTarget { src, weights, total, .. } => MemberDef::RouterTarget {
                src: l.src_named(src),
                weights: weights.iter().map(|w| Bits::new(*w)).collect(),
                total: Bits::new(*total),
            },
            Body::Topo(b) => {
                if b.is_sequential() {
                    sequential = true;
                }
                b.lower(&mut l, &def.outputs)
            }
        };
        members.push(Member { def: member, outputs });
    }
    let n_outputs = series.len() as u16;
    let def = UnitDef::new(bins, l.srcs, members, n_outputs, sequential);
    UnitPlan {
        def: Arc::new(def),
        deps: l.deps,
        params: l.params,
        inputs: l.inputs,
        weight: ordered.len() as u32,
        series,
        mixes: Vec::new(),
    }
}

fn select_outputs(doc: &Document, t: &Table, by_id: &BTreeMap<String, u32>) -> Result<Vec<OutputPlan>, Diagnostics> {
    let mut chosen: BTreeMap<u32, String> = BTreeMap::new();
    if doc.outputs.is_empty() {
        for (id, &s) in by_id {
            chosen.insert(s, format!("{id}.csv"));
        }
    } else {
        let mut diags = Vec::new();
        for o in &doc.outputs {
            let matched: Vec<u32> = match o.series.strip_suffix('*') {
                Some(prefix) => by_id.iter().filter(|(id, _)| id.starts_with(prefix)).map(|(_, s)| *s).collect(),
                None => t.lookup(&o.series).into_iter().collect(),
            };
            if matched.is_empty() {
                let ids: Vec<&str> = by_id.keys().map(String::as_str).collect();
                let help = closest(&o.series, &ids).map_or_else(
                    || "use a series id, `*` or `prefix*`".to_string(),
                    |n| format!("did you mean `{n}`?"),
                );
                diags.push(
                    o.loc
                        .diag("output_selector", format!("output selector `{}` matches no series", o.series))
                        .with_help(help),
                );
                continue;
            }
            if o.file_name.is_some() && matched.len() > 1 {
                diags.push(o.loc.diag(
                    "output_selector",
                    format!("`as` names one file but `{}` matches {} series", o.series, matched.len()),
                ));
                continue;
            }
            for s in matched {
                let name = o.file_name.clone().unwrap_or_else(|| format!("{}.csv", t.series[s as usize].id));
                chosen.insert(s, name);
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
    }
    let mut names = BTreeMap::new();
    let mut out: Vec<OutputPlan> =
        chosen.into_iter().map(|(series, file_name)| OutputPlan { series, file_name }).collect();
    out.sort_by(|a, b| t.series[a.series as usize].id.cmp(&t.series[b.series as usize].id));
    for o in &out {
        if let Some(prev) = names.insert(o.file_name.clone(), o.series) {
            let a = &t.series[prev as usize].id;
            let b = &t.series[o.series as usize].id;
            return Err(Diagnostic::error(
                "output_selector",
                format!("series `{a}` and `{b}` would both be written to `{}`", o.file_name),
            )
            .at_path("outputs")
            .into());
        }
    }
    Ok(out)
}

fn compile_checks(doc: &Document, t: &Table, topo: &topology::TopologyPlan) -> Result<Vec<CheckPlan>, Diagnostics> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for c in &doc.validation {
        match &c.kind {
            CheckKind::Expr { text, expr, message, expr_loc } => {
                let mut srcs: Vec<u32> = Vec::new();
                let mut params: Vec<String> = Vec::new();
                let mut bad = false;
                for (name, _, span) in expr.refs() {
                    if t.lookup(name).is_none() {
                        diags.push(t.unknown(name, expr_loc, Some((text, span))));
                        bad = true;
                    }
                }
                if bad {
                    continue;
                }
                let cexpr = lower_global(expr, t, &mut srcs, &mut params);
                let message = message.clone().unwrap_or_else(|| format!("check `{text}` holds"));
                out.push(CheckPlan::Expr { id: c.id.clone(), info: c.info, expr: cexpr, srcs, params, message });
            }
            CheckKind::Conservation { node, tolerance } => match topo.conservation_roles(node) {
                Some(roles) => out.push(CheckPlan::Conservation { id: c.id.clone(), info: c.info, node: node.clone(), tolerance: *tolerance, roles }),
                None => diags.push(c.loc.diag("unknown_reference", format!("conservation check names `{node}`, which is not a topology node with arrivals, served and a queue"))),
            },
        }
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
    Ok(out)
}

/// Lowers a check expression against the whole series table: `Src(i)` reads `srcs[i]`.
fn lower_global(expr: &Expr, t: &Table, srcs: &mut Vec<u32>, params: &mut Vec<String>) -> CExpr {
    // Reuse the unit lowering with a pseudo unit that owns nothing: every read becomes Ext.
    let mut l = Lower::global(t);
    let e = l.expr(expr);
    // Map each source slot back to its series index.
    let mut by_slot = vec![0u32; l.srcs.len()];
    for (series, slot) in &l.src_of {
        by_slot[*slot as usize] = *series;
    }
    *srcs = by_slot;
    *params = l.params;
    e
}
