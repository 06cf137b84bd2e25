//! Sensitivity: for each parameter, the central-difference gradient of a metric at the target's
//! values and its elasticity (`gradient × value / metric`), ranked by |elasticity|.
//!
//! The step is `relative_step × |value|`, or `absolute_step` where the value is 0 (the row says
//! which); for an integer parameter it is rounded to a whole number, at least 1. Where a step
//! would leave the parameter's declared range, that side stays at the value (a forward or
//! backward difference, which the row names).

use std::collections::BTreeSet;

use crate::analysis::metric::resolve_one;
use crate::analysis::modes::{Eval, point_result, target_ids};
use crate::analysis::point::{Evaluator, Point};
use crate::analysis::{AnalysisError, Control, MetricValue, PointResult, invalid};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::params::ParamType;

#[derive(Clone, Debug)]
pub struct Sensitivity {
    pub params: Vec<String>,
    pub metric: String,
    /// Step as a fraction of the value (default 0.01).
    pub relative_step: f64,
    /// Step where the value is 0 (default 0.01).
    pub absolute_step: f64,
}

impl Default for Sensitivity {
    fn default() -> Sensitivity {
        Sensitivity { params: Vec::new(), metric: String::new(), relative_step: 0.01, absolute_step: 0.01 }
    }
}

/// One parameter's result.
#[derive(Clone, Debug, PartialEq)]
pub struct SensitivityRow {
    pub param: String,
    pub value: f64,
    pub step: f64,
    /// True when the value is 0 and `absolute_step` was used.
    pub absolute: bool,
    /// `central`, `forward` or `backward`.
    pub scheme: &'static str,
    pub low: f64,
    pub high: f64,
    pub metric_low: f64,
    pub metric_high: f64,
    pub gradient: f64,
    /// NaN where the metric at the target is 0 or NaN.
    pub elasticity: f64,
    /// 1 for the largest |elasticity|; NaN elasticities rank last.
    pub rank: u32,
}

#[derive(Clone, Debug)]
pub struct SensitivityResult {
    pub metric: MetricValue,
    /// Ranked.
    pub rows: Vec<SensitivityRow>,
    /// The target's point, then each parameter's low and high points.
    pub points: Vec<PointResult>,
}

impl Eval for Sensitivity {
    type Output = SensitivityResult;

    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<SensitivityResult, AnalysisError> {
        let mut diags: Vec<Diagnostic> = Vec::new();
        if self.params.is_empty() {
            diags.push(invalid("bad_sensitivity", "params", "name at least one parameter", "add `--param NAME`"));
        }
        for (field, s) in [("relative_step", self.relative_step), ("absolute_step", self.absolute_step)] {
            if !(s.is_finite() && s > 0.0) {
                diags.push(invalid(
                    "bad_sensitivity",
                    field,
                    format!("{field} must be a finite number > 0, got {s}"),
                    "e.g. 0.01",
                ));
            }
        }
        let mut seen = BTreeSet::new();
        let mut plan = Vec::new();
        for (i, name) in self.params.iter().enumerate() {
            let field = format!("params[{i}]");
            if !seen.insert(name.clone()) {
                diags.push(invalid(
                    "bad_sensitivity",
                    field,
                    format!("parameter `{name}` is named twice"),
                    "name each once",
                ));
                continue;
            }
            let d = match ev.numeric_param(name, &field) {
                Ok(d) => d.clone(),
                Err(e) => {
                    diags.push(e);
                    continue;
                }
            };
            let v = ev.value(name);
            let absolute = v == 0.0;
            let mut h = if absolute { self.absolute_step } else { self.relative_step * v.abs() };
            if d.ty == ParamType::Integer {
                h = h.round().max(1.0);
            }
            let (mut low, mut high, mut scheme) = (v - h, v + h, "central");
            if d.min.is_some_and(|m| low < m) {
                (low, scheme) = (v, "forward");
            }
            if d.max.is_some_and(|m| high > m) {
                (high, scheme) = (v, if scheme == "forward" { "none" } else { "backward" });
            }
            if scheme == "none" {
                diags.push(invalid(
                    "bad_sensitivity",
                    field,
                    format!("a step of {h} around {name} = {v} leaves its declared range on both sides"),
                    "use a smaller relative_step",
                ));
                continue;
            }
            plan.push((name.clone(), v, h, absolute, scheme, low, high));
        }
        let metric = resolve_one(&self.metric, "metric", ev.plan(), ev.decls()).map(|m| vec![m]).unwrap_or_else(|d| {
            diags.extend(d);
            Vec::new()
        });
        if !diags.is_empty() {
            return Err(Diagnostics(diags).into());
        }
        ev.set_scope(self.params.iter().cloned().collect(), target_ids(&metric, &[]));
        ev.check_limits(1 + 2 * plan.len() as u64, ctl)?;
        let mut points = vec![Point::of(Vec::new())];
        for (name, _, _, _, _, low, high) in &plan {
            points.push(Point::of(vec![(name.clone(), *low)]));
            points.push(Point::of(vec![(name.clone(), *high)]));
        }
        let outs = ev.run(&points, ctl, None)?;
        let results: Vec<PointResult> = points
            .iter()
            .zip(&outs)
            .enumerate()
            .map(|(i, (p, o))| point_result(i, &p.params, &metric, &[], o))
            .collect();
        let at = |i: usize| results[i].metrics[0].value;
        let base = at(0);
        let mut rows: Vec<SensitivityRow> = plan
            .into_iter()
            .enumerate()
            .map(|(k, (param, value, step, absolute, scheme, low, high))| {
                let (metric_low, metric_high) = (at(1 + 2 * k), at(2 + 2 * k));
                let gradient = (metric_high - metric_low) / (high - low);
                let elasticity = if base == 0.0 || base.is_nan() { f64::NAN } else { gradient * value / base };
                SensitivityRow {
                    param,
                    value,
                    step,
                    absolute,
                    scheme,
                    low,
                    high,
                    metric_low,
                    metric_high,
                    gradient,
                    elasticity,
                    rank: 0,
                }
            })
            .collect();
        // Largest |elasticity| first; NaN last; ties keep the request order (a stable sort).
        rows.sort_by(|a, b| match (a.elasticity.is_nan(), b.elasticity.is_nan()) {
            (false, false) => b.elasticity.abs().total_cmp(&a.elasticity.abs()),
            (x, y) => x.cmp(&y),
        });
        for (i, r) in rows.iter_mut().enumerate() {
            r.rank = i as u32 + 1;
        }
        Ok(SensitivityResult { metric: results[0].metrics[0].clone(), rows, points: results })
    }

    fn points(out: &SensitivityResult) -> Vec<Vec<(String, f64)>> {
        out.points.iter().map(|p| p.params.clone()).collect()
    }
}
