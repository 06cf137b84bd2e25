//! The class plan (§6.1): which series are classed, how each one's mix is computed, the mix
//! units (strongly connected components of mix reads, evaluated bin by bin), routers with class
//! routes, and one evaluation order over value units and mix units together.
//!
//! Mixes are planned after the value units and never change them, except that a router target
//! with class routes reads its source's mix (the one place where classes change totals).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::cexpr::{Bits, NumSlot};
use crate::engine::db::ClassId;
use crate::engine::mix::{MixDef, MixMember, MixRead, MixSrc, ShareSlot};
use crate::engine::plan::{Body, Lower, SeriesKind, Table, UnitPlan, find_cycle, order_members, tarjan};
use crate::engine::topology::{TopoBody, TopologyPlan, snake};
use crate::engine::unit::{Member, MemberDef};
use crate::expr::ast::{Call, Expr, ExprKind, LitValue};
use crate::model::doc::{ClassMix, Document, Loc, Num, Role, Share, TopoKind};
use crate::model::series::SeriesRef;

/// A unit of evaluation order: a value unit or a mix unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyNode {
    Unit(u32),
    Mix(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct MixUnitPlan {
    pub def: Arc<MixDef>,
    /// Value units read, in the order of the definition's value slots' `dep`.
    pub units: Vec<u32>,
    /// Mix units read, in the order of `MixSrc::Ext::dep`.
    pub mixes: Vec<u32>,
    pub params: Vec<String>,
    /// Series whose mixes this unit computes (member order).
    pub series: Vec<u32>,
}

/// A router with class routes, for `router_class_unrouted`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassRouterInfo {
    pub router: String,
    pub src: u32,
    /// Classes (index `k` = `_unattributed`) that no route takes.
    pub dropped: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClassPlan {
    /// Declared class ids.
    pub ids: Vec<String>,
    pub units: Vec<MixUnitPlan>,
    /// Per series: the mix unit and output holding its mix (None: not classed).
    pub series_mix: Vec<Option<(u32, u16)>>,
    /// Value units and mix units, each after everything it reads.
    pub order: Vec<KeyNode>,
    pub routers: Vec<ClassRouterInfo>,
}

impl ClassPlan {
    pub fn k(&self) -> usize {
        self.ids.len()
    }

    /// The classes whose id matches `glob` (`model::series::glob`): declared classes in order,
    /// then `_unattributed` when the glob matches it. The one selection of classes by pattern,
    /// for queries and watch streams.
    pub fn matching(&self, glob: &str) -> Vec<ClassId> {
        let matches = |id: &str| crate::model::series::glob(glob, id);
        let mut out: Vec<ClassId> = (0..self.k()).filter(|i| matches(&self.ids[*i])).map(ClassId::Declared).collect();
        if matches(crate::model::doc::UNATTRIBUTED) {
            out.push(ClassId::Unattributed);
        }
        out
    }

    /// Value units and mix units needed for the mixes of `series` and the values of `units`,
    /// in evaluation order.
    pub fn closure(&self, plan_units: &[UnitPlan], units: &[u32], series: &[u32]) -> Vec<KeyNode> {
        let nu = plan_units.len();
        let mut need_u = vec![false; nu];
        let mut need_m = vec![false; self.units.len()];
        let mut stack: Vec<KeyNode> = units.iter().map(|u| KeyNode::Unit(*u)).collect();
        stack.extend(series.iter().filter_map(|s| self.series_mix[*s as usize]).map(|(m, _)| KeyNode::Mix(m)));
        while let Some(n) = stack.pop() {
            match n {
                KeyNode::Unit(u) => {
                    if std::mem::replace(&mut need_u[u as usize], true) {
                        continue;
                    }
                    let p = &plan_units[u as usize];
                    stack.extend(p.deps.iter().map(|d| KeyNode::Unit(*d)));
                    stack.extend(p.mixes.iter().map(|(m, _)| KeyNode::Mix(*m)));
                }
                KeyNode::Mix(m) => {
                    if std::mem::replace(&mut need_m[m as usize], true) {
                        continue;
                    }
                    let p = &self.units[m as usize];
                    stack.extend(p.units.iter().map(|d| KeyNode::Unit(*d)));
                    stack.extend(p.mixes.iter().map(|d| KeyNode::Mix(*d)));
                }
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|n| match n {
                KeyNode::Unit(u) => need_u[*u as usize],
                KeyNode::Mix(m) => need_m[*m as usize],
            })
            .collect()
    }
}

/// Why a per-class id `x@c` (§6.1) of a series `x` of `c` names nothing: `x` carries no class,
/// or `c` is not one of its classes. A message and a help naming what exists; None when `id` is
/// not of that form (no `@`, or `x` is no series of `c`) or names a per-class series. The one
/// wording of these mistakes, for analyses' metrics and series and for queries.
pub fn per_class_mistake(c: &crate::engine::plan::Compiled, id: &str) -> Option<(String, String)> {
    let (base, class) = id.rsplit_once('@')?;
    let s = *c.by_id.get(base)?;
    if !c.is_classed(s) {
        return Some((
            format!("`{base}` carries no class, so `{id}` does not exist (§6.1)"),
            format!("name the total `{base}`, or a series downstream of a classed source"),
        ));
    }
    if c.class_id(class).is_some() {
        return None;
    }
    let mut ids: Vec<&str> = c.classes.as_ref().map_or_else(Vec::new, |cp| cp.ids.iter().map(String::as_str).collect());
    ids.push(crate::model::doc::UNATTRIBUTED);
    let help = match crate::model::doc::closest(class, &ids) {
        Some(n) => format!("did you mean `{base}@{n}`?"),
        None => format!("classes: {}", ids.join(", ")),
    };
    Some((format!("no class `{class}` in `{id}`"), help))
}

/// Share series named by `file:`/`series:` references become input series
/// `<snake(node)>_share_<snake(class)>`. Returns (node id, class) → series id for every
/// series share.
pub(crate) fn add_share_inputs(
    doc: &Document,
    t: &mut Table,
    inputs: &mut BTreeMap<String, Vec<String>>,
) -> FxHashMap<(String, usize), String> {
    let mut out = FxHashMap::default();
    for n in &doc.nodes {
        let Some(mix) = &n.class_mix else { continue };
        for (c, share) in &mix.shares {
            let Share::Series(r) = share else { continue };
            let id = match r {
                SeriesRef::Node(name) => name.clone(),
                SeriesRef::SelfQueue => continue,
                _ => {
                    let id = format!("{}_share_{}", snake(&n.id), snake(&doc.classes[*c].id));
                    let key = r.to_string();
                    inputs.entry(key.clone()).or_default().push(id.clone());
                    if t.add(&n.id, mix.loc.clone(), Body::Input(key), &[(id.clone(), SeriesKind::Const, None)])
                        .is_none()
                    {
                        continue;
                    }
                    id
                }
            };
            out.insert((n.id.clone(), *c), id);
        }
    }
    out
}

/// One read of a weighted mix: series name, lag, coefficient, and whether it is the bare
/// argument of a SHIFT (which reads the initial condition before the start).
type WRead = (String, u32, f64, bool);

/// The reads of an expression with the value each contributes: `x[t]`, `x[t−k]` under SHIFT,
/// `kernel[j]·x[t−j]` under CONV (zero coefficients contribute nothing and are left out).
fn expr_reads(e: &Expr, lag: u32, coef: f64, out: &mut Vec<WRead>) {
    match &e.kind {
        ExprKind::Num(_) | ExprKind::Param(_) => {}
        ExprKind::Ref(name) => out.push((name.clone(), lag, coef, false)),
        ExprKind::Neg(x) => expr_reads(x, lag, coef, out),
        ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => {
            expr_reads(a, lag, coef, out);
            expr_reads(b, lag, coef, out);
        }
        ExprKind::Call(call) => match call {
            Call::Shift { x, lag: k } => {
                let k = lit_u32(&k.value);
                match &x.kind {
                    ExprKind::Ref(name) if k >= 1 => out.push((name.clone(), lag + k, coef, true)),
                    _ => expr_reads(x, lag + k, coef, out),
                }
            }
            Call::Conv { x, kernel, .. } => {
                for (j, kj) in kernel.iter().enumerate() {
                    let kj = match kj.value {
                        LitValue::Num(v) => v,
                        LitValue::Param { .. } => f64::NAN,
                    };
                    if kj != 0.0 {
                        expr_reads(x, lag + j as u32, coef * kj, out);
                    }
                }
            }
            Call::Min(args) | Call::Max(args) => args.iter().for_each(|a| expr_reads(a, lag, coef, out)),
            Call::Clamp(a, b, c) => {
                expr_reads(a, lag, coef, out);
                expr_reads(b, lag, coef, out);
                expr_reads(c, lag, coef, out);
            }
            Call::Mod(a, b) | Call::Step(a, b) => {
                expr_reads(a, lag, coef, out);
                expr_reads(b, lag, coef, out);
            }
            Call::Pulse { amp, .. } => {
                if let Some(a) = amp {
                    expr_reads(a, lag, coef, out);
                }
            }
            Call::Unary(_, x) => expr_reads(x, lag, coef, out),
            Call::InferFromSaturation(..) => {}
        },
    }
}

fn lit_u32(v: &LitValue) -> u32 {
    match v {
        LitValue::Num(x) if x.is_finite() && *x >= 0.0 => x.min(u32::MAX as f64) as u32,
        _ => 0,
    }
}

/// How a definition's mix is computed.
#[derive(Clone, Debug)]
enum How {
    Never,
    Source(ClassMix),
    Weighted(Vec<WRead>),
    Queue { arrivals: Option<String>, overflow_in: Vec<String>, initial: Option<Vec<f64>> },
    Router { src: String, router: String },
}

/// Normalised literal shares of an `initialClassMix` (None: no positive share).
fn initial_mix(m: &ClassMix, k: usize) -> Option<Vec<f64>> {
    let mut v = vec![0.0; k];
    let mut sum = 0.0;
    for (c, s) in &m.shares {
        if let Share::Num(Num::Lit(x)) = s {
            v[*c] += x;
            sum += x;
        }
    }
    (sum > 0.0 && sum.is_finite()).then(|| v.into_iter().map(|x| x / sum).collect())
}

/// Per router target: per class (and `_unattributed` last) the fraction of the class's flow it
/// receives; and the classes the router drops.
fn route_fractions(routes: &[crate::model::doc::Route], k: usize) -> (BTreeMap<String, Vec<f64>>, Vec<usize>) {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in routes {
        out.entry(r.target.clone()).or_insert_with(|| vec![0.0; k + 1]);
    }
    let mut dropped = Vec::new();
    let unlisted_total: f64 = routes.iter().filter(|r| r.classes.is_none()).fold(0.0, |a, r| a + r.weight);
    for c in 0..=k {
        let listing: Vec<&crate::model::doc::Route> =
            routes.iter().filter(|r| r.classes.as_ref().is_some_and(|cs| c < k && cs.contains(&c))).collect();
        let (set, total): (Vec<&crate::model::doc::Route>, f64) = if listing.is_empty() {
            (routes.iter().filter(|r| r.classes.is_none()).collect(), unlisted_total)
        } else {
            let total = listing.iter().fold(0.0, |a, r| a + r.weight);
            (listing, total)
        };
        if set.is_empty() || total <= 0.0 {
            dropped.push(c);
            continue;
        }
        for r in set {
            if let Some(f) = out.get_mut(&r.target) {
                f[c] += r.weight / total;
            }
        }
    }
    (out, dropped)
}

/// Plans the class mixes of a compiled model. `units` are the value units; routers with class
/// routes get their mix reads here.
pub(crate) fn plan(
    doc: &Document,
    t: &Table,
    units: &mut [UnitPlan],
    topo: &TopologyPlan,
    share_series: &FxHashMap<(String, usize), String>,
) -> Result<ClassPlan, Diagnostics> {
    let k = doc.classes.len();
    let bins = doc.grid.bins;
    let mut diags: Vec<Diagnostic> = Vec::new();
    let node_by_id: FxHashMap<&str, &crate::model::doc::NodeSpec> =
        doc.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let topo_by_id: FxHashMap<&str, &crate::model::doc::TopoNode> =
        doc.topology.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let observed: rustc_hash::FxHashSet<&str> =
        topo.nodes.iter().filter(|n| !n.queue_synthesised).filter_map(|n| n.queue.as_deref()).collect();

    // How each definition's mix is computed.
    let n_defs = t.defs.len();
    let mut def_of = vec![0usize; t.series.len()];
    for (d, def) in t.defs.iter().enumerate() {
        for &s in &def.outputs {
            def_of[s as usize] = d;
        }
    }
    let mut how: Vec<How> = Vec::with_capacity(n_defs);
    for d in &t.defs {
        let info = &t.series[d.outputs[0] as usize];
        let doc_node = (info.owner == info.id
            && matches!(info.kind, SeriesKind::Const | SeriesKind::Expr | SeriesKind::Pmf | SeriesKind::Router))
        .then(|| node_by_id.get(info.id.as_str()).copied())
        .flatten();
        if let Some(mix) = doc_node.and_then(|n| n.class_mix.clone()) {
            how.push(How::Source(mix));
            continue;
        }
        if observed.contains(info.id.as_str()) || info.inference.is_some() {
            how.push(How::Never);
            continue;
        }
        let h = match &d.body {
            Body::Values(_) | Body::Input(_) | Body::Const(_) => How::Never,
            Body::Alias { name, .. } => How::Weighted(vec![(name.clone(), 0, 1.0, false)]),
            Body::Expr { expr, .. } => {
                let mut r = Vec::new();
                expr_reads(expr, 0, 1.0, &mut r);
                How::Weighted(r)
            }
            Body::RouterTarget { src, .. } => {
                let class_routed = node_by_id.get(src.as_str()).is_some_and(|n| {
                    matches!(&n.def, crate::model::doc::NodeDef::Router { routes, .. } if routes.iter().any(|r| r.classes.is_some()))
                });
                if class_routed {
                    How::Router { src: src.clone(), router: src.clone() }
                } else {
                    How::Weighted(vec![(src.clone(), 0, 1.0, false)])
                }
            }
            Body::Topo(b) => match b {
                TopoBody::Queue { arrivals, overflow_in, .. } => How::Queue {
                    arrivals: arrivals.clone(),
                    overflow_in: overflow_in.clone(),
                    initial: topo_by_id
                        .get(info.owner.as_str())
                        .and_then(|n| n.initial_class_mix.as_ref())
                        .and_then(|m| initial_mix(m, k)),
                },
                TopoBody::RetryEcho { src, kernel, .. } => How::Weighted(
                    kernel
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| **c != 0.0)
                        .map(|(j, c)| (src.clone(), j as u32, *c, false))
                        .collect(),
                ),
                TopoBody::Edge { src, lag, .. } => How::Weighted(vec![(src.clone(), *lag, 1.0, false)]),
                TopoBody::Ratio { .. } => How::Never,
            },
        };
        how.push(h);
    }

    // Which series are classed: propagate in unit order until nothing changes, then let
    // unclassed `served`/`errors` borrow the mix of the queue they drain (or the arrivals of a
    // service), first declaration winning, and propagate again.
    let def_order: Vec<usize> = {
        let mut v: Vec<usize> = (0..n_defs).collect();
        v.sort_by_key(|d| {
            let s = &t.series[t.defs[*d].outputs[0] as usize];
            (s.unit, s.output)
        });
        v
    };
    let lookup = |name: &str| t.lookup(name);
    let mut own_mix: Vec<bool> = vec![false; n_defs];
    // Series → the definition whose mix it has (its own, or a borrowed one).
    let mut mix_def: Vec<Option<usize>> = vec![None; t.series.len()];
    let mut borrowed = vec![false; n_defs];
    loop {
        let mut changed = true;
        while changed {
            changed = false;
            for &d in &def_order {
                if own_mix[d] || borrowed[d] {
                    continue;
                }
                let classed = |name: &str| lookup(name).is_some_and(|s| mix_def[s as usize].is_some());
                let yes = match &how[d] {
                    How::Never => false,
                    How::Source(_) => true,
                    How::Weighted(reads) => reads.iter().any(|r| classed(&r.0)),
                    How::Queue { arrivals, overflow_in, initial } => {
                        initial.is_some()
                            || arrivals.as_deref().is_some_and(classed)
                            || overflow_in.iter().any(|o| classed(o))
                    }
                    How::Router { src, .. } => classed(src),
                };
                if yes {
                    own_mix[d] = true;
                    for &s in &t.defs[d].outputs {
                        mix_def[s as usize] = Some(d);
                    }
                    changed = true;
                }
            }
        }
        let mut more = false;
        for n in &topo.nodes {
            for role in [Role::Served, Role::Errors] {
                let Some(s) = n.roles.get(&role).and_then(|id| lookup(id)) else { continue };
                let sd = def_of[s as usize];
                if mix_def[s as usize].is_some() || borrowed[sd] || matches!(how[sd], How::Source(_)) {
                    continue;
                }
                let from = if n.kind.is_queue() && n.queue_synthesised {
                    n.queue.as_deref().and_then(lookup)
                } else if n.kind == TopoKind::Service {
                    n.roles.get(&Role::Arrivals).and_then(|a| lookup(a))
                } else {
                    None
                };
                if let Some(f) = from
                    && let Some(fd) = mix_def[f as usize]
                {
                    mix_def[s as usize] = Some(fd);
                    borrowed[sd] = true;
                    more = true;
                }
            }
        }
        if !more {
            break;
        }
    }

    // Routers with class routes need a classed source.
    for (d, h) in how.iter().enumerate() {
        if let How::Router { src, router } = h
            && lookup(src).is_none_or(|s| mix_def[s as usize].is_none())
        {
            diags.push(
                t.defs[d]
                    .loc
                    .diag(
                        "unclassed_router",
                        format!("router `{router}` routes by class, but its input `{src}` carries no class"),
                    )
                    .with_help(
                        "give the node feeding it (or one upstream) a `classMix`, or remove the routes' `classes`",
                    ),
            );
        }
    }
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }

    // Mix nodes: the definitions with a mix of their own, and their reads.
    let nodes: Vec<usize> = def_order.iter().copied().filter(|d| own_mix[*d]).collect();
    let mut node_of = vec![usize::MAX; n_defs];
    for (i, &d) in nodes.iter().enumerate() {
        node_of[d] = i;
    }
    let mix_node = |name: &str| -> Option<usize> { lookup(name).and_then(|s| mix_def[s as usize]).map(|d| node_of[d]) };
    let mut same: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut all: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, &d) in nodes.iter().enumerate() {
        let mut reads: Vec<(usize, bool)> = Vec::new();
        match &how[d] {
            How::Never | How::Source(_) => {}
            How::Weighted(rs) => reads.extend(rs.iter().filter_map(|r| mix_node(&r.0).map(|n| (n, r.1 == 0)))),
            How::Queue { arrivals, overflow_in, .. } => {
                reads.extend(arrivals.iter().chain(overflow_in).filter_map(|a| mix_node(a).map(|n| (n, true))));
            }
            How::Router { src, .. } => reads.extend(mix_node(src).map(|n| (n, true))),
        }
        for (n, same_bin) in reads {
            if n == i {
                if same_bin {
                    same[i].push(n);
                }
                continue;
            }
            if same_bin {
                same[i].push(n);
            }
            all[i].push(n);
        }
    }
    for v in same.iter_mut().chain(all.iter_mut()) {
        v.sort_unstable();
        v.dedup();
    }
    if let Some(cycle) = find_cycle(&same) {
        let names: Vec<&str> =
            cycle.iter().map(|&n| t.series[t.defs[nodes[n]].outputs[0] as usize].id.as_str()).collect();
        return Err(t.defs[nodes[cycle[0]]]
            .loc
            .diag("class_cycle", format!("class mixes form a same-bin cycle: {}", names.join(" -> ")))
            .with_help("a served or errors series takes the mix of the queue it drains; read it with SHIFT(x, 1) where it feeds back")
            .into());
    }
    let sccs = tarjan(&all);
    let mut unit_of_node = vec![(0u32, 0u16); nodes.len()];
    let mut ordered_sccs = Vec::with_capacity(sccs.len());
    for (m, scc) in sccs.iter().enumerate() {
        let ordered = order_members(scc, &same);
        for (o, &n) in ordered.iter().enumerate() {
            unit_of_node[n] = (m as u32, o as u16);
        }
        ordered_sccs.push(ordered);
    }
    let mut series_mix: Vec<Option<(u32, u16)>> = vec![None; t.series.len()];
    for (s, d) in mix_def.iter().enumerate() {
        if let Some(d) = d {
            series_mix[s] = Some(unit_of_node[node_of[*d]]);
        }
    }

    // Lower each mix unit.
    let mut mix_units: Vec<MixUnitPlan> = Vec::with_capacity(ordered_sccs.len());
    let mut router_fracs: Vec<(usize, u32, Vec<f64>)> = Vec::new();
    let mut routers: Vec<ClassRouterInfo> = Vec::new();
    for (m, ordered) in ordered_sccs.iter().enumerate() {
        let mut l = Lower::global(t);
        let mut mix_srcs: Vec<MixSrc> = Vec::new();
        let mut mix_slot_of: FxHashMap<(u32, u16), u16> = FxHashMap::default();
        let mut mix_deps: Vec<u32> = Vec::new();
        let mut mslot = |s: u32| -> u16 {
            let (mu, o) = series_mix[s as usize].unwrap_or((0, 0));
            if let Some(&slot) = mix_slot_of.get(&(mu, o)) {
                return slot;
            }
            let src = if mu == m as u32 {
                MixSrc::Own(o)
            } else {
                let dep = match mix_deps.iter().position(|x| *x == mu) {
                    Some(p) => p,
                    None => {
                        mix_deps.push(mu);
                        mix_deps.len() - 1
                    }
                };
                MixSrc::Ext { dep: dep as u16, output: o }
            };
            let slot = mix_srcs.len() as u16;
            mix_srcs.push(src);
            mix_slot_of.insert((mu, o), slot);
            slot
        };
        let mut members = Vec::with_capacity(ordered.len());
        let mut series = Vec::with_capacity(ordered.len());
        for &n in ordered {
            let d = nodes[n];
            let def = &t.defs[d];
            series.push(def.outputs[0]);
            let member = match &how[d] {
                How::Source(mix) => {
                    let node = &t.series[def.outputs[0] as usize].owner;
                    let shares = mix
                        .shares
                        .iter()
                        .map(|(c, s)| {
                            let slot = match s {
                                Share::Num(x) => ShareSlot::Num(l.num(x)),
                                Share::Series(_) => match share_series.get(&(node.clone(), *c)) {
                                    Some(id) => ShareSlot::Series(l.src_named(id)),
                                    None => ShareSlot::Num(NumSlot::Lit(Bits::new(f64::NAN))),
                                },
                            };
                            (*c as u16, slot)
                        })
                        .collect();
                    MixMember::Source { shares }
                }
                How::Weighted(rs) => {
                    let mut reads = Vec::new();
                    for (name, lag, coef, bare) in rs {
                        let Some(s) = lookup(name) else { continue };
                        if series_mix[s as usize].is_none() {
                            continue;
                        }
                        let init = if *bare {
                            queue_initial_mix(&how, &def_of, t, s).map(|m| {
                                let v = t.series[s as usize].initial.clone().unwrap_or(Num::Lit(0.0));
                                (l.num(&v), m.into_iter().map(Bits::new).collect())
                            })
                        } else {
                            None
                        };
                        reads.push(MixRead { val: l.src(s), lag: *lag, coef: Bits::new(*coef), mix: mslot(s), init });
                    }
                    MixMember::Weighted { reads }
                }
                How::Queue { arrivals, overflow_in, initial } => {
                    let Body::Topo(b) = &def.body else { unreachable_queue() };
                    let MemberDef::Queue(q) = b.lower(&mut l, &def.outputs) else { unreachable_queue() };
                    let classed = |name: &str| lookup(name).filter(|s| series_mix[*s as usize].is_some());
                    let arrivals = arrivals.as_deref().map(|a| classed(a).map(&mut mslot));
                    let overflow = overflow_in.iter().map(|o| classed(o).map(&mut mslot)).collect();
                    let own = unit_of_node[n].1;
                    MixMember::Queue {
                        q,
                        arrivals,
                        overflow,
                        own,
                        initial: initial.as_ref().map(|v| v.iter().map(|x| Bits::new(*x)).collect()),
                    }
                }
                How::Router { src, router } => {
                    let s = lookup(src).unwrap_or(0);
                    let routes = match node_by_id.get(router.as_str()).map(|n| &n.def) {
                        Some(crate::model::doc::NodeDef::Router { routes, .. }) => routes.clone(),
                        _ => Vec::new(),
                    };
                    let (fracs, dropped) = route_fractions(&routes, k);
                    let target = &t.series[def.outputs[0] as usize].id;
                    let frac = fracs.get(target).cloned().unwrap_or_else(|| vec![0.0; k + 1]);
                    if !routers.iter().any(|r| &r.router == router) {
                        routers.push(ClassRouterInfo { router: router.clone(), src: s, dropped });
                    }
                    router_fracs.push((d, s, frac.clone()));
                    MixMember::Router { src: l.src(s), mix: mslot(s), frac: frac.into_iter().map(Bits::new).collect() }
                }
                How::Never => unreachable_queue(),
            };
            members.push(member);
        }
        let (vals, units_read, params) = l.finish();
        let def = MixDef::new(bins, k as u16, vals, mix_srcs, members);
        mix_units.push(MixUnitPlan { def: Arc::new(def), units: units_read, mixes: mix_deps, params, series });
    }

    // Routers with class routes: their targets' values read the source's mix.
    for (d, src, frac) in router_fracs {
        let out = t.defs[d].outputs[0];
        let u = t.series[out as usize].unit as usize;
        let Some(src_mix) = series_mix[src as usize] else { continue };
        let plan = &mut units[u];
        if plan.def.members.len() != 1 {
            return Err(t.defs[d]
                .loc
                .diag("class_route_loop", "a router with class routes cannot be part of a feedback loop")
                .with_help("route by class outside the loop, or remove the routes' `classes`")
                .into());
        }
        let members: Vec<Member> = plan
            .def
            .members
            .iter()
            .map(|m| match &m.def {
                MemberDef::RouterTarget { src, .. } => Member {
                    def: MemberDef::ClassRouter {
                        src: *src,
                        mix: 0,
                        frac: frac.iter().map(|x| Bits::new(*x)).collect(),
                    },
                    outputs: m.outputs.clone(),
                },
                _ => m.clone(),
            })
            .collect();
        let def = (*plan.def).clone().with_mixes(members, vec![src_mix.1]);
        plan.def = Arc::new(def);
        plan.mixes = vec![src_mix];
    }

    // One order over value units and mix units; a cycle means a class route feeds back into
    // its own source's mix.
    let nu = units.len();
    let mut g: Vec<Vec<usize>> = vec![Vec::new(); nu + mix_units.len()];
    for (u, p) in units.iter().enumerate() {
        g[u].extend(p.deps.iter().map(|d| *d as usize));
        g[u].extend(p.mixes.iter().map(|(m, _)| nu + *m as usize));
    }
    for (m, p) in mix_units.iter().enumerate() {
        g[nu + m].extend(p.units.iter().map(|d| *d as usize));
        g[nu + m].extend(p.mixes.iter().map(|d| nu + *d as usize));
    }
    if let Some(cycle) = find_cycle(&g) {
        let router = cycle.iter().find_map(|&n| (n < nu && !units[n].mixes.is_empty()).then_some(n));
        let loc: Loc = router
            .and_then(|u| units[u].series.first())
            .map(|s| t.defs[def_of[*s as usize]].loc.clone())
            .unwrap_or_default();
        return Err(loc
            .diag("class_route_loop", "a router with class routes feeds back into its own input's class mix")
            .with_help("route by class outside feedback loops, or remove the routes' `classes`")
            .into());
    }
    let order: Vec<KeyNode> = tarjan(&g)
        .into_iter()
        .map(|scc| {
            let n = scc[0];
            if n < nu { KeyNode::Unit(n as u32) } else { KeyNode::Mix((n - nu) as u32) }
        })
        .collect();
    Ok(ClassPlan {
        ids: doc.classes.iter().map(|c| c.id.clone()).collect(),
        units: mix_units,
        series_mix,
        order,
        routers,
    })
}

/// The initial mix of a synthesised queue series with `initialClassMix`.
fn queue_initial_mix(how: &[How], def_of: &[usize], t: &Table, s: u32) -> Option<Vec<f64>> {
    match &how[def_of[s as usize]] {
        How::Queue { initial: Some(m), .. } if t.series[s as usize].kind == SeriesKind::Queue => Some(m.clone()),
        _ => None,
    }
}

fn unreachable_queue() -> ! {
    unreachable!("the class plan only builds members for classed definitions of their kind")
}
