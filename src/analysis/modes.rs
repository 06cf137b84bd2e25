//! What the six modes share: one driver ([`run`]) that builds the evaluator from the target,
//! checks `keep`, runs the mode and totals the accounting; metric evaluation of a point; the
//! trace of the iterative modes.

pub(crate) mod fit;
pub(crate) mod goal_seek;
pub(crate) mod monte_carlo;
pub(crate) mod optimize;
pub(crate) mod sensitivity;
pub(crate) mod sweep;

use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::metric::Resolved;
use crate::analysis::point::{Evaluator, Outcome};
use crate::analysis::{AnalysisError, Common, Control, MetricValue, PointResult, add, check_keep};
use crate::engine::Accounting;
use crate::engine::classes::per_class_mistake;
use crate::host::AnalysisBase;
use crate::model::grid::Grid;
use crate::sys;

/// One analysis mode: what it draws, and how it chooses and reduces points.
pub(crate) trait Eval {
    type Output;
    /// Pmf nodes the points draw per bin (Monte Carlo); none for the other modes.
    fn drawn(&self, _base: &AnalysisBase) -> Result<BTreeSet<String>, AnalysisError> {
        Ok(BTreeSet::new())
    }
    /// Validates the request against the evaluator's plan, declares the scope, checks the limits
    /// (all before any point), then evaluates.
    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<Self::Output, AnalysisError>;
    /// The parameter values of every evaluated point, in order (what `keep` makes variants of).
    fn points(out: &Self::Output) -> Vec<Vec<(String, f64)>>;
}

/// What every result carries besides its mode's answer.
#[derive(Clone, Debug)]
pub struct Totals {
    pub grid: Grid,
    /// The target's session revision the analysis ran at.
    pub revision: u64,
    /// Evaluating, once and before the points, the part of the target no point changes.
    pub preparation: Accounting,
    /// Points and preparation together; `elapsed_us` is the wall time of the whole analysis.
    pub accounting: Accounting,
    /// Every evaluated point's parameter values, in order.
    pub points: Vec<Vec<(String, f64)>>,
}

macro_rules! entry_points {
    ($($(#[$doc:meta])* $name:ident: $req:ty => $out:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(
            base: AnalysisBase,
            common: &Common,
            req: &$req,
            ctl: &Control<'_>,
        ) -> Result<($out, Totals), AnalysisError> {
            run(base, common, req, ctl)
        }
    )*};
}

entry_points! {
    /// A sweep of `base` (see [`sweep::Sweep`]).
    sweep: sweep::Sweep => sweep::SweepResult;
    /// A sensitivity analysis of `base` (see [`sensitivity::Sensitivity`]).
    sensitivity: sensitivity::Sensitivity => sensitivity::SensitivityResult;
    /// A goal seek on `base` (see [`goal_seek::GoalSeek`]).
    goal_seek: goal_seek::GoalSeek => goal_seek::GoalSeekResult;
    /// An optimisation on `base` (see [`optimize::Optimize`]).
    optimize: optimize::Optimize => optimize::OptimizeResult;
    /// A Monte Carlo analysis of `base` (see [`monte_carlo::MonteCarlo`]).
    monte_carlo: monte_carlo::MonteCarlo => monte_carlo::MonteCarloResult;
    /// A fit on `base` (see [`fit::Fit`]).
    fit: fit::Fit => fit::FitResult;
}

/// Runs one mode on `base`: nothing is stored; `common.keep` is only checked here (the caller
/// keeps the points once the analysis has succeeded).
fn run<M: Eval>(
    base: AnalysisBase,
    common: &Common,
    mode: &M,
    ctl: &Control<'_>,
) -> Result<(M::Output, Totals), AnalysisError> {
    let sw = sys::Stopwatch::start();
    let drawn = mode.drawn(&base)?;
    let mut ev = Evaluator::new(base, &common.params, drawn.clone())?;
    if let Some(prefix) = &common.keep {
        check_keep(prefix, &ev.base().variants)?;
        if !drawn.is_empty() {
            return Err(crate::analysis::invalid(
                "bad_keep",
                "keep",
                format!(
                    "these points draw the pmf node{} {}, which a variant cannot override",
                    if drawn.len() == 1 { "" } else { "s" },
                    drawn.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
                "keep only analyses whose points set parameters",
            )
            .into());
        }
    }
    let out = mode.execute(&mut ev, ctl)?;
    let preparation = ev.preparation();
    let mut accounting = ev.points_accounting();
    add(&mut accounting, &preparation);
    accounting.elapsed_us = sw.elapsed_us();
    let totals =
        Totals { grid: ev.plan().grid, revision: ev.base().revision, preparation, accounting, points: M::points(&out) };
    Ok((out, totals))
}

/// The metrics of one evaluated point.
pub(crate) fn metric_values(metrics: &[Resolved], o: &Outcome, params: &BTreeMap<String, f64>) -> Vec<MetricValue> {
    metrics
        .iter()
        .map(|m| {
            let v = m.eval(&o.series, params);
            MetricValue { metric: m.text.clone(), value: v.value, nan_bins: v.nan_bins }
        })
        .collect()
}

/// A [`PointResult`] from an outcome: its metrics and the requested series.
pub(crate) fn point_result(
    index: usize,
    params: &[(String, f64)],
    metrics: &[Resolved],
    series: &[String],
    o: &Outcome,
) -> PointResult {
    let map: BTreeMap<String, f64> = params.iter().cloned().collect();
    PointResult {
        index: index as u32,
        params: params.to_vec(),
        metrics: metric_values(metrics, o, &map),
        series: series.iter().filter_map(|id| Some((id.clone(), o.series.get(id)?.clone()))).collect(),
        accounting: o.accounting,
        structural: o.structural,
    }
}

/// One evaluation of an iterative mode (goal seek, optimize, fit), in the order it happened.
#[derive(Clone, Debug)]
pub struct TraceStep {
    pub params: Vec<(String, f64)>,
    /// What the mode ranks by: the metric (goal seek), the objective (optimize), the loss (fit).
    pub value: f64,
    /// The metrics evaluated at this step (constraints for optimize).
    pub metrics: Vec<MetricValue>,
    pub accounting: Accounting,
    pub structural: bool,
}

/// Refuses series ids the plan lacks, each located at `field[i]`, with the nearest id. A
/// per-class id `x@c` (§6.1) names the part of class `c` of a classed series `x`.
pub(crate) fn check_series(
    c: &crate::engine::plan::Compiled,
    ids: &[String],
    field: &str,
    diags: &mut Vec<crate::diag::Diagnostic>,
) {
    for (i, id) in ids.iter().enumerate() {
        if c.by_id.contains_key(id) || c.per_class(id).is_some() {
            continue;
        }
        let (message, help) = per_class_mistake(c, id).unwrap_or_else(|| {
            let all: Vec<&str> = c.by_id.keys().map(String::as_str).collect();
            let help = crate::model::doc::closest(id, &all)
                .map_or_else(|| "name a series of the model".to_string(), |n| format!("did you mean `{n}`?"));
            (format!("unknown series `{id}`"), help)
        });
        diags.push(crate::analysis::invalid("unknown_reference", format!("{field}[{i}]"), message, help));
    }
}

/// The series ids `metrics` read, then `extra`, without repeats, in that order.
pub(crate) fn target_ids(metrics: &[Resolved], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in metrics.iter().filter_map(|m| m.series_id()).map(str::to_string).chain(extra.iter().cloned()) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}
