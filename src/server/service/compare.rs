//! Comparison of two operands (targets evaluated on a snapshot, or stored runs read from their
//! directories) for the QueryService's `Compare`.

use std::collections::BTreeMap;

use tonic::Status;

use crate::artifacts;
use crate::host::{HostError, Target, View};
use crate::model::grid::parse_utc_minutes;
use crate::server::convert;
use crate::server::pb;
use crate::server::status::invalid_field;

use super::{Api, check_budget, check_budget_all, every_series, to_host};

pub(super) enum Op {
    Target(Target),
    Run(String),
}

pub(super) fn operand(field: &str, o: Option<&pb::Operand>) -> Result<Op, Status> {
    match o.and_then(|o| o.kind.as_ref()) {
        Some(pb::operand::Kind::Target(t)) => Ok(Op::Target(convert::target(field, Some(t))?)),
        Some(pb::operand::Kind::RunId(id)) if !id.is_empty() => Ok(Op::Run(id.clone())),
        _ => Err(invalid_field(field, "give a target {session, variant?} or a run_id")),
    }
}

pub(super) type RunValues = (crate::model::grid::Grid, BTreeMap<String, Vec<f64>>);

impl Api {
    pub(super) async fn run_values(&self, id: &str) -> Result<RunValues, Status> {
        let id = id.to_string();
        let rec = self.with_host("run_id", move |h| h.run(&id)).await?;
        tokio::task::spawn_blocking(move || -> Result<RunValues, Status> {
            let (grid, values) = artifacts::read_run_series(std::path::Path::new(&rec.dir))
                .map_err(|d| crate::server::status::from_host("run_id", HostError::from(d)))?;
            let start = grid["start"].as_str().map(parse_utc_minutes).transpose().map_err(Status::internal)?;
            let unit = crate::model::grid::BinUnit::parse(grid["binUnit"].as_str().unwrap_or("minutes"))
                .unwrap_or(crate::model::grid::BinUnit::Minutes);
            let g = crate::model::grid::Grid {
                bins: grid["bins"].as_u64().unwrap_or(0) as u32,
                bin_size: grid["binSize"].as_u64().unwrap_or(1) as u32,
                bin_unit: unit,
                start_minutes: start,
            };
            Ok((g, values))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

/// Operands of a comparison must cover the same bins.
fn same_grids(ga: &crate::model::grid::Grid, gb: &crate::model::grid::Grid) -> Result<(), HostError> {
    if ga.same_window(gb) {
        return Ok(());
    }
    Err(HostError::FailedPrecondition(format!(
        "the operands have different grids ({} vs {})",
        ga.describe(),
        gb.describe()
    )))
}

pub(super) fn compare_operands(
    v: &View<'_>,
    a: &Op,
    b: &Op,
    run_a: Option<&RunValues>,
    run_b: Option<&RunValues>,
    r: &pb::CompareRequest,
    budget: u64,
) -> Result<pb::CompareResponse, HostError> {
    let mut accounting = crate::engine::Accounting::default();
    let (ids_filter, pattern) = (&r.ids, &r.pattern);
    let keep = |id: &str| {
        (ids_filter.is_empty() && pattern.is_empty())
            || ids_filter.iter().any(|x| x == id)
            || (!pattern.is_empty() && crate::model::series::glob(pattern, id))
    };
    // (id, identical by construction, values in a, values in b)
    type Row = (String, bool, Option<Vec<f64>>, Option<Vec<f64>>);
    let mut rows: Vec<Row> = Vec::new();
    let grid;
    let (mut rev_a, mut rev_b) = (0, 0);
    match (a, b) {
        (Op::Target(ta), Op::Target(tb)) => {
            let ca = v.compiled_target(ta)?;
            let cb = v.compiled_target(tb)?;
            same_grids(&ca.grid, &cb.grid)?;
            // Both sides may evaluate: they share one budget.
            check_budget_all(&[(&ca, None, &every_series(&ca)), (&cb, None, &every_series(&cb))], budget)?;
            let cmp = v.compare(ta, tb)?;
            accounting = cmp.accounting;
            grid = ca.grid;
            rev_a = v.scenario(ta)?.1;
            rev_b = v.scenario(tb)?.1;
            for d in cmp.series {
                if keep(&d.id) {
                    rows.push((d.id, d.identical_by_construction, d.a.map(|s| s.to_vec()), d.b.map(|s| s.to_vec())));
                }
            }
        }
        _ => {
            let side = |op: &Op,
                        run: Option<&RunValues>,
                        rev: &mut u64,
                        acc: &mut crate::engine::Accounting|
             -> Result<RunValues, HostError> {
                match (op, run) {
                    (Op::Run(_), Some(rv)) => Ok(rv.clone()),
                    (Op::Target(t), _) => {
                        let c = v.compiled_target(t)?;
                        check_budget(&c, None, &every_series(&c), budget)?;
                        let mut ev = v.evaluate_target(t, None)?;
                        // Per-class series (§6.1), as a run of this target lists them.
                        if c.classes.is_some() {
                            let all: Vec<u32> = ev.series.keys().copied().collect();
                            v.evaluate_mixes(t, &mut ev, &all)?;
                        }
                        acc.add_counts(&ev.accounting);
                        *rev = v.scenario(t)?.1;
                        Ok((
                            c.grid,
                            ev.compiled
                                .by_id
                                .keys()
                                .filter_map(|id| Some((id.clone(), ev.get(id)?.to_vec())))
                                .chain(ev.mixes.keys().flat_map(|s| {
                                    let ev = &ev;
                                    ev.classes_of(*s)
                                        .into_iter()
                                        .filter_map(move |k| Some((ev.class_series_id(*s, k), ev.class_series(*s, k)?)))
                                }))
                                .collect(),
                        ))
                    }
                    (Op::Run(id), None) => Err(HostError::not_found(format!("run `{id}`"))),
                }
            };
            let (ga, va) = side(a, run_a, &mut rev_a, &mut accounting)?;
            let (gb, vb) = side(b, run_b, &mut rev_b, &mut accounting)?;
            same_grids(&ga, &gb)?;
            grid = ga;
            let ids: std::collections::BTreeSet<&String> = va.keys().chain(vb.keys()).collect();
            for id in ids {
                if keep(id) {
                    rows.push((id.clone(), false, va.get(id).cloned(), vb.get(id).cloned()));
                }
            }
        }
    }
    let (wa, wb) = match r.window.as_ref() {
        None => (0, grid.bins),
        Some(w) if w.start < w.end && w.end <= grid.bins => (w.start, w.end),
        Some(w) => {
            return Err(to_host(Status::out_of_range(format!(
                "the bin window {}..{} is empty or outside the grid of {} bins",
                w.start, w.end, grid.bins
            ))));
        }
    };
    let mut summary = pb::CompareSummary::default();
    let mut series = Vec::new();
    for (id, by_construction, xa, xb) in rows {
        summary.series += 1;
        let mut row =
            pb::SeriesComparison { id, not_downstream_of_any_difference: by_construction, ..Default::default() };
        if by_construction {
            row.identical = true;
            summary.identical += 1;
            summary.not_downstream += 1;
            series.push(row);
            continue;
        }
        let (Some(xa), Some(xb)) = (xa.clone(), xb.clone()) else {
            row.only_in_a = xa.is_some();
            row.only_in_b = xb.is_some();
            series.push(row);
            summary.differing += 1;
            continue;
        };
        let (xa, xb) = (&xa[wa as usize..wb as usize], &xb[wa as usize..wb as usize]);
        let (differ, max) = crate::host::diff_bins(xa, xb, wa);
        row.identical = differ.is_empty();
        row.bins_differ = differ.len() as u32;
        row.first_bins = differ.iter().take(100).copied().collect();
        row.max_abs_diff = max;
        row.total_a = xa.iter().fold(0.0, |s, x| s + x);
        row.total_b = xb.iter().fold(0.0, |s, x| s + x);
        if row.identical {
            summary.identical += 1;
        } else {
            summary.differing += 1;
            if r.include_values {
                row.a = xa.to_vec();
                row.b = xb.to_vec();
                row.diff = xa.iter().zip(xb).map(|(p, q)| q - p).collect();
                row.rel_diff =
                    xa.iter().zip(xb).map(|(p, q)| if *p == 0.0 { f64::NAN } else { (q - p) / p.abs() }).collect();
            }
        }
        series.push(row);
    }
    Ok(pb::CompareResponse {
        grid: Some(convert::grid(&grid)),
        series,
        summary: Some(summary),
        accounting: Some(convert::accounting(&accounting)),
        revision_a: rev_a,
        revision_b: rev_b,
    })
}
