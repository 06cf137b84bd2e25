//! Monte Carlo: `samples` points, each drawing every pmf node that the requested series and
//! metrics read, bin by bin, and each parameter given a distribution; then per-bin bands (p5,
//! p50, p95, mean) of the requested series and the distribution of each metric.
//!
//! Draws are counter-based ([`crate::analysis::random`]): sample `s` of seed `S` is the same
//! whatever worker evaluates it. A parameter's draws outside its declared range are drawn again
//! (the distribution is truncated to the range). Outside Monte Carlo a pmf stays its expected
//! value. Bands and summaries skip NaN and use the quantile of [`crate::analysis::metric`]; the
//! mean sums in sample order.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::analysis::metric::{Resolved, quantile_of, resolve_all};
use crate::analysis::modes::{Eval, check_series, metric_values, target_ids};
use crate::analysis::point::{Evaluator, Point};
use crate::analysis::random::{Dist, MAX_REDRAWS, param_value, pmf_series};
use crate::analysis::{AnalysisError, Control, invalid};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::Accounting;
use crate::engine::plan::{Compiled, SeriesKind};
use crate::host::AnalysisBase;
use crate::model::doc::NodeDef;

pub use crate::analysis::random::Dist as Distribution;

#[derive(Clone, Debug, Default)]
pub struct MonteCarlo {
    pub samples: u32,
    pub seed: u64,
    /// Series to band.
    pub series: Vec<String>,
    pub metrics: Vec<String>,
    pub distributions: Vec<(String, Dist)>,
}

/// Per-bin quantiles and mean of one series over the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub p5: Vec<f64>,
    pub p50: Vec<f64>,
    pub p95: Vec<f64>,
    pub mean: Vec<f64>,
}

/// One metric's distribution over the samples (NaN samples skipped and counted).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSummary {
    pub mean: f64,
    pub p5: f64,
    pub p50: f64,
    pub p95: f64,
    pub nan_samples: u32,
}

#[derive(Clone, Debug)]
pub struct MonteCarloResult {
    pub samples: u32,
    pub seed: u64,
    /// The pmf nodes drawn per bin.
    pub drawn: Vec<String>,
    pub bands: Vec<(String, Band)>,
    pub metrics: Vec<(String, MetricSummary)>,
    /// Each sample's parameter values (empty without distributions).
    pub params: Vec<Vec<(String, f64)>>,
    pub sample_accounting: Vec<Accounting>,
}

impl MonteCarlo {
    /// The metrics, resolved against `c`.
    fn resolve(
        &self,
        c: &Compiled,
        ev_decls: &[crate::model::params::ParamDecl],
    ) -> Result<Vec<Resolved>, Vec<Diagnostic>> {
        resolve_all(&self.metrics, "metrics", c, ev_decls)
    }
}

/// Summary of NaN-free `values` (reordered).
fn summary(values: &mut [f64], nan_samples: u32) -> MetricSummary {
    let mean = if values.is_empty() { f64::NAN } else { values.iter().fold(0.0, |a, v| a + v) / values.len() as f64 };
    MetricSummary {
        mean,
        p5: quantile_of(values, 0.05),
        p50: quantile_of(values, 0.5),
        p95: quantile_of(values, 0.95),
        nan_samples,
    }
}

impl Eval for MonteCarlo {
    type Output = MonteCarloResult;

    /// Every pmf node in the closure of the requested series and metrics.
    fn drawn(&self, base: &AnalysisBase) -> Result<BTreeSet<String>, AnalysisError> {
        let c = &base.plan;
        let metrics = self.resolve(c, &base.decls).map_err(Diagnostics)?;
        let ids = target_ids(&metrics, &self.series);
        let targets: Vec<u32> = ids.iter().filter_map(|id| c.by_id.get(id).copied()).collect();
        let closure: BTreeSet<u32> = c.closure(Some(&targets)).into_iter().collect();
        Ok(c.series
            .iter()
            .filter(|s| s.kind == SeriesKind::Pmf && closure.contains(&s.unit))
            .map(|s| s.id.clone())
            .collect())
    }

    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<MonteCarloResult, AnalysisError> {
        let mut diags: Vec<Diagnostic> = Vec::new();
        if self.samples == 0 {
            diags.push(invalid("bad_samples", "samples", "zero samples", "give --samples N with N ≥ 1"));
        }
        if self.series.is_empty() && self.metrics.is_empty() {
            diags.push(invalid(
                "bad_monte_carlo",
                "series",
                "name a series to band or a metric",
                "add `--series ID` or `--metric 'max(ID)'`",
            ));
        }
        check_series(ev.plan(), &self.series, "series", &mut diags);
        let metrics = self.resolve(ev.plan(), ev.decls()).unwrap_or_else(|d| {
            diags.extend(d);
            Vec::new()
        });
        let mut seen = BTreeSet::new();
        for (i, (name, dist)) in self.distributions.iter().enumerate() {
            let field = format!("distributions[{i}]");
            if !seen.insert(name.clone()) {
                diags.push(invalid(
                    "bad_distribution",
                    field,
                    format!("parameter `{name}` has two distributions"),
                    "give each one",
                ));
                continue;
            }
            match ev.numeric_param(name, &format!("{field}.name")) {
                Ok(d) if d.ty == crate::model::params::ParamType::Integer && !dist.whole() => diags.push(invalid(
                    "bad_distribution",
                    field,
                    format!("parameter `{name}` is an integer; only a discrete distribution of whole numbers fits it"),
                    "e.g. discrete(1:0.5,2:0.5)",
                )),
                Ok(_) => {
                    if let Err(e) = dist.check() {
                        diags.push(invalid("bad_distribution", field, e, "see docs/analysis.md for the distributions"));
                    }
                }
                Err(d) => diags.push(d),
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags).into());
        }
        let bins = ev.plan().grid.bins as usize;
        let drawn: Vec<(String, Vec<f64>, Vec<f64>)> = ev
            .plan()
            .document
            .nodes
            .iter()
            .filter_map(|n| match &n.def {
                NodeDef::Pmf { values, probabilities } if ev.is_drawn(&n.id) => {
                    Some((n.id.clone(), values.clone(), probabilities.clone()))
                }
                _ => None,
            })
            .collect();
        ev.set_scope(self.distributions.iter().map(|(n, _)| n.clone()).collect(), target_ids(&metrics, &self.series));
        ev.check_limits(self.samples as u64, ctl)?;
        // Parameter draws first (cheap), so an impossible truncation is refused before any work.
        let mut points = Vec::with_capacity(self.samples as usize);
        for s in 0..self.samples as u64 {
            let mut params = Vec::with_capacity(self.distributions.len());
            for (i, (name, dist)) in self.distributions.iter().enumerate() {
                let v =
                    param_value(self.seed, name, s, dist, |v| ev.typed(name, v, name).is_ok()).ok_or_else(|| {
                        invalid(
                            "bad_distribution",
                            format!("distributions[{i}]"),
                            format!(
                                "sample {s} of `{name}` found no value in its declared range in {MAX_REDRAWS} draws"
                            ),
                            "choose a distribution that lies mostly inside the parameter's range",
                        )
                    })?;
                params.push((name.clone(), v));
            }
            points.push(Point::of(params));
        }
        let seed = self.seed;
        let expand = |i: usize, p: &mut Point| {
            p.series = drawn
                .iter()
                .map(|(node, values, probs)| {
                    (node.clone(), Arc::from(pmf_series(seed, node, i as u64, values, probs, bins)))
                })
                .collect();
        };
        let outs = ev.run(&points, ctl, Some(&expand))?;
        let bands = self
            .series
            .iter()
            .map(|id| {
                let mut band = Band { p5: Vec::new(), p50: Vec::new(), p95: Vec::new(), mean: Vec::new() };
                let mut column = Vec::with_capacity(outs.len());
                for t in 0..bins {
                    column.clear();
                    column.extend(outs.iter().filter_map(|o| o.series.get(id).map(|s| s[t])).filter(|v| !v.is_nan()));
                    let s = summary(&mut column, 0);
                    band.p5.push(s.p5);
                    band.p50.push(s.p50);
                    band.p95.push(s.p95);
                    band.mean.push(s.mean);
                }
                (id.clone(), band)
            })
            .collect();
        let values: Vec<Vec<f64>> = points
            .iter()
            .zip(&outs)
            .map(|(p, o)| metric_values(&metrics, o, &p.param_map()).into_iter().map(|m| m.value).collect())
            .collect();
        let summaries = metrics
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let mut col: Vec<f64> = values.iter().map(|v| v[k]).filter(|v| !v.is_nan()).collect();
                let nan = (values.len() - col.len()) as u32;
                (m.text.clone(), summary(&mut col, nan))
            })
            .collect();
        Ok(MonteCarloResult {
            samples: self.samples,
            seed,
            drawn: drawn.into_iter().map(|(n, _, _)| n).collect(),
            bands,
            metrics: summaries,
            params: points.into_iter().map(|p| p.params).collect(),
            sample_accounting: outs.iter().map(|o| o.accounting).collect(),
        })
    }

    fn points(out: &MonteCarloResult) -> Vec<Vec<(String, f64)>> {
        out.params.clone()
    }
}
