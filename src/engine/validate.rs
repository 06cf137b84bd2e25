//! Post-evaluation validation (§7.1): built-in warning rules over topology roles, template
//! checks (`conservation`, `expr`), input data quality (`data_gap`, `nan_detected`) and capacity
//! inference (`capacity_not_inferable`). Validation never blocks a run.

use std::collections::BTreeMap;

use crate::diag::Severity;
use crate::engine::cexpr::Env;
use crate::engine::db::{Evaluation, InputSeries};
use crate::engine::inference::Inferred;
use crate::engine::plan::CheckPlan;
use crate::engine::topology::Operandish;
use crate::engine::warnings::{Warning, sort};
use crate::model::doc::{Num, Role, TopoKind};

const TOL: f64 = 1e-6;

/// Everything validation reads besides the series.
pub struct ValidationInputs<'a> {
    /// Input key → what was read.
    pub inputs: &'a BTreeMap<String, InputSeries>,
    /// Parameter name → numeric value (for checks and initial conditions that use parameters).
    pub params: &'a BTreeMap<String, f64>,
}

/// §6.1 warnings from the mixes in `ev` (present only when the caller computed them):
/// `router_class_unrouted` (class flow a router drops) and `class_unattributed` (a classed
/// series with flow of unknown class, with its bins and the largest share).
pub fn class_warnings(ev: &Evaluation) -> Vec<Warning> {
    let c = &ev.compiled;
    let Some(cp) = &c.classes else { return Vec::new() };
    let k = cp.k();
    let mut out = Vec::new();
    for r in &cp.routers {
        let (Some(x), Some(m)) = (ev.series.get(&r.src), ev.mixes.get(&r.src)) else { continue };
        if r.dropped.is_empty() {
            continue;
        }
        let mut bins = Vec::new();
        let mut worst = 0.0f64;
        for (t, v) in x.iter().enumerate() {
            let row = &m[t * k..(t + 1) * k];
            let share: f64 =
                r.dropped.iter().map(|&c| if c == k { crate::engine::mix::unattributed(row) } else { row[c] }).sum();
            let flow = v * share;
            if flow.abs() > 1e-9 * v.abs().max(1.0) {
                bins.push(t as u32);
                worst = worst.max(flow.abs());
            }
        }
        if !bins.is_empty() {
            let names: Vec<&str> = r
                .dropped
                .iter()
                .map(|&c| if c == k { crate::model::doc::UNATTRIBUTED } else { cp.ids[c].as_str() })
                .collect();
            let msg = format!(
                "router `{}` has no route for class {} of `{}`; that flow is dropped in {} bins",
                r.router,
                names.join(", "),
                c.series_id(r.src),
                bins.len()
            );
            out.push(
                Warning::new("router_class_unrouted", Severity::Warning, &r.router, msg).with_bins(&bins, Some(worst)),
            );
        }
    }
    for (&s, m) in &ev.mixes {
        let Some(x) = ev.series.get(&s) else { continue };
        let mut bins = Vec::new();
        let mut worst = 0.0f64;
        for (t, v) in x.iter().enumerate() {
            let u = crate::engine::mix::unattributed(&m[t * k..(t + 1) * k]);
            if u > 0.0 && *v != 0.0 && !v.is_nan() {
                bins.push(t as u32);
                worst = worst.max(u);
            }
        }
        if !bins.is_empty() {
            let id = c.series_id(s);
            let msg = format!(
                "`{id}` carries flow of unknown class (`{id}@{}`) in {} bins, up to {:.3} of it",
                crate::model::doc::UNATTRIBUTED,
                bins.len(),
                worst
            );
            out.push(Warning::new("class_unattributed", Severity::Info, id, msg).with_bins(&bins, Some(worst)));
        }
    }
    out
}

/// All warnings of a fully evaluated scenario, in §7.1 order.
pub fn warnings(ev: &Evaluation, vi: &ValidationInputs<'_>) -> Vec<Warning> {
    let c = &ev.compiled;
    let mut out = c.static_warnings.clone();
    let get = |id: &str| ev.get(id).map(|s| &s[..]);
    let num = |n: &Num| match n {
        Num::Lit(v) => *v,
        Num::Param(p) => vi.params.get(p).copied().unwrap_or(f64::NAN),
    };

    for (key, readers) in &c.inputs {
        let Some(input) = vi.inputs.get(key) else { continue };
        for node in readers {
            if !input.gaps.is_empty() {
                let w = Warning::new(
                    "data_gap",
                    Severity::Warning,
                    node,
                    format!("{} bins missing from {key} were filled with 0", input.gaps.len()),
                );
                out.push(w.with_bins(&input.gaps, Some(input.gaps.len() as f64)));
            }
            if !input.nans.is_empty() {
                let w = Warning::new(
                    "nan_detected",
                    Severity::Warning,
                    node,
                    format!("{} bins of {key} are empty or NaN", input.nans.len()),
                );
                out.push(w.with_bins(&input.nans, Some(input.nans.len() as f64)));
            }
        }
    }

    for n in &c.topology.nodes {
        let role = |r: Role| n.roles.get(&r).and_then(|id| get(id));
        for (r, code) in [
            (Role::Arrivals, "arrivals_negative"),
            (Role::Served, "served_negative"),
            (Role::Errors, "errors_negative"),
        ] {
            if let Some(s) = role(r) {
                push_rule(
                    &mut out,
                    code,
                    &n.id,
                    s.len(),
                    |t| s[t] < -TOL,
                    |t| -s[t],
                    |t| s[t],
                    &format!("{} is negative", r.name()),
                );
            }
        }
        if let Some(q) = n.queue.as_deref().and_then(get) {
            push_rule(
                &mut out,
                "queue_negative",
                &n.id,
                q.len(),
                |t| q[t] < -TOL,
                |t| -q[t],
                |t| q[t],
                "queue depth is negative",
            );
            streaks(&mut out, &n.id, q);
        }
        if let (Some(a), Some(s)) = (role(Role::Arrivals), role(Role::Served)) {
            if n.kind == TopoKind::Service {
                push_rule(
                    &mut out,
                    "served_exceeds_arrivals",
                    &n.id,
                    s.len(),
                    |t| s[t] > a[t] + TOL,
                    |t| s[t] - a[t],
                    |t| s[t] - a[t],
                    "served exceeds arrivals",
                );
            }
            non_stationary(&mut out, &n.id, a);
        } else if let Some(a) = role(Role::Arrivals) {
            non_stationary(&mut out, &n.id, a);
        }
        if let (Some(e), Some(a)) = (role(Role::Errors), role(Role::Arrivals)) {
            push_rule(
                &mut out,
                "errors_exceed_arrivals",
                &n.id,
                e.len(),
                |t| e[t] > a[t] + TOL,
                |t| e[t] - a[t],
                |t| e[t] - a[t],
                "errors exceed arrivals",
            );
        }
        if let (Some(s), Some((cap, par))) = (role(Role::Served), &n.capacity_times_parallelism)
            && let Some(cap) = get(cap)
        {
            let par_at = |t: usize| match par {
                Operandish::Num(v) => *v,
                Operandish::Series(id) => get(id).map_or(f64::NAN, |p| p[t]),
            };
            let limit = |t: usize| cap[t] * par_at(t);
            push_rule(
                &mut out,
                "served_exceeds_capacity",
                &n.id,
                s.len(),
                |t| s[t] > limit(t) + TOL,
                |t| s[t] - limit(t),
                |t| s[t] - limit(t),
                "served exceeds capacity × parallelism",
            );
        }
        if !n.queue_synthesised
            && let (Some(q), Some(a), Some(s)) =
                (n.queue.as_deref().and_then(get), role(Role::Arrivals), role(Role::Served))
        {
            let initial = n.initial_queue.as_ref().map(num).or_else(|| {
                let qs = c.by_id.get(n.queue.as_deref()?)?;
                c.series[*qs as usize].initial.as_ref().map(num)
            });
            conservation(
                &mut out,
                "conservation_violation",
                Severity::Warning,
                &n.id,
                q,
                a,
                s,
                role(Role::Errors),
                initial,
                0.01,
            );
        }
    }

    for (i, s) in c.series.iter().enumerate() {
        let Some((_, queue, _)) = &s.inference else { continue };
        let message = match crate::engine::inference::inferred(ev, i as u32, vi.params) {
            Some(Inferred::Refused(why)) => format!("not inferred: {why}"),
            Some(Inferred::Value(inf)) if inf.saturated_bins == 0 => format!(
                "no saturated bins (queue `{}` never builds while positive); capacity cannot be inferred",
                c.series_id(*queue)
            ),
            _ => continue,
        };
        out.push(Warning::new("capacity_not_inferable", Severity::Warning, &s.id, message));
    }

    for check in &c.checks {
        match check {
            CheckPlan::Expr { id, info, expr, srcs, params, message } => {
                let env = CheckEnv {
                    srcs: srcs.iter().map(|s| ev.series.get(s).map_or(&[][..], |v| &v[..])).collect(),
                    params: params.iter().map(|p| vi.params.get(p).copied().unwrap_or(f64::NAN)).collect(),
                    bins: c.grid.len(),
                };
                if env.srcs.iter().any(|s| s.len() != env.bins) {
                    continue;
                }
                let v = expr.eval_series(&env);
                let bins: Vec<u32> =
                    (0..v.len()).filter(|t| v[*t] != 0.0 && !v[*t].is_nan()).map(|t| t as u32).collect();
                if !bins.is_empty() {
                    let sev = if *info { Severity::Info } else { Severity::Warning };
                    let first = bins[0] as usize;
                    // The warning is attributed to the first series the check reads.
                    let node = srcs.first().map_or(id.as_str(), |s| c.series_id(*s));
                    out.push(Warning::new(id, sev, node, message.clone()).with_bins(&bins, Some(v[first])));
                }
            }
            CheckPlan::Conservation { id, info, node, tolerance, roles } => {
                let (Some(q), Some(a), Some(s)) = (get(&roles.queue), get(&roles.arrivals), get(&roles.served)) else {
                    continue;
                };
                let e = roles.errors.as_deref().and_then(get);
                let sev = if *info { Severity::Info } else { Severity::Warning };
                // The same initial condition as the built-in rule: the topology node's, else the
                // queue series' own `initial`.
                let initial = roles.initial.as_ref().map(num).or_else(|| {
                    let qs = c.by_id.get(&roles.queue)?;
                    c.series[*qs as usize].initial.as_ref().map(num)
                });
                conservation(&mut out, id, sev, node, q, a, s, e, initial, *tolerance);
            }
        }
    }
    out.extend(class_warnings(ev));
    sort(&mut out);
    out
}

struct CheckEnv<'a> {
    srcs: Vec<&'a [f64]>,
    params: Vec<f64>,
    bins: usize,
}

impl Env for CheckEnv<'_> {
    fn param(&self, slot: u16) -> f64 {
        self.params[slot as usize]
    }
    fn src(&self, slot: u16) -> &[f64] {
        self.srcs[slot as usize]
    }
    fn bins(&self) -> usize {
        self.bins
    }
}

/// Adds one warning listing every bin where `bad` holds; `value` is the series value at the bin
/// where `worse` is largest.
#[allow(clippy::too_many_arguments)]
fn push_rule(
    out: &mut Vec<Warning>,
    code: &str,
    node: &str,
    n: usize,
    bad: impl Fn(usize) -> bool,
    worse: impl Fn(usize) -> f64,
    value: impl Fn(usize) -> f64,
    what: &str,
) {
    let bins: Vec<u32> = (0..n).filter(|t| bad(*t)).map(|t| t as u32).collect();
    if bins.is_empty() {
        return;
    }
    let worst =
        bins.iter().copied().max_by(|a, b| worse(*a as usize).total_cmp(&worse(*b as usize))).unwrap_or(bins[0]);
    let msg = format!("{what} in {} bin{}", bins.len(), if bins.len() == 1 { "" } else { "s" });
    out.push(Warning::new(code, Severity::Warning, node, msg).with_bins(&bins, Some(value(worst as usize))));
}

#[allow(clippy::too_many_arguments)]
fn conservation(
    out: &mut Vec<Warning>,
    code: &str,
    sev: Severity,
    node: &str,
    q: &[f64],
    a: &[f64],
    s: &[f64],
    e: Option<&[f64]>,
    initial: Option<f64>,
    tol: f64,
) {
    let residual = |t: usize| -> Option<f64> {
        let prev = if t == 0 { initial? } else { q[t - 1] };
        let expected = prev + a[t] - s[t] - e.map_or(0.0, |e| e[t]);
        Some(q[t] - expected)
    };
    let mut bins = Vec::new();
    let mut worst: Option<f64> = None;
    for (t, qt) in q.iter().enumerate() {
        let Some(r) = residual(t) else { continue };
        if r.abs() > tol * qt.abs().max(1.0) {
            bins.push(t as u32);
            if worst.is_none_or(|w| r.abs() > w.abs()) {
                worst = Some(r);
            }
        }
    }
    if !bins.is_empty() {
        let msg = format!(
            "queue does not follow Q[t-1] + arrivals - served - errors in {} bin{} (tolerance {tol})",
            bins.len(),
            if bins.len() == 1 { "" } else { "s" }
        );
        out.push(Warning::new(code, sev, node, msg).with_bins(&bins, worst));
    }
}

fn non_stationary(out: &mut Vec<Warning>, node: &str, a: &[f64]) {
    let n = a.len();
    let h = n / 2;
    if h == 0 {
        return;
    }
    let mean = |xs: &[f64]| xs.iter().fold(0.0, |acc, x| acc + x) / xs.len() as f64;
    let (m1, m2) = (mean(&a[..h]), mean(&a[h..]));
    let top = m1.max(m2);
    if top.is_nan() || top <= 0.0 {
        return;
    }
    let rel = (m1 - m2).abs() / top;
    if rel > 0.25 {
        let msg = format!(
            "mean arrivals change from {m1:.4} in the first half to {m2:.4} in the second ({:.0}%)",
            rel * 100.0
        );
        out.push(Warning::new("non_stationary", Severity::Info, node, msg).with_bins(&[], Some(rel)));
    }
}

/// `backlog_growth_streak`: runs of at least 3 consecutive bins of strictly increasing queue.
fn streaks(out: &mut Vec<Warning>, node: &str, q: &[f64]) {
    let mut bins = Vec::new();
    let mut longest = 0usize;
    let mut run: Vec<u32> = Vec::new();
    for t in 1..=q.len() {
        if t < q.len() && q[t] > q[t - 1] {
            run.push(t as u32);
            continue;
        }
        if run.len() >= 3 {
            longest = longest.max(run.len());
            bins.extend_from_slice(&run);
        }
        run.clear();
    }
    if !bins.is_empty() {
        let msg = format!("queue grows for {longest} consecutive bins");
        out.push(
            Warning::new("backlog_growth_streak", Severity::Info, node, msg).with_bins(&bins, Some(longest as f64)),
        );
    }
}
