//! Optimize: minimise or maximise a metric over bounded parameters, optionally subject to bounds
//! on other metrics, with argmin's Nelder–Mead; and that search ([`minimize`]), which fit uses too.
//!
//! Nelder–Mead is unconstrained. Bounds are kept by searching over `u` with
//! `x = lo + (hi − lo) × (1 + sin u) / 2` (as MATLAB's fminsearchbnd does): every point lies in its
//! box, and a bound is reached smoothly, so a minimum in a corner is found too. Constraints on
//! metrics add `ρ × Σ violation / max(1, |bound|)` to the cost with
//! `ρ = 1000 × max(1, |objective at the start|)`, an exact (L1) penalty: for ρ above the
//! constraint's shadow price the penalised minimum is the constrained one, on the boundary when
//! the constraint is active. A NaN objective or constraint counts as a violation of 1.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use argmin::core::{CostFunction, Executor, State, TerminationReason};
use argmin::solver::neldermead::NelderMead;

use crate::analysis::metric::{Resolved, resolve_all, resolve_one};
use crate::analysis::modes::{Eval, TraceStep, metric_values, target_ids};
use crate::analysis::point::{Evaluator, Outcome, Point};
use crate::analysis::{AnalysisError, Best, Control, MetricValue, invalid};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::params::ParamType;

/// A parameter and the range a search may move it in.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    pub name: String,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Le,
    Ge,
}

impl Cmp {
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Le => "<=",
            Cmp::Ge => ">=",
        }
    }
}

/// `metric <= bound` or `metric >= bound`.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub metric: String,
    pub cmp: Cmp,
    pub bound: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Optimize {
    pub params: Vec<Bound>,
    pub objective: String,
    pub maximize: bool,
    pub constraints: Vec<Constraint>,
    /// Nelder–Mead iterations (default 500, at most 10,000).
    pub max_iterations: u32,
    /// Stop when the standard deviation of the simplex's costs falls below this (default
    /// `1e-10 × max(1, |objective at the start|)`).
    pub tolerance: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct OptimizeResult {
    /// The best point's values, in request order.
    pub params: Vec<(String, f64)>,
    pub objective: f64,
    /// Each constraint's metric at the best point.
    pub constraints: Vec<MetricValue>,
    /// Every constraint holds at the best point (to 1e-6 of max(1, |bound|)).
    pub feasible: bool,
    /// The simplex's costs agree within the tolerance (else the iteration limit stopped it).
    pub converged: bool,
    pub iterations: u64,
    pub trace: Vec<TraceStep>,
    pub message: String,
}

pub(crate) const MAX_ITERATIONS: u32 = 10_000;

/// How a search scores one point: the quantity to minimise, its constraint violation, and the
/// metrics to show in the trace.
pub(crate) struct Score {
    /// Minimised (an objective to maximise is negated by the caller).
    pub(crate) cost: f64,
    /// What the trace reports (the objective as asked, the loss).
    pub(crate) shown: f64,
    /// Σ relative violations, ≥ 0.
    pub(crate) violation: f64,
    pub(crate) metrics: Vec<MetricValue>,
}

pub(crate) type Scorer<'a> = dyn Fn(&Outcome, &BTreeMap<String, f64>) -> Score + 'a;

/// What a finished search found.
pub(crate) struct Found {
    pub(crate) best: Vec<(String, f64)>,
    pub(crate) score: Score,
    pub(crate) converged: bool,
    pub(crate) iterations: u64,
    pub(crate) trace: Vec<TraceStep>,
    pub(crate) message: String,
}

/// Evaluations so far, outside the cost function (the solver owns it).
#[derive(Default)]
struct Log {
    trace: RefCell<Vec<TraceStep>>,
    /// Point (bits of each value) → (cost, violation).
    cache: RefCell<BTreeMap<Vec<u64>, (f64, f64)>>,
    failed: RefCell<Option<AnalysisError>>,
}

struct Search<'a> {
    ev: &'a Evaluator,
    ctl: &'a Control<'a>,
    bounds: &'a [Bound],
    score: &'a Scorer<'a>,
    rho: f64,
    total: u64,
    log: &'a Log,
}

/// The point of the search variables `u` (each value in its box).
fn to_box(bounds: &[Bound], u: &[f64]) -> Vec<f64> {
    u.iter()
        .zip(bounds)
        .map(|(u, b)| {
            let x = if u.is_nan() { b.lo } else { b.lo + (b.hi - b.lo) * (1.0 + u.sin()) / 2.0 };
            x.clamp(b.lo, b.hi)
        })
        .collect()
}

/// The search variable of value `x` in `b` (its inverse on `[−π/2, π/2]`).
fn from_box(b: &Bound, x: f64) -> f64 {
    (2.0 * (x - b.lo) / (b.hi - b.lo) - 1.0).clamp(-1.0, 1.0).asin()
}

impl Search<'_> {
    fn penalised(&self, cost: f64, violation: f64) -> f64 {
        if cost.is_nan() { self.rho * (1.0 + violation) + self.rho } else { cost + self.rho * violation }
    }

    /// Records an evaluated point; returns its (cost, violation).
    fn record(&self, params: Vec<(String, f64)>, o: &Outcome) -> (f64, f64) {
        let map: BTreeMap<String, f64> = params.iter().cloned().collect();
        let s = (self.score)(o, &map);
        let key: Vec<u64> = params.iter().map(|(_, v)| v.to_bits()).collect();
        self.log.cache.borrow_mut().insert(key, (s.cost, s.violation));
        let mut trace = self.log.trace.borrow_mut();
        trace.push(TraceStep {
            params,
            value: s.shown,
            metrics: s.metrics,
            accounting: o.accounting,
            structural: o.structural,
        });
        (s.cost, s.violation)
    }

    fn cost_at(&self, u: &[f64]) -> Result<f64, AnalysisError> {
        let p = to_box(self.bounds, u);
        let key: Vec<u64> = p.iter().map(|v| v.to_bits()).collect();
        let cached = self.log.cache.borrow().get(&key).copied();
        let (cost, violation) = match cached {
            Some(c) => c,
            None => {
                let params: Vec<(String, f64)> = self.bounds.iter().map(|b| b.name.clone()).zip(p).collect();
                let o = self.ev.eval_one(&Point::of(params.clone()), self.ctl)?;
                let r = self.record(params, &o);
                self.report();
                r
            }
        };
        Ok(self.penalised(cost, violation))
    }

    fn report(&self) {
        let trace = self.log.trace.borrow();
        let cache = self.log.cache.borrow();
        let best = trace
            .iter()
            .filter_map(|s| {
                let key: Vec<u64> = s.params.iter().map(|(_, v)| v.to_bits()).collect();
                let (c, v) = cache.get(&key)?;
                Some((self.penalised(*c, *v), s))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, s)| Best { params: s.params.clone(), value: s.value });
        self.ctl.report(trace.len() as u64, self.total, best);
    }
}

impl CostFunction for Search<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        match self.cost_at(x) {
            Ok(c) => Ok(c),
            Err(e) => {
                *self.log.failed.borrow_mut() = Some(e);
                Err(argmin::core::Error::msg("the analysis stopped"))
            }
        }
    }
}

/// Points a search of `n` parameters evaluates at most: the simplex, then per iteration a
/// reflection and an expansion or contraction, or a shrink of every vertex.
pub(crate) fn max_points(n: usize, iterations: u32) -> u64 {
    (n as u64 + 1) + iterations as u64 * (n as u64 + 1).max(2)
}

/// Checks search bounds: each a number parameter, lo < hi, both in its declared range.
pub(crate) fn check_bounds(ev: &Evaluator, bounds: &[Bound], field: &str, diags: &mut Vec<Diagnostic>) {
    if bounds.is_empty() {
        diags.push(invalid(
            "bad_bounds",
            field,
            "name at least one parameter with its range",
            "add `--param NAME=LO..HI`",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, b) in bounds.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if !seen.insert(b.name.clone()) {
            diags.push(invalid("bad_bounds", f, format!("parameter `{}` is named twice", b.name), "name each once"));
            continue;
        }
        match ev.numeric_param(&b.name, &format!("{f}.name")) {
            Ok(d) if d.ty == ParamType::Integer => diags.push(invalid(
                "parameter_type",
                format!("{f}.name"),
                format!("parameter `{}` is an integer; searches need continuous (number) parameters", b.name),
                "sweep integer parameters instead",
            )),
            Ok(_) if !(b.lo.is_finite() && b.hi.is_finite() && b.lo < b.hi) => diags.push(invalid(
                "bad_bounds",
                f,
                format!("the range {}..{} of `{}` needs finite lo < hi", b.lo, b.hi, b.name),
                "write NAME=LO..HI with LO below HI",
            )),
            Ok(_) => {
                for (side, v) in [("lo", b.lo), ("hi", b.hi)] {
                    if let Err(d) = ev.typed(&b.name, v, &format!("{f}.{side}")) {
                        diags.push(d);
                    }
                }
            }
            Err(d) => diags.push(d),
        }
    }
}

/// Checks the iteration limit and tolerance shared by the searches.
pub(crate) fn check_search(max_iterations: u32, tolerance: Option<f64>, diags: &mut Vec<Diagnostic>) {
    if !(1..=MAX_ITERATIONS).contains(&max_iterations) {
        diags.push(invalid(
            "bad_iterations",
            "max_iterations",
            format!("max_iterations must be 1..={MAX_ITERATIONS}, got {max_iterations}"),
            "the default is 500",
        ));
    }
    if let Some(t) = tolerance
        && !(t.is_finite() && t > 0.0)
    {
        diags.push(invalid("bad_tolerance", "tolerance", format!("the tolerance {t} must be > 0"), "e.g. 1e-9"));
    }
}

/// Minimises `score` over the box `bounds` from the target's values (the middle of a range the
/// target's value lies outside of). The starting simplex is evaluated in parallel; then one point
/// at a time.
pub(crate) fn minimize(
    ev: &Evaluator,
    ctl: &Control<'_>,
    bounds: &[Bound],
    score: &Scorer<'_>,
    max_iterations: u32,
    tolerance: Option<f64>,
    total: u64,
) -> Result<Found, AnalysisError> {
    let start: Vec<f64> = bounds
        .iter()
        .map(|b| {
            let v = ev.value(&b.name);
            if b.lo <= v && v <= b.hi { v } else { b.lo + (b.hi - b.lo) / 2.0 }
        })
        .collect();
    // The simplex in search variables: the start, and a step of 0.25 (about an eighth of the
    // range in the middle of a box) along each axis, inwards.
    let u0: Vec<f64> = bounds.iter().zip(&start).map(|(b, x)| from_box(b, *x)).collect();
    let mut simplex = vec![u0.clone()];
    for i in 0..bounds.len() {
        let mut v = u0.clone();
        v[i] = if u0[i] + 0.25 <= std::f64::consts::FRAC_PI_2 { u0[i] + 0.25 } else { u0[i] - 0.25 };
        simplex.push(v);
    }
    let names: Vec<String> = bounds.iter().map(|b| b.name.clone()).collect();
    let points: Vec<Point> =
        simplex.iter().map(|u| Point::of(names.iter().cloned().zip(to_box(bounds, u)).collect())).collect();
    let outs = ev.run(&points, ctl, None)?;
    let log = Log::default();
    let mut search = Search { ev, ctl, bounds, score, rho: 0.0, total, log: &log };
    let mut first = f64::NAN;
    for (p, o) in points.iter().zip(&outs) {
        let (c, _) = search.record(p.params.clone(), o);
        if first.is_nan() {
            first = c;
        }
    }
    let scale = if first.is_finite() { first.abs().max(1.0) } else { 1.0 };
    search.rho = 1000.0 * scale;
    search.report();
    let tolerance = tolerance.unwrap_or(1e-10 * scale);
    let solver = NelderMead::new(simplex).with_sd_tolerance(tolerance).map_err(|e| {
        AnalysisError::from(invalid("bad_tolerance", "tolerance", e.to_string(), "use a tolerance > 0"))
    })?;
    let res = Executor::new(search, solver).configure(|s| s.max_iters(max_iterations as u64)).run();
    if let Some(e) = log.failed.borrow_mut().take() {
        return Err(e);
    }
    let state = match res {
        Ok(r) => r.state,
        Err(e) => {
            return Err(AnalysisError::Host(crate::host::HostError::FailedPrecondition(format!(
                "the search failed: {e}"
            ))));
        }
    };
    let iterations = state.get_iter();
    let reason = state.get_termination_reason().cloned();
    let converged = matches!(reason, Some(TerminationReason::SolverConverged));
    let best = state.get_best_param().cloned().unwrap_or(u0);
    let key: Vec<u64> = to_box(bounds, &best).iter().map(|v| v.to_bits()).collect();
    let trace = log.trace.into_inner();
    let step = trace
        .iter()
        .rev()
        .find(|s| s.params.iter().map(|(_, v)| v.to_bits()).collect::<Vec<_>>() == key)
        .cloned()
        .ok_or_else(|| {
            AnalysisError::Host(crate::host::HostError::FailedPrecondition("the search lost its best point".into()))
        })?;
    let cached = log.cache.borrow().get(&key).copied().unwrap_or((f64::NAN, f64::NAN));
    let message = match &reason {
        Some(TerminationReason::SolverConverged) => "Nelder–Mead converged".to_string(),
        Some(TerminationReason::MaxItersReached) => format!("stopped after {max_iterations} iterations"),
        Some(r) => format!("Nelder–Mead: {r:?}"),
        None => "Nelder–Mead stopped".to_string(),
    };
    Ok(Found {
        best: step.params.clone(),
        score: Score { cost: cached.0, shown: step.value, violation: cached.1, metrics: step.metrics },
        converged,
        iterations,
        trace,
        message,
    })
}

/// Relative violation of `m cmp bound` (NaN counts 1).
fn violation(m: f64, c: &Constraint) -> f64 {
    if m.is_nan() {
        return 1.0;
    }
    let excess = match c.cmp {
        Cmp::Le => m - c.bound,
        Cmp::Ge => c.bound - m,
    };
    excess.max(0.0) / c.bound.abs().max(1.0)
}

/// Violations at most this (relative) count as satisfied in the result.
const FEASIBLE: f64 = 1e-6;

impl Eval for Optimize {
    type Output = OptimizeResult;

    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<OptimizeResult, AnalysisError> {
        let mut diags: Vec<Diagnostic> = Vec::new();
        check_bounds(ev, &self.params, "params", &mut diags);
        check_search(self.max_iterations, self.tolerance, &mut diags);
        let objective =
            resolve_one(&self.objective, "objective", ev.plan(), ev.decls()).map(|m| vec![m]).unwrap_or_else(|d| {
                diags.extend(d);
                Vec::new()
            });
        let texts: Vec<String> = self.constraints.iter().map(|c| c.metric.clone()).collect();
        let constraints = resolve_all(&texts, "constraints", ev.plan(), ev.decls()).unwrap_or_else(|d| {
            diags.extend(d.into_iter().map(|x| {
                let p = x.path.clone().unwrap_or_default();
                x.at_path(format!("{p}.metric"))
            }));
            Vec::new()
        });
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.bound.is_finite() {
                diags.push(invalid(
                    "bad_constraint",
                    format!("constraints[{i}].bound"),
                    format!("the bound {} is not finite", c.bound),
                    "e.g. `p95(latency_min) <= 10`",
                ));
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags).into());
        }
        let all: Vec<Resolved> = objective.iter().chain(&constraints).cloned().collect();
        let total = max_points(self.params.len(), self.max_iterations);
        ev.set_scope(self.params.iter().map(|b| b.name.clone()).collect(), target_ids(&all, &[]));
        ev.check_limits(total, ctl)?;
        let sign = if self.maximize { -1.0 } else { 1.0 };
        let score = |o: &Outcome, params: &BTreeMap<String, f64>| {
            let metrics = metric_values(&all, o, params);
            let shown = metrics[0].value;
            let violation: f64 = metrics[1..].iter().zip(&self.constraints).map(|(m, c)| violation(m.value, c)).sum();
            Score { cost: sign * shown, shown, violation, metrics }
        };
        let found = minimize(ev, ctl, &self.params, &score, self.max_iterations, self.tolerance, total)?;
        let feasible =
            found.score.metrics[1..].iter().zip(&self.constraints).all(|(m, c)| violation(m.value, c) <= FEASIBLE);
        Ok(OptimizeResult {
            params: found.best,
            objective: found.score.shown,
            constraints: found.score.metrics[1..].to_vec(),
            feasible,
            converged: found.converged,
            iterations: found.iterations,
            trace: found.trace,
            message: found.message,
        })
    }

    fn points(out: &OptimizeResult) -> Vec<Vec<(String, f64)>> {
        out.trace.iter().map(|s| s.params.clone()).collect()
    }
}
