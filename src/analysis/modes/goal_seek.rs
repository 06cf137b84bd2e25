//! Goal seek: the value of one parameter in `[lo, hi]` at which a metric reaches a target, by
//! Brent's bracketing root finder (argmin). Both ends are evaluated first; a target they do not
//! bracket is a result (`bracketed: false`, `converged: false`), not an error.

use std::cell::RefCell;
use std::collections::BTreeMap;

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::brent::BrentRoot;

use crate::analysis::metric::{Resolved, resolve_one};
use crate::analysis::modes::{Eval, TraceStep, metric_values, target_ids};
use crate::analysis::point::{Evaluator, Point};
use crate::analysis::{AnalysisError, Best, Control, invalid};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::params::ParamType;

#[derive(Clone, Debug)]
pub struct GoalSeek {
    pub param: String,
    pub lo: f64,
    pub hi: f64,
    pub metric: String,
    pub target: f64,
    /// |metric − target| that counts as reached (default `1e-6 × max(1, |target|)`).
    pub tolerance: Option<f64>,
    /// Root-finder iterations after the two ends (default 100, at most 1,000).
    pub max_iterations: u32,
}

impl Default for GoalSeek {
    fn default() -> GoalSeek {
        GoalSeek {
            param: String::new(),
            lo: f64::NAN,
            hi: f64::NAN,
            metric: String::new(),
            target: f64::NAN,
            tolerance: None,
            max_iterations: 100,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GoalSeekResult {
    /// The parameter value found (the end nearest the target when not bracketed).
    pub value: f64,
    /// The metric at `value`.
    pub achieved: f64,
    /// |achieved − target| ≤ tolerance.
    pub converged: bool,
    /// The metric minus the target changes sign over `[lo, hi]`.
    pub bracketed: bool,
    pub tolerance: f64,
    /// Root-finder iterations (the two ends not counted).
    pub iterations: u64,
    /// Every evaluation, in order: the two ends first.
    pub trace: Vec<TraceStep>,
    /// What happened, in words.
    pub message: String,
}

pub(crate) const MAX_ITERATIONS: u32 = 1000;

/// What the evaluations so far found (outside the cost function, which the solver owns).
#[derive(Default)]
struct Log {
    trace: RefCell<Vec<TraceStep>>,
    cache: RefCell<BTreeMap<u64, f64>>,
    failed: RefCell<Option<AnalysisError>>,
}

/// The metric of a one-parameter family of points.
struct Seek<'a> {
    ev: &'a Evaluator,
    ctl: &'a Control<'a>,
    param: &'a str,
    metric: &'a Resolved,
    target: f64,
    total: u64,
    log: &'a Log,
}

impl Seek<'_> {
    fn metric_at(&self, x: f64) -> Result<f64, AnalysisError> {
        if let Some(m) = self.log.cache.borrow().get(&x.to_bits()) {
            return Ok(*m);
        }
        let params = vec![(self.param.to_string(), x)];
        let o = self.ev.eval_one(&Point::of(params.clone()), self.ctl)?;
        let map = params.iter().cloned().collect();
        let metrics = metric_values(std::slice::from_ref(self.metric), &o, &map);
        let m = metrics[0].value;
        self.log.cache.borrow_mut().insert(x.to_bits(), m);
        let mut trace = self.log.trace.borrow_mut();
        trace.push(TraceStep { params, value: m, metrics, accounting: o.accounting, structural: o.structural });
        let best = trace
            .iter()
            .min_by(|a, b| (a.value - self.target).abs().total_cmp(&(b.value - self.target).abs()))
            .map(|s| Best { params: s.params.clone(), value: (s.value - self.target).abs() });
        self.ctl.report(trace.len() as u64, self.total, best);
        Ok(m)
    }
}

impl CostFunction for Seek<'_> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, x: &f64) -> Result<f64, argmin::core::Error> {
        match self.metric_at(*x) {
            Ok(m) => Ok(m - self.target),
            Err(e) => {
                *self.log.failed.borrow_mut() = Some(e);
                Err(argmin::core::Error::msg("the analysis stopped"))
            }
        }
    }
}

impl Eval for GoalSeek {
    type Output = GoalSeekResult;

    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<GoalSeekResult, AnalysisError> {
        let mut diags: Vec<Diagnostic> = Vec::new();
        match ev.numeric_param(&self.param, "param") {
            Ok(d) if d.ty == ParamType::Integer => diags.push(invalid(
                "parameter_type",
                "param",
                format!("parameter `{}` is an integer; goal seek needs a continuous (number) parameter", self.param),
                "sweep integer parameters instead",
            )),
            Ok(_) => {
                if !(self.lo.is_finite() && self.hi.is_finite() && self.lo < self.hi) {
                    diags.push(invalid(
                        "bad_bracket",
                        "lo",
                        format!("the bracket [{}, {}] needs finite lo < hi", self.lo, self.hi),
                        "give --lo below --hi",
                    ));
                } else {
                    for (field, v) in [("lo", self.lo), ("hi", self.hi)] {
                        if let Err(d) = ev.typed(&self.param, v, field) {
                            diags.push(d);
                        }
                    }
                }
            }
            Err(d) => diags.push(d),
        }
        if !self.target.is_finite() {
            diags.push(invalid(
                "bad_target",
                "target",
                format!("the target {} is not a finite number", self.target),
                "give --target",
            ));
        }
        let tolerance = self.tolerance.unwrap_or(1e-6 * self.target.abs().max(1.0));
        if !(tolerance.is_finite() && tolerance > 0.0) {
            diags.push(invalid(
                "bad_tolerance",
                "tolerance",
                format!("the tolerance {tolerance} must be > 0"),
                "e.g. 0.01",
            ));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.max_iterations) {
            diags.push(invalid(
                "bad_iterations",
                "max_iterations",
                format!("max_iterations must be 1..={MAX_ITERATIONS}, got {}", self.max_iterations),
                "the default is 100",
            ));
        }
        let metric = resolve_one(&self.metric, "metric", ev.plan(), ev.decls()).map(|m| vec![m]).unwrap_or_else(|d| {
            diags.extend(d);
            Vec::new()
        });
        if !diags.is_empty() {
            return Err(Diagnostics(diags).into());
        }
        let total = 2 + self.max_iterations as u64;
        ev.set_scope([self.param.clone()].into(), target_ids(&metric, &[]));
        ev.check_limits(total, ctl)?;
        // The two ends first, in parallel: they decide whether there is anything to seek.
        let ends = [Point::of(vec![(self.param.clone(), self.lo)]), Point::of(vec![(self.param.clone(), self.hi)])];
        let outs = ev.run(&ends, ctl, None)?;
        let log = Log::default();
        for (p, o) in ends.iter().zip(&outs) {
            let map = p.param_map();
            let metrics = metric_values(&metric, o, &map);
            log.cache.borrow_mut().insert(p.params[0].1.to_bits(), metrics[0].value);
            log.trace.borrow_mut().push(TraceStep {
                params: p.params.clone(),
                value: metrics[0].value,
                metrics,
                accounting: o.accounting,
                structural: o.structural,
            });
        }
        let (f_lo, f_hi) = (log.trace.borrow()[0].value - self.target, log.trace.borrow()[1].value - self.target);
        let done = |value: f64, iterations: u64, bracketed: bool, message: String, log: Log| {
            let achieved = log.cache.borrow().get(&value.to_bits()).copied().unwrap_or(f64::NAN);
            GoalSeekResult {
                value,
                achieved,
                converged: (achieved - self.target).abs() <= tolerance,
                bracketed,
                tolerance,
                iterations,
                trace: log.trace.into_inner(),
                message,
            }
        };
        if f_lo.abs() <= tolerance || f_hi.abs() <= tolerance {
            let value = if f_lo.abs() <= f_hi.abs() { self.lo } else { self.hi };
            return Ok(done(value, 0, true, "the target is reached at an end of the bracket".into(), log));
        }
        if f_lo.is_nan() || f_hi.is_nan() || f_lo.signum() == f_hi.signum() {
            let value = if f_hi.abs() < f_lo.abs() { self.hi } else { self.lo };
            let message = format!(
                "target not bracketed: {} is {} at {} = {} and {} at {} = {}",
                self.metric,
                f_lo + self.target,
                self.param,
                self.lo,
                f_hi + self.target,
                self.param,
                self.hi
            );
            return Ok(done(value, 0, false, message, log));
        }
        // Brent's own x tolerance is far below any useful parameter resolution: the metric
        // tolerance (`target_cost` on |metric − target|) is what stops it.
        let seek = Seek { ev, ctl, param: &self.param, metric: &metric[0], target: self.target, total, log: &log };
        let solver = BrentRoot::new(self.lo, self.hi, (self.hi - self.lo) * 1e-12);
        let res = Executor::new(seek, solver)
            .configure(|s| s.max_iters(self.max_iterations as u64).target_cost(tolerance))
            .run();
        if let Some(e) = log.failed.borrow_mut().take() {
            return Err(e);
        }
        let state = match res {
            Ok(r) => r.state,
            Err(e) => {
                return Err(AnalysisError::Host(crate::host::HostError::FailedPrecondition(format!("goal seek: {e}"))));
            }
        };
        let value = state.get_best_param().copied().unwrap_or(self.lo);
        let iterations = state.get_iter();
        let reason = state.get_termination_reason().map_or_else(|| "stopped".to_string(), |r| format!("{r:?}"));
        Ok(done(value, iterations, true, format!("Brent root finder: {reason}"), log))
    }

    fn points(out: &GoalSeekResult) -> Vec<Vec<(String, f64)>> {
        out.trace.iter().map(|s| s.params.clone()).collect()
    }
}
