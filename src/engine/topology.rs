//! Topology semantics (§6): roles as series references, queue synthesis with WIP limits,
//! overflow routing, dispatch schedules and shared-capacity constraints, retry echo, derived
//! metrics and edge flows. Every synthesised series becomes an ordinary definition in the plan,
//! so expressions may read it, feedback loops may pass through it, and it is memoised like any
//! node.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::cexpr::{Bits, CExpr, NumSlot};
use crate::engine::plan::{Body, Lower, SeriesKind, Table};
use crate::engine::unit::{ConstraintDef, DispatchDef, MemberDef, Operand, QueueDef};
use crate::expr::ast::ReadKind;
use crate::model::doc::{Document, Loc, NodeDef, Num, NumOrRef, Role, TopoKind, TopoNode};
use crate::model::series::SeriesRef;

/// `OrderService → order_service`, `DLQ → dlq`, `HTTPService → http_service`, `QueueA → queue_a`.
pub fn snake(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let mut out = String::with_capacity(id.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let boundary =
                prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A limit: a number (possibly a parameter) or a series.
#[derive(Clone, Debug)]
pub(crate) enum Limit {
    Num(Num),
    Series(String),
}

/// Synthesised definitions, with references by series name until lowering.
#[derive(Clone, Debug)]
pub(crate) enum TopoBody {
    Queue {
        loc: Loc,
        arrivals: Option<String>,
        outflow: Option<String>,
        loss: Option<String>,
        overflow_in: Vec<String>,
        initial: Num,
        limit: Option<Limit>,
        dispatch: Option<(u32, u32, Option<String>)>,
        constraints: Vec<(String, Vec<String>, usize)>,
    },
    RetryEcho {
        loc: Loc,
        src: String,
        kernel: Vec<f64>,
    },
    Ratio {
        loc: Loc,
        num: String,
        den: String,
        den2: Option<Operandish>,
        scale: Option<f64>,
    },
    Edge {
        loc: Loc,
        src: String,
        lag: u32,
        weight: f64,
        total: f64,
        multiplier: f64,
    },
}

/// A number or a series name (for `parallelism`).
#[derive(Clone, Debug)]
pub enum Operandish {
    Num(f64),
    Series(String),
}

impl TopoBody {
    /// What the definition reads, by name, with the read kind.
    pub(crate) fn reads(&self) -> Vec<(String, ReadKind, Loc)> {
        let same = |n: &str, loc: &Loc| (n.to_string(), ReadKind::SameBin, loc.clone());
        match self {
            TopoBody::Queue { loc, arrivals, outflow, loss, overflow_in, limit, dispatch, constraints, .. } => {
                let mut v: Vec<_> =
                    arrivals.iter().chain(outflow).chain(loss).chain(overflow_in).map(|n| same(n, loc)).collect();
                if let Some(Limit::Series(s)) = limit {
                    v.push(same(s, loc));
                }
                if let Some((_, _, Some(c))) = dispatch {
                    v.push(same(c, loc));
                }
                for (cap, demands, _) in constraints {
                    v.push(same(cap, loc));
                    v.extend(demands.iter().map(|d| same(d, loc)));
                }
                v
            }
            TopoBody::RetryEcho { loc, src, kernel } => {
                let lagged = kernel.first().is_none_or(|k| *k == 0.0);
                vec![(src.clone(), if lagged { ReadKind::Lagged } else { ReadKind::SameBin }, loc.clone())]
            }
            TopoBody::Ratio { loc, num, den, den2, .. } => {
                let mut v = vec![same(num, loc), same(den, loc)];
                if let Some(Operandish::Series(s)) = den2 {
                    v.push(same(s, loc));
                }
                v
            }
            TopoBody::Edge { loc, src, lag, .. } => {
                vec![(src.clone(), if *lag >= 1 { ReadKind::Lagged } else { ReadKind::SameBin }, loc.clone())]
            }
        }
    }

    pub(crate) fn is_sequential(&self) -> bool {
        matches!(self, TopoBody::Queue { .. })
    }

    pub(crate) fn lower(&self, l: &mut Lower<'_>, outputs: &[u32]) -> MemberDef {
        match self {
            TopoBody::Queue { arrivals, outflow, loss, overflow_in, initial, limit, dispatch, constraints, .. } => {
                let own = l.src(outputs[0]);
                let q = QueueDef {
                    own,
                    arrivals: arrivals.as_deref().map(|n| l.src_named(n)),
                    outflow: outflow.as_deref().map(|n| l.src_named(n)),
                    loss: loss.as_deref().map(|n| l.src_named(n)),
                    overflow_in: overflow_in.iter().map(|n| l.src_named(n)).collect(),
                    initial: l.num(initial),
                    limit: limit.as_ref().map(|lim| match lim {
                        Limit::Num(n) => Operand::Num(l.num(n)),
                        Limit::Series(s) => Operand::Src(l.src_named(s)),
                    }),
                    dispatch: dispatch.as_ref().map(|(period, phase, cap)| DispatchDef {
                        period: *period,
                        phase: *phase,
                        capacity: cap.as_deref().map(|c| l.src_named(c)),
                    }),
                    constraints: constraints
                        .iter()
                        .map(|(cap, demands, me)| ConstraintDef {
                            cap: l.src_named(cap),
                            demands: demands.iter().map(|d| l.src_named(d)).collect(),
                            me: *me,
                        })
                        .collect(),
                };
                MemberDef::Queue(Box::new(q))
            }
            TopoBody::RetryEcho { src, kernel, .. } => MemberDef::Expr(CExpr::Conv {
                x: Box::new(CExpr::Src(l.src_named(src))),
                kernel: kernel.iter().map(|k| Bits::new(*k)).collect(),
            }),
            TopoBody::Ratio { num, den, den2, scale, .. } => MemberDef::Ratio {
                num: l.src_named(num),
                den: Operand::Src(l.src_named(den)),
                den2: den2.as_ref().map(|d| match d {
                    Operandish::Num(v) => Operand::Num(NumSlot::Lit(Bits::new(*v))),
                    Operandish::Series(s) => Operand::Src(l.src_named(s)),
                }),
                scale: scale.map(Bits::new),
            },
            TopoBody::Edge { src, lag, weight, total, multiplier, .. } => MemberDef::EdgeFlow {
                src: l.src_named(src),
                lag: *lag,
                weight: Bits::new(*weight),
                total: Bits::new(*total),
                multiplier: Bits::new(*multiplier),
            },
        }
    }
}

/// What the rest of the engine needs to know about one topology node after compilation.
#[derive(Clone, Debug, PartialEq)]
pub struct TopoNodePlan {
    pub id: String,
    pub kind: TopoKind,
    pub group: Option<String>,
    pub ui: Option<serde_json::Value>,
    pub semantics: serde_json::Map<String, serde_json::Value>,
    /// Role → series id, after synthesis (queueDepth points at the observed or synthesised queue).
    pub roles: BTreeMap<Role, String>,
    pub queue: Option<String>,
    pub queue_synthesised: bool,
    pub overflow: Option<String>,
    /// Derived metric name (`utilization`, …) → series id.
    pub derived: BTreeMap<String, String>,
    pub initial_queue: Option<Num>,
    pub capacity_times_parallelism: Option<(String, Operandish)>,
    pub sla_min: Option<f64>,
}

impl PartialEq for Operandish {
    fn eq(&self, other: &Operandish) -> bool {
        match (self, other) {
            (Operandish::Num(a), Operandish::Num(b)) => a.to_bits() == b.to_bits(),
            (Operandish::Series(a), Operandish::Series(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EdgePlan {
    pub from: String,
    pub to: String,
    pub weight: f64,
    pub series: String,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct TopologyPlan {
    pub nodes: Vec<TopoNodePlan>,
    pub edges: Vec<EdgePlan>,
}

/// The series a conservation check (§7.1) compares.
#[derive(Clone, Debug, PartialEq)]
pub struct ConservationRoles {
    pub arrivals: String,
    pub served: String,
    pub errors: Option<String>,
    pub queue: String,
    pub initial: Option<Num>,
}

impl TopologyPlan {
    pub fn node(&self, id: &str) -> Option<&TopoNodePlan> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn conservation_roles(&self, id: &str) -> Option<ConservationRoles> {
        let n = self.node(id)?;
        Some(ConservationRoles {
            arrivals: n.roles.get(&Role::Arrivals)?.clone(),
            served: n.roles.get(&Role::Served)?.clone(),
            errors: n.roles.get(&Role::Errors).cloned(),
            queue: n.queue.clone()?,
            initial: n.initial_queue.clone(),
        })
    }
}

/// Adds every topology definition to the table. Errors go to `t.diags`.
pub(crate) fn add_topology(doc: &Document, t: &mut Table, inputs: &mut BTreeMap<String, Vec<String>>) -> TopologyPlan {
    let topo = &doc.topology;
    let mut plan = TopologyPlan::default();
    let ids: BTreeSet<&str> = topo.nodes.iter().map(|n| n.id.as_str()).collect();
    let constraint_ids: BTreeSet<&str> = topo.constraints.iter().map(|c| c.id.as_str()).collect();
    let node_initial = |id: &str| {
        doc.nodes.iter().find(|n| n.id == id).and_then(|n| match &n.def {
            NodeDef::Expr { initial, .. } => initial.clone(),
            _ => None,
        })
    };
    let node_defined = |t: &Table, id: &str| t.lookup(id).is_some();

    // Input series referenced directly from roles become visible series `<snake>_<role>`.
    let mut role_series = |t: &mut Table, n: &TopoNode, role: &str, r: &SeriesRef| -> Option<String> {
        match r {
            SeriesRef::Node(id) => Some(id.clone()),
            SeriesRef::SelfQueue => None,
            SeriesRef::File(_) | SeriesRef::Stored(_) | SeriesRef::Snapshot(_) => {
                let id = format!("{}_{}", snake(&n.id), snake(role));
                let key = r.to_string();
                inputs.entry(key.clone()).or_default().push(id.clone());
                t.add(&n.id, n.loc.clone(), Body::Input(key), &[(id.clone(), SeriesKind::Const, None)])?;
                Some(id)
            }
        }
    };

    // Pass 1: roles and queue names.
    struct Pending {
        roles: BTreeMap<Role, String>,
        queue: Option<String>,
        synth: bool,
        limit: Option<Limit>,
        parallelism: Option<Operandish>,
    }
    let mut pending: Vec<Pending> = Vec::new();
    for n in &topo.nodes {
        let mut roles = BTreeMap::new();
        for (role, r) in &n.semantics.roles {
            if let Some(name) = role_series(t, n, role.name(), r) {
                roles.insert(*role, name);
            }
        }
        for c in &n.constraints {
            if !constraint_ids.contains(c.as_str()) {
                t.diags.push(n.loc.diag(
                    "unknown_reference",
                    format!(
                        "topology node `{}` lists constraint `{c}`, which topology.constraints does not declare",
                        n.id
                    ),
                ));
            }
        }
        let parallelism = match &n.semantics.parallelism {
            Some(NumOrRef::Num(v)) => Some(Operandish::Num(*v)),
            Some(NumOrRef::Ref(r)) => role_series(t, n, "parallelism", r).map(Operandish::Series),
            None => None,
        };
        let mut queue = None;
        let mut synth = false;
        if n.kind.is_queue() {
            let qd = n.semantics.roles.get(&Role::QueueDepth);
            match qd {
                None | Some(SeriesRef::SelfQueue) => {
                    queue = Some(format!("{}_queue", snake(&n.id)));
                    synth = true;
                }
                Some(SeriesRef::Node(name)) if !node_defined(t, name) => {
                    queue = Some(name.clone());
                    synth = true;
                }
                Some(_) => queue = roles.get(&Role::QueueDepth).cloned(),
            }
        } else if let Some(q) = roles.get(&Role::QueueDepth) {
            queue = Some(q.clone());
        }
        // An observed queue's SHIFT initial condition; a conflicting pair is an error.
        if let (Some(q), false) = (&queue, synth) {
            let ic = n.initial_queue.clone();
            match (node_initial(q), ic) {
                (Some(Num::Lit(a)), Some(Num::Lit(b))) if a.to_bits() != b.to_bits() => {
                    t.diags.push(n.loc.diag("initial_conflict", format!("queue `{q}` has initial {a} but topology node `{}` gives initialCondition.queueDepth {b}", n.id)).with_help("keep one of them, or make them equal"));
                }
                (None, Some(ic)) => {
                    if let Some(s) = t.lookup(q) {
                        t.series[s as usize].initial = Some(ic);
                    }
                }
                _ => {}
            }
        }
        let limit = match (&n.wip_limit_series, &n.wip_limit) {
            (Some(r), _) => role_series(t, n, "wipLimit", r).map(Limit::Series),
            (None, Some(v)) => Some(Limit::Num(v.clone())),
            (None, None) => None,
        };
        if limit.is_some() && !synth {
            t.diags.push(
                n.loc
                    .diag(
                        "wip_without_queue",
                        format!("topology node `{}` has a WIP limit but no synthesised queue", n.id),
                    )
                    .with_help(
                        "WIP limits apply to queue kinds whose queueDepth is absent, `self`, or a name no node defines",
                    ),
            );
        }
        pending.push(Pending { roles, queue, synth, limit, parallelism });
    }

    // Overflow routing: targets must have a synthesised queue, and declarations must not cycle.
    let index: BTreeMap<&str, usize> = topo.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut routed_in: Vec<Vec<String>> = vec![Vec::new(); topo.nodes.len()];
    for (i, n) in topo.nodes.iter().enumerate() {
        let Some(target) = n.wip_overflow.as_deref() else { continue };
        if target.eq_ignore_ascii_case("loss") {
            continue;
        }
        match index.get(target) {
            None => t.diags.push(
                n.loc
                    .diag(
                        "unknown_reference",
                        format!("wipOverflow of `{}` names `{target}`, which is not a topology node", n.id),
                    )
                    .with_help("use `loss` or the id of a queue-kind topology node"),
            ),
            Some(&j) if !pending[j].synth => t.diags.push(n.loc.diag(
                "bad_overflow",
                format!("wipOverflow target `{target}` has no synthesised queue to receive the overflow"),
            )),
            Some(&j) => {
                if pending[i].limit.is_some() && pending[i].synth {
                    routed_in[j].push(overflow_name(&n.id));
                }
            }
        }
        // Follow the chain of declarations from this node; coming back is a cycle.
        let mut seen = vec![n.id.as_str()];
        let mut cur = target;
        while let Some(&j) = index.get(cur) {
            if seen.contains(&cur) {
                seen.push(cur);
                t.diags.push(
                    n.loc.diag(
                        "overflow_cycle",
                        format!("wipOverflow declarations form a cycle: {}", seen.join(" -> ")),
                    ),
                );
                break;
            }
            seen.push(cur);
            match topo.nodes[j].wip_overflow.as_deref() {
                Some(next) if !next.eq_ignore_ascii_case("loss") => cur = next,
                _ => break,
            }
        }
    }

    // Pass 2: synthesised definitions and the plan.
    for (i, n) in topo.nodes.iter().enumerate() {
        let p = &pending[i];
        let mut node_plan = TopoNodePlan {
            id: n.id.clone(),
            kind: n.kind,
            group: n.group.clone(),
            ui: n.ui.clone(),
            semantics: n.semantics.raw.clone(),
            roles: p.roles.clone(),
            queue: p.queue.clone(),
            queue_synthesised: p.synth,
            overflow: None,
            derived: BTreeMap::new(),
            initial_queue: n.initial_queue.clone(),
            capacity_times_parallelism: None,
            sla_min: n.semantics.sla_min,
        };
        if let Some(q) = &p.queue {
            node_plan.roles.insert(Role::QueueDepth, q.clone());
        }
        if p.synth
            && let Some(q) = &p.queue
        {
            let dispatch = n.dispatch.as_ref().and_then(|d| {
                let cap = match &d.capacity {
                    Some(r) => Some(role_series(t, n, "dispatchCapacity", r)?),
                    None => None,
                };
                let phase = d.phase.rem_euclid(d.period as i64) as u32;
                Some((d.period, phase, cap))
            });
            let mut constraints = Vec::new();
            for cid in &n.constraints {
                let Some(c) = topo.constraints.iter().find(|c| &c.id == cid) else { continue };
                let Some(cap) = c.served.as_ref().and_then(|r| role_series(t, n, &format!("{cid}Capacity"), r)) else {
                    t.diags.push(c.loc.diag(
                        "missing_key",
                        format!("constraint `{cid}` needs semantics.served (the shared capacity series)"),
                    ));
                    continue;
                };
                let members: Vec<usize> = topo
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.constraints.contains(cid))
                    .map(|(k, _)| k)
                    .collect();
                let mut demands = Vec::new();
                let mut me = 0;
                for k in members {
                    if k == i {
                        me = demands.len();
                    }
                    match pending[k].roles.get(&Role::Arrivals) {
                        Some(a) => demands.push(a.clone()),
                        None => t.diags.push(topo.nodes[k].loc.diag(
                            "missing_key",
                            format!("constraint `{cid}` member `{}` has no arrivals (its demand)", topo.nodes[k].id),
                        )),
                    }
                }
                constraints.push((cap, demands, me));
            }
            let outflow = p.roles.get(&Role::Served).or_else(|| p.roles.get(&Role::Capacity)).cloned();
            let body = TopoBody::Queue {
                loc: n.loc.clone(),
                arrivals: p.roles.get(&Role::Arrivals).cloned(),
                outflow,
                loss: p.roles.get(&Role::Errors).cloned(),
                overflow_in: routed_in[i].clone(),
                initial: n.initial_queue.clone().unwrap_or(Num::Lit(0.0)),
                limit: p.limit.clone(),
                dispatch,
                constraints,
            };
            let mut outs = vec![(q.clone(), SeriesKind::Queue, n.initial_queue.clone())];
            if p.limit.is_some() {
                let o = overflow_name(&n.id);
                node_plan.overflow = Some(o.clone());
                outs.push((o, SeriesKind::Overflow, None));
            }
            t.add(&n.id, n.loc.clone(), Body::Topo(body), &outs);
        }
        // Retry echo.
        if let Some(kernel) = &n.semantics.retry_kernel
            && n.kind.computes()
        {
            let name = match n.semantics.roles.get(&Role::RetryEcho) {
                None => Some(format!("{}_retry_echo", snake(&n.id))),
                Some(SeriesRef::Node(x)) if !node_defined(t, x) => Some(x.clone()),
                Some(_) => None,
            };
            if let Some(name) = name {
                let src = p.roles.get(&Role::Failures).or_else(|| p.roles.get(&Role::Errors)).cloned();
                match src {
                    Some(src) => {
                        let body = TopoBody::RetryEcho { loc: n.loc.clone(), src, kernel: kernel.clone() };
                        t.add(&n.id, n.loc.clone(), Body::Topo(body), &[(name.clone(), SeriesKind::RetryEcho, None)]);
                        node_plan.roles.insert(Role::RetryEcho, name);
                    }
                    None => t.diags.push(
                        n.loc
                            .diag(
                                "missing_key",
                                format!(
                                    "topology node `{}` has a retryKernel but neither failures nor errors to echo",
                                    n.id
                                ),
                            )
                            .with_help("add semantics.failures or semantics.errors"),
                    ),
                }
            }
        }
        // Derived metrics: present only when all inputs exist.
        if n.kind.computes() {
            let s = snake(&n.id);
            let served = node_plan.roles.get(&Role::Served).cloned();
            let mut derived = |t: &mut Table,
                               metric: &str,
                               kind,
                               num: Option<String>,
                               den: Option<String>,
                               den2: Option<Operandish>,
                               scale: Option<f64>| {
                let (Some(num), Some(den)) = (num, den) else { return };
                let id = format!("{s}_{metric}");
                let body = TopoBody::Ratio { loc: n.loc.clone(), num, den, den2, scale };
                if t.add(&n.id, n.loc.clone(), Body::Topo(body), &[(id.clone(), kind, None)]).is_some() {
                    node_plan.derived.insert(metric.to_string(), id);
                }
            };
            let par = p.parallelism.clone().unwrap_or(Operandish::Num(1.0));
            derived(
                t,
                "utilization",
                SeriesKind::Utilization,
                served.clone(),
                node_plan.roles.get(&Role::Capacity).cloned(),
                Some(par.clone()),
                None,
            );
            derived(
                t,
                "latency_min",
                SeriesKind::Latency,
                node_plan.queue.clone(),
                served.clone(),
                None,
                Some(doc.grid.bin_minutes() as f64),
            );
            derived(
                t,
                "throughput_ratio",
                SeriesKind::ThroughputRatio,
                served.clone(),
                node_plan.roles.get(&Role::Arrivals).cloned(),
                None,
                None,
            );
            derived(
                t,
                "service_time_ms",
                SeriesKind::ServiceTime,
                node_plan.roles.get(&Role::ProcessingTimeMsSum).cloned(),
                node_plan.roles.get(&Role::ServedCount).cloned(),
                None,
                None,
            );
        }
        // served_exceeds_capacity (§7.1) applies to every kind: descriptive kinds still warn.
        if let Some(cap) = node_plan.roles.get(&Role::Capacity) {
            let par = p.parallelism.clone().unwrap_or(Operandish::Num(1.0));
            node_plan.capacity_times_parallelism = Some((cap.clone(), par));
        }
        plan.nodes.push(node_plan);
    }

    // Edges.
    let mut pairs = BTreeSet::new();
    let mut out_weight: BTreeMap<&str, f64> = BTreeMap::new();
    for e in &topo.edges {
        *out_weight.entry(e.from.as_str()).or_insert(0.0) += e.weight;
    }
    for e in &topo.edges {
        let mut ok = true;
        for end in [&e.from, &e.to] {
            if !ids.contains(end.as_str()) {
                t.diags.push(
                    e.loc
                        .diag("unknown_reference", format!("edge endpoint `{end}` is not a topology node"))
                        .with_help(format!("topology nodes: {}", ids.iter().copied().collect::<Vec<_>>().join(", "))),
                );
                ok = false;
            }
        }
        if !pairs.insert((e.from.clone(), e.to.clone())) {
            t.diags.push(e.loc.diag("duplicate_id", format!("duplicate edge {} -> {}", e.from, e.to)));
            ok = false;
        }
        if !ok {
            continue;
        }
        let from = index[e.from.as_str()];
        let Some(served) = plan.nodes[from].roles.get(&Role::Served).cloned() else {
            t.diags.push(
                e.loc
                    .diag(
                        "missing_key",
                        format!("edge {} -> {}: `{}` has no served series to carry", e.from, e.to, e.from),
                    )
                    .with_help("add semantics.served to the source node"),
            );
            continue;
        };
        let id = format!("edge_{}_{}_flow", e.from, e.to);
        let total = out_weight[e.from.as_str()];
        let body = TopoBody::Edge {
            loc: e.loc.clone(),
            src: served,
            lag: e.lag,
            weight: e.weight,
            total,
            multiplier: e.multiplier,
        };
        if t.add(&e.from, e.loc.clone(), Body::Topo(body), &[(id.clone(), SeriesKind::Edge, None)]).is_some() {
            plan.edges.push(EdgePlan { from: e.from.clone(), to: e.to.clone(), weight: e.weight, series: id });
        }
    }
    // Constraints naming a capacity that resolves to nothing.
    for c in &topo.constraints {
        if let Some(SeriesRef::Node(name)) = &c.served
            && !node_defined(t, name)
        {
            t.diags.push(t.unknown(name, &c.loc, None));
        }
    }
    plan
}

/// `<snake(id)>_overflow` (§6), whatever name the queue itself has.
fn overflow_name(node: &str) -> String {
    format!("{}_overflow", snake(node))
}

#[cfg(test)]
mod tests {
    use super::snake;

    #[test]
    fn snake_case_ids() {
        for (a, b) in [
            ("OrderService", "order_service"),
            ("DLQ", "dlq"),
            ("HTTPService", "http_service"),
            ("QueueA", "queue_a"),
            ("Queue", "queue"),
            ("billing_queue", "billing_queue"),
            ("Node2Go", "node2_go"),
            ("A__B", "a_b"),
        ] {
            assert_eq!(snake(a), b, "{a}");
        }
    }
}
