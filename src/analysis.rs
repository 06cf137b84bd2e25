//! Analyses (§11): sweep, sensitivity, goal seek, optimize, Monte Carlo and fit, each a
//! composition over one point evaluator ([`point`]).
//!
//! A sweep is a list of points; sensitivity is a sweep around the target's values; goal seek is
//! a bracketing root finder (argmin's Brent) choosing the next point; optimize and fit are a
//! derivative-free optimiser (argmin's Nelder–Mead) driving the same evaluator; Monte Carlo is a
//! sweep over drawn points ([`random`]). Every point evaluates only the cone of what it changes,
//! on the shared salsa cache, and carries its §9 accounting; nothing is stored (the server keeps
//! points as variants afterwards when asked to).
//!
//! Invariant: results depend only on the request and the target, never on the thread count or
//! on scheduling: points come back in input order, random draws are counter-based, the
//! iterative modes evaluate one point at a time, and identical points are evaluated once.
//! Only `elapsed_us` varies between runs.

pub mod metric;
mod modes;
mod point;
pub mod random;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::{Accounting, Series};
use crate::host::HostError;
use crate::model::template::Supplied;

pub use modes::fit::{Fit, FitResult, Flatness, Loss, Observed};
pub use modes::goal_seek::{GoalSeek, GoalSeekResult};
pub use modes::monte_carlo::{Band, Distribution, MetricSummary, MonteCarlo, MonteCarloResult};
pub use modes::optimize::{Bound, Cmp, Constraint, Optimize, OptimizeResult};
pub use modes::sensitivity::{Sensitivity, SensitivityResult, SensitivityRow};
pub use modes::sweep::{Sweep, SweepResult, Vary};
pub use modes::{Totals, TraceStep, fit, goal_seek, monte_carlo, optimize, sensitivity, sweep};

/// Most points one analysis may evaluate (the evaluation budget applies as well).
pub const DEFAULT_MAX_POINTS: u64 = 100_000;

/// Limits an analysis is checked against before any work.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest `bins × units` the whole analysis may evaluate, points and preparation together.
    pub eval_budget: u64,
    /// Most points (samples, evaluations).
    pub max_points: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { eval_budget: 200_000_000, max_points: DEFAULT_MAX_POINTS }
    }
}

/// How far an analysis has got, for progress events.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub done: u64,
    /// Points the analysis evaluates at most (iterative modes may stop earlier).
    pub total: u64,
    /// The best point so far, for modes that have one.
    pub best: Option<Best>,
}

/// The best point so far: its parameter values and the quantity the mode ranks by (the
/// objective, the loss, or |metric − target| for goal seek).
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub params: Vec<(String, f64)>,
    pub value: f64,
}

/// What the caller controls while an analysis runs: cancellation, progress, threads, limits.
pub struct Control<'a> {
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(&Progress) + Sync),
    /// Workers for modes whose points are independent (at least 1).
    pub threads: usize,
    pub limits: Limits,
}

impl Control<'_> {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Reports progress: every point of small analyses, about every percent of large ones.
    pub(crate) fn report(&self, done: u64, total: u64, best: Option<Best>) {
        let step = (total / 100).max(1);
        if done == total || done % step == 0 || best.is_some() {
            (self.progress)(&Progress { done, total, best });
        }
    }
}

/// Why an analysis produced no result.
#[derive(Debug)]
pub enum AnalysisError {
    /// Bad input (located), limits, missing targets, failed points.
    Host(HostError),
    /// The caller cancelled.
    Cancelled,
    /// A concurrent write changed the database under the analysis; retry.
    Interrupted,
}

impl From<HostError> for AnalysisError {
    fn from(e: HostError) -> AnalysisError {
        AnalysisError::Host(e)
    }
}

impl From<Diagnostics> for AnalysisError {
    fn from(d: Diagnostics) -> AnalysisError {
        AnalysisError::Host(HostError::BadInput(d))
    }
}

impl From<Diagnostic> for AnalysisError {
    fn from(d: Diagnostic) -> AnalysisError {
        AnalysisError::Host(HostError::BadInput(d.into()))
    }
}

impl std::fmt::Display for AnalysisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnalysisError::Host(e) => write!(f, "{e}"),
            AnalysisError::Cancelled => f.write_str("the analysis was cancelled"),
            AnalysisError::Interrupted => {
                f.write_str("a concurrent write changed the target during the analysis; retry")
            }
        }
    }
}

/// What every mode's request shares.
#[derive(Clone, Debug, Default)]
pub struct Common {
    /// Parameter values applied to every point (on top of the target's), like a variant's.
    pub params: BTreeMap<String, Supplied>,
    /// Keep every point as variant `<prefix>-<index>` of the target's session.
    pub keep: Option<String>,
}

/// One metric's value at one point: NaN bins were skipped and are counted.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    pub metric: String,
    pub value: f64,
    pub nan_bins: u32,
}

/// One evaluated point of a sweep, a sensitivity or a trace.
#[derive(Clone, Debug)]
pub struct PointResult {
    pub index: u32,
    /// The point's own parameter values, in request order.
    pub params: Vec<(String, f64)>,
    pub metrics: Vec<MetricValue>,
    /// Requested series, whole grid.
    pub series: Vec<(String, Series)>,
    pub accounting: Accounting,
    /// True when the point's graph differs from the target's (a structural parameter changed).
    pub structural: bool,
}

/// Adds `b` into `a`.
pub(crate) fn add(a: &mut Accounting, b: &Accounting) {
    a.add_counts(b);
    a.elapsed_us += b.elapsed_us;
}

/// A located bad-input diagnostic at `field`.
pub(crate) fn invalid(
    code: &str,
    field: impl Into<String>,
    message: impl Into<String>,
    help: impl Into<String>,
) -> Diagnostic {
    Diagnostic::error(code, message).at_path(field.into()).with_help(help)
}

/// Checks that `prefix-<i>` names valid, free variant names before any work.
pub(crate) fn check_keep(prefix: &str, existing: &[String]) -> Result<(), HostError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 100
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if !ok {
        return Err(HostError::BadInput(
            invalid(
                "bad_id",
                "keep",
                format!("`{prefix}` cannot prefix variant names"),
                "use 1–100 letters, digits, `_`, `-` or `.`",
            )
            .into(),
        ));
    }
    let numbered = |v: &&String| {
        v.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match existing.iter().find(numbered) {
        Some(v) => Err(HostError::AlreadyExists(format!(
            "variant `{v}` (points kept as `{prefix}-<i>` could clash; choose another prefix, or delete those variants)"
        ))),
        None => Ok(()),
    }
}
