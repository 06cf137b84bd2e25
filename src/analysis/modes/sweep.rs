//! Sweep: parameters over lists of values (several = the cartesian grid, the first varying
//! slowest); metrics per point, optionally the series.

use std::collections::BTreeSet;

use crate::analysis::metric::resolve_all;
use crate::analysis::modes::{Eval, check_series, point_result, target_ids};
use crate::analysis::point::{Evaluator, Point};
use crate::analysis::{AnalysisError, Control, PointResult, invalid};
use crate::diag::{Diagnostic, Diagnostics};

/// One parameter's values.
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    pub name: String,
    pub values: Vec<f64>,
}

impl Vary {
    /// `steps + 1` evenly spaced values from `lo` to `hi`, both included (`LO..HI/STEPS`).
    pub fn range(name: &str, lo: f64, hi: f64, steps: u32) -> Vary {
        let values =
            (0..=steps).map(|i| if i == steps { hi } else { lo + (hi - lo) * i as f64 / steps as f64 }).collect();
        Vary { name: name.to_string(), values }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Sweep {
    pub vary: Vec<Vary>,
    pub metrics: Vec<String>,
    /// Series returned with every point.
    pub series: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SweepResult {
    pub points: Vec<PointResult>,
}

impl Eval for Sweep {
    type Output = SweepResult;

    fn execute(&self, ev: &mut Evaluator, ctl: &Control<'_>) -> Result<SweepResult, AnalysisError> {
        let mut diags: Vec<Diagnostic> = Vec::new();
        if self.vary.is_empty() {
            diags.push(invalid(
                "bad_sweep",
                "vary",
                "a sweep needs at least one parameter to vary",
                "add `--vary NAME=V1,V2,…`",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, v) in self.vary.iter().enumerate() {
            let field = format!("vary[{i}]");
            if !seen.insert(v.name.clone()) {
                diags.push(invalid(
                    "bad_sweep",
                    format!("{field}.name"),
                    format!("parameter `{}` is varied twice", v.name),
                    "give each parameter one --vary with all its values",
                ));
                continue;
            }
            if let Err(d) = ev.numeric_param(&v.name, &format!("{field}.name")) {
                diags.push(d);
                continue;
            }
            if v.values.is_empty() {
                diags.push(invalid(
                    "bad_sweep",
                    format!("{field}.values"),
                    format!("`{}` has no values", v.name),
                    "give at least one value",
                ));
            }
            for (j, x) in v.values.iter().enumerate() {
                if let Err(d) = ev.typed(&v.name, *x, &format!("{field}.values[{j}]")) {
                    diags.push(d);
                    break;
                }
            }
        }
        if self.metrics.is_empty() && self.series.is_empty() {
            diags.push(invalid(
                "bad_sweep",
                "metrics",
                "a sweep needs a metric or a series to report",
                "add e.g. `--metric 'max(queue)'`",
            ));
        }
        let metrics = resolve_all(&self.metrics, "metrics", ev.plan(), ev.decls()).unwrap_or_else(|d| {
            diags.extend(d);
            Vec::new()
        });
        check_series(ev.plan(), &self.series, "series", &mut diags);
        if !diags.is_empty() {
            return Err(Diagnostics(diags).into());
        }
        let n = self.vary.iter().try_fold(1u64, |n, v| n.checked_mul(v.values.len() as u64)).unwrap_or(u64::MAX);
        ev.set_scope(self.vary.iter().map(|v| v.name.clone()).collect(), target_ids(&metrics, &self.series));
        ev.check_limits(n, ctl)?;
        let mut points = Vec::with_capacity(n as usize);
        for i in 0..n {
            // Row-major: the first parameter varies slowest.
            let mut rest = i;
            let mut params = vec![(String::new(), 0.0); self.vary.len()];
            for (k, v) in self.vary.iter().enumerate().rev() {
                let len = v.values.len() as u64;
                params[k] = (v.name.clone(), v.values[(rest % len) as usize]);
                rest /= len;
            }
            points.push(Point::of(params));
        }
        let outs = ev.run(&points, ctl, None)?;
        let points = points
            .iter()
            .zip(&outs)
            .enumerate()
            .map(|(i, (p, o))| point_result(i, &p.params, &metrics, &self.series, o))
            .collect();
        Ok(SweepResult { points })
    }

    fn points(out: &SweepResult) -> Vec<Vec<(String, f64)>> {
        out.points.iter().map(|p| p.params.clone()).collect()
    }
}
