//! Fit: bounded parameters chosen to minimise SSE, MAE or MAPE between a modelled series and an
//! observed one over a window, by the same Nelder–Mead search as optimize; then R², the residual
//! series and how flat the optimum is (the loss at ±5% of each fitted value).
//!
//! Bins where either series is NaN are skipped and counted; MAPE also skips bins where the
//! observed value is 0. `sse = Σ (m − o)²`, `mae = Σ |m − o| / n`, `mape = 100 × Σ |m − o| / |o| / n`,
//! `R² = 1 − SSE / Σ (o − ō)²` over the bins both series define.

use std::collections::BTreeMap;

use crate::analysis::modes::optimize::{Bound, Score, check_bounds, check_search, max_points, minimize};
use crate::analysis::modes::{Eval, TraceStep};
use crate::analysis::point::{Evaluator, Outcome, Point};
use crate::analysis::{AnalysisError, Control, MetricValue, invalid};
use crate::diag::{Diagnostic, Diagnostics};

/// What the modelled series is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// A series of the target (e.g. a const node bound to telemetry), at the target's values.
    Series(String),
    /// Values, one per bin of the grid (uploaded, or read by the caller from `series:`/`file:`).
    Values(Vec<f64>),
    /// A series CSV the caller reads against the target's grid before the analysis starts
    /// (the server does, under the host lock); the analysis itself refuses it.
    Csv { text: String, source: String },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loss {
    #[default]
    Sse,
    Mae,
    Mape,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Sse => "sse",
            Loss::Mae => "mae",
            Loss::Mape => "mape",
        }
    }

    pub fn parse(s: &str) -> Option<Loss> {
        match s.to_ascii_lowercase().as_str() {
            "sse" => Some(Loss::Sse),
            "mae" => Some(Loss::Mae),
            "mape" => Some(Loss::Mape),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Fit {
    pub params: Vec<Bound>,
    pub modelled: String,
    pub observed: Observed,
    /// `[a, b)`; None is the whole grid.
    pub window: Option<(u32, u32)>,
    pub loss: Loss,
    pub max_iterations: u32,
    pub tolerance: Option<f64>,
}

/// The loss with one fitted value moved by ±5% (the others at their fitted values).
#[derive(Clone, Debug, PartialEq)]
pub struct Flatness {
    pub param: String,
    pub low: f64,
    pub low_loss: f64,
    pub high: f64,
    pub high_loss: f64,
}

#[derive(Clone, Debug)]
pub struct FitResult {
    pub params: Vec<(String, f64)>,
    pub loss: f64,
    pub loss_kind: Loss,
    pub r2: f64,
    pub converged: bool,
    pub iterations: u64,
    pub window: (u32, u32),
    /// Observed − modelled at the fitted values, per bin of the window (NaN where either is).
    pub residuals: Vec<f64>,
    pub bins_used: u32,
    pub bins_skipped: u32,
    /// NaN where ±5% leaves the parameter's declared range.
    pub flatness: Vec<Flatness>,
    pub trace: Vec<TraceStep>,
    pub message: String,
}

/// The loss of `m` against `o`, with the bins used and skipped.
pub(crate) fn loss(kind: Loss, m: &[f64], o: &[f64]) -> (f64, u32, u32) {
    let (mut sum, mut n, mut skipped) = (0.0, 0u32, 0u32);
    for (x, y) in m.iter().zip(o) {
        if x.is_nan() || y.is_nan() || (kind == Loss::Mape && *y == 0.0) {
            skipped += 1;
            continue;
        }
        n += 1;
        sum += match kind {
            Loss::Sse => (x - y) * (x - y),
            Loss::Mae => (x - y).abs(),
            Loss::Mape => (x - y).abs() / y.abs(),
        };
    }
    let value = match (kind, n) {
        (_, 0) => f64::NAN,
        (Loss::Sse, _) => sum,
        (Loss::Mae, _) => sum / n as f64,
        (Loss::Mape, _) => 100.0 * sum / n as f64,
    };
    (value, n, skipped)
}

/// `1 − SSE / SST` over the bins both define; NaN when the observed values are constant.
pub(crate) fn r_squared(m: &[f64], o: &[f64]) -> f64 {
    let pairs: Vec<(f64, f64)> =
        m.iter().zip(o).filter(|(x, y)| !x.is_nan() && !y.is_nan()).map(|(x, y)| (*x, *y)).collect();
    if pairs.is_empty() {
        return f64::NAN;
    }
    let mean = pairs.iter().fold(0.0, |a, (_, y)| a + y) / pairs.len() as f64;
    let sse = pairs.iter().fold(0.0, |a, (x, y)| a + (x - y) * (x - y));
    let sst = pairs.iter().fold(0.0, |a, (_, y)| a + (y - mean) * (y - mean));
    if sst == 0.0 { f64::NAN } else { 1.0 - sse / sst }
}

impl Fit {
    fn observed_of<'a>(&'a self, o: &'a Outcome) -> &'a [f64] {
        match &self.observed {
            Observed::Values(v) => v,
            Observed::Series(id) => o.series.get(id).map_or(&[][..], |s| &s[..]),
            Observed::Csv { .. } => &[],
        }
    }
}

impl Eval for Fit {
    type Output = FitResult;

    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<FitResult, AnalysisError> {
        let mut diags: Vec<Diagnostic> = Vec::new();
        check_bounds(ev, &self.params, "params", &mut diags);
        check_search(self.max_iterations, self.tolerance, &mut diags);
        let bins = ev.plan().grid.bins;
        let known = |id: &str, field: &str, diags: &mut Vec<Diagnostic>| {
            if !ev.plan().by_id.contains_key(id) {
                let ids: Vec<&str> = ev.plan().by_id.keys().map(String::as_str).collect();
                let help = crate::model::doc::closest(id, &ids)
                    .map_or("name a series of the model".to_string(), |n| format!("did you mean `{n}`?"));
                diags.push(invalid("unknown_reference", field, format!("unknown series `{id}`"), help));
            }
        };
        known(&self.modelled, "modelled", &mut diags);
        let mut targets = vec![self.modelled.clone()];
        match &self.observed {
            Observed::Series(id) => {
                known(id, "observed", &mut diags);
                targets.push(id.clone());
            }
            Observed::Values(v) if v.len() != bins as usize => diags.push(invalid(
                "series_length",
                "observed",
                format!("the observed series has {} values; the grid has {bins} bins", v.len()),
                format!("supply exactly {bins} values"),
            )),
            Observed::Values(_) => {}
            Observed::Csv { source, .. } => diags.push(invalid(
                "bad_observed",
                "observed",
                format!("the observed CSV {source} was not read against the grid"),
                "read it with `model::series::parse_series_csv` first",
            )),
        }
        let (a, b) = self.window.unwrap_or((0, bins));
        if !(a < b && b <= bins) {
            diags.push(invalid(
                "bad_window",
                "window",
                format!("the window {a}..{b} is empty or outside the grid of {bins} bins"),
                format!("use a..b with 0 ≤ a < b ≤ {bins}"),
            ));
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags).into());
        }
        ev.set_scope(self.params.iter().map(|p| p.name.clone()).collect(), targets);
        if let Observed::Series(id) = &self.observed
            && ev.reads_varied(id)
        {
            return Err(invalid(
                "bad_observed",
                "observed",
                format!("the observed series `{id}` changes with the fitted parameters"),
                "compare with a series the parameters do not reach (telemetry, a const node)",
            )
            .into());
        }
        let total = max_points(self.params.len(), self.max_iterations) + 2 * self.params.len() as u64;
        ev.check_limits(total, ctl)?;
        let (a, b) = (a as usize, b as usize);
        let kind = self.loss;
        let score = |o: &Outcome, _: &BTreeMap<String, f64>| {
            let m = o.series.get(&self.modelled).map_or(&[][..], |s| &s[..]);
            let obs = self.observed_of(o);
            let (l, _, skipped) = loss(kind, &m[a..b], &obs[a..b]);
            let metric = MetricValue { metric: kind.name().to_string(), value: l, nan_bins: skipped };
            Score { cost: l, shown: l, violation: 0.0, metrics: vec![metric] }
        };
        let found = minimize(ev, ctl, &self.params, &score, self.max_iterations, self.tolerance, total)?;
        // The fitted point once more, for its series, then ±5% of each value.
        let fitted = Point::of(found.best.clone());
        let mut points = vec![fitted];
        let mut moved = Vec::new();
        for (i, (name, v)) in found.best.iter().enumerate() {
            for f in [0.95, 1.05] {
                let x = v * f;
                let ok = ev.typed(name, x, name).is_ok();
                moved.push((name.clone(), x, ok));
                if ok {
                    let mut p = found.best.clone();
                    p[i].1 = x;
                    points.push(Point::of(p));
                }
            }
        }
        let outs = ev.run(&points, ctl, None)?;
        let m = &outs[0].series[&self.modelled][a..b];
        let obs = &self.observed_of(&outs[0])[a..b];
        let (l, used, skipped) = loss(kind, m, obs);
        let residuals = obs.iter().zip(m).map(|(y, x)| y - x).collect();
        let mut losses = outs[1..].iter().map(|o| {
            let m = o.series.get(&self.modelled).map_or(&[][..], |s| &s[a..b]);
            loss(kind, m, &self.observed_of(o)[a..b]).0
        });
        let mut flat_losses =
            moved.iter().map(|(_, _, ok)| if *ok { losses.next().unwrap_or(f64::NAN) } else { f64::NAN });
        let flatness = found
            .best
            .iter()
            .enumerate()
            .map(|(i, (name, _))| Flatness {
                param: name.clone(),
                low: moved[2 * i].1,
                low_loss: flat_losses.next().unwrap_or(f64::NAN),
                high: moved[2 * i + 1].1,
                high_loss: flat_losses.next().unwrap_or(f64::NAN),
            })
            .collect();
        Ok(FitResult {
            params: found.best,
            loss: l,
            loss_kind: kind,
            r2: r_squared(m, obs),
            converged: found.converged,
            iterations: found.iterations,
            window: (a as u32, b as u32),
            residuals,
            bins_used: used,
            bins_skipped: skipped,
            flatness,
            trace: found.trace,
            message: found.message,
        })
    }

    fn points(out: &FitResult) -> Vec<Vec<(String, f64)>> {
        out.trace.iter().map(|s| s.params.clone()).collect()
    }
}
