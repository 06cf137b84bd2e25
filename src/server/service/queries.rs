//! The QueryService: series, bin states, metrics, the graph and warnings of a target, each
//! evaluated on a snapshot within the evaluation budget (comparison itself is in `compare.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::artifacts;
use crate::engine::Evaluation;
use crate::engine::classes::per_class_mistake;
use crate::engine::db::ClassId;
use crate::engine::plan::Compiled;
use crate::host::{HostError, Target, View};
use crate::model::doc::Role;
use crate::model::grid::format_minutes;
use crate::server::convert;
use crate::server::pb;

use super::compare::{Op, compare_operands, operand};
use super::{Api, Reply, check_budget, every_series, to_host};

fn info(view: &View<'_>, t: &Target, ev: &Evaluation) -> Result<pb::EvaluationInfo, HostError> {
    let (_, revision) = view.scenario(t)?;
    let (params, bindings) = view.overrides(t)?;
    Ok(pb::EvaluationInfo {
        accounting: Some(convert::accounting(&ev.accounting)),
        revision,
        overrides: convert::params(&params),
        series_bindings: bindings,
    })
}

/// `[start, end)` within `bins`, or OUT_OF_RANGE.
fn window(w: Option<&pb::BinWindow>, bins: u32, field: &str) -> Result<(u32, u32), Status> {
    match w {
        None => Ok((0, bins)),
        Some(w) if w.start < w.end && w.end <= bins => Ok((w.start, w.end)),
        Some(w) => Err(Status::out_of_range(format!(
            "{field}: the bin window {}..{} is empty or outside the grid of {bins} bins; use start..end with 0 ≤ start < end ≤ {bins}",
            w.start, w.end
        ))),
    }
}

fn matching(c: &Compiled, ids: &[String], pattern: &str) -> Result<Vec<u32>, HostError> {
    let mut out = std::collections::BTreeSet::new();
    for id in ids.iter().filter(|id| !id.contains('@')) {
        match c.by_id.get(id) {
            Some(s) => {
                out.insert(*s);
            }
            None => {
                return Err(HostError::not_found(format!("series `{id}`")));
            }
        }
    }
    if !pattern.is_empty() && !pattern.contains('@') {
        out.extend(c.by_id.iter().filter(|(id, _)| crate::model::series::glob(pattern, id)).map(|(_, s)| *s));
    }
    Ok(out.into_iter().collect())
}

/// Which classes of a classed series a request asks for (§6.1).
#[derive(Clone, Debug)]
enum ClassSel {
    /// One class by id (a declared class or `_unattributed`).
    Exact(ClassId),
    /// The classes a glob over class ids matches ([`ClassPlan::matching`]); `_unattributed`
    /// only where it is non-zero.
    ///
    /// [`ClassPlan::matching`]: crate::engine::classes::ClassPlan::matching
    Glob(Vec<ClassId>),
}

impl ClassSel {
    /// Per-class series this selects at most, for the size check before evaluating.
    fn len(&self) -> u64 {
        match self {
            ClassSel::Exact(_) => 1,
            ClassSel::Glob(classes) => classes.len() as u64,
        }
    }
}

/// The per-class series a request names: `<id>@<class>` ids and a pattern with `@`.
fn matching_classes(c: &Compiled, ids: &[String], pattern: &str) -> Result<Vec<(u32, ClassSel)>, HostError> {
    let mut out = Vec::new();
    let classed = |s: u32| c.is_classed(s);
    for id in ids.iter().filter(|id| id.contains('@')) {
        let Some((s, class)) = c.per_class(id) else {
            return Err(match per_class_mistake(c, id) {
                Some((message, help)) => HostError::NotFound(format!("{message}; {help}")),
                None => {
                    HostError::not_found(format!("series `{}` (of `{id}`)", id.rsplit_once('@').map_or("", |x| x.0)))
                }
            });
        };
        out.push((s, ClassSel::Exact(class)));
    }
    if let (Some((bp, glob)), Some(cp)) = (pattern.rsplit_once('@'), &c.classes) {
        let classes = cp.matching(glob);
        for (id, &s) in &c.by_id {
            if classed(s) && crate::model::series::glob(bp, id) {
                out.push((s, ClassSel::Glob(classes.clone())));
            }
        }
    }
    Ok(out)
}

/// The per-class series messages of `sel`, in request order, windowed.
fn class_msgs(ev: &Evaluation, sel: &[(u32, ClassSel)], a: u32, b: u32) -> Vec<pb::Series> {
    let c = &ev.compiled;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (s, which) in sel {
        let classes: Vec<ClassId> = match which {
            ClassSel::Exact(k) => vec![*k],
            ClassSel::Glob(matching) => ev.classes_of(*s).into_iter().filter(|k| matching.contains(k)).collect(),
        };
        for k in classes {
            if !seen.insert((*s, k)) {
                continue;
            }
            let Some(v) = ev.class_series(*s, k) else { continue };
            let id = ev.class_series_id(*s, k);
            let class = id.rsplit_once('@').map_or("", |x| x.1).to_string();
            out.push(pb::Series {
                id,
                kind: artifacts::artifact_kind(c, *s).to_string(),
                values: v[a as usize..b as usize].to_vec(),
                inference: None,
                class_id: class,
            });
        }
    }
    out
}

fn series_msg(ev: &Evaluation, s: u32, a: u32, b: u32, params: &BTreeMap<String, f64>) -> pb::Series {
    let c = &ev.compiled;
    pb::Series {
        id: c.series_id(s).to_string(),
        kind: artifacts::artifact_kind(c, s).to_string(),
        values: ev.series.get(&s).map_or_else(Vec::new, |v| v[a as usize..b as usize].to_vec()),
        inference: artifacts::inference_json(ev, s, params).map(|j| convert::inference(&j)),
        class_id: String::new(),
    }
}

fn numeric_params(view: &View<'_>, t: &Target) -> Result<BTreeMap<String, f64>, HostError> {
    let (sc, _) = view.scenario(t)?;
    Ok(sc.params(view.db).iter().filter_map(|(k, c)| c.value(view.db).as_f64().map(|x| (k.clone(), x))).collect())
}

/// The state of one bin: topology roles and derived metrics, every series, touching warnings.
/// Per classed series, its classes and per-class ids (§6.1), found once for many bins.
type ClassIds = Vec<(u32, Vec<(ClassId, String)>)>;

fn class_ids(ev: &Evaluation) -> ClassIds {
    ev.mixes
        .keys()
        .map(|s| (*s, ev.classes_of(*s).into_iter().map(|k| (k, ev.class_series_id(*s, k))).collect()))
        .collect()
}

fn bin_state(
    ev: &Evaluation,
    classes: &ClassIds,
    warnings: &[crate::engine::warnings::Warning],
    params: &BTreeMap<String, f64>,
    t: u32,
) -> pb::BinState {
    let c = &ev.compiled;
    let at = |id: &str| ev.get(id).map(|v| v[t as usize]);
    let nodes = c
        .topology
        .nodes
        .iter()
        .map(|n| {
            let roles = n.roles.iter().filter_map(|(r, id)| Some((r.name().to_string(), at(id)?))).collect();
            let derived = n.derived.iter().filter_map(|(m, id)| Some((m.clone(), at(id)?))).collect();
            let inference = n
                .roles
                .get(&Role::Capacity)
                .and_then(|id| c.by_id.get(id))
                .and_then(|s| artifacts::inference_json(ev, *s, params))
                .map(|j| convert::inference(&j));
            pb::NodeState { id: n.id.clone(), kind: n.kind.name().to_string(), roles, derived, inference }
        })
        .collect();
    let bin = pb::Bin {
        index: t,
        start_utc: c.grid.bin_start(t as i64).map(format_minutes).unwrap_or_default(),
        end_utc: c.grid.bin_start(t as i64 + 1).map(format_minutes).unwrap_or_default(),
    };
    pb::BinState {
        bin: Some(bin),
        nodes,
        series: ev
            .series
            .iter()
            .map(|(s, v)| (c.series_id(*s).to_string(), v[t as usize]))
            .chain(classes.iter().flat_map(|(s, ks)| {
                ks.iter().filter_map(move |(k, id)| Some((id.clone(), ev.class_value(*s, *k, t as usize)?)))
            }))
            .collect(),
        warnings: warnings.iter().filter(|w| w.bins.contains(&t)).map(convert::warning).collect(),
    }
}

/// Everything a whole-model reply needs: the plan, a full evaluation (within the budget), its
/// warnings and the numeric parameter values.
struct Full {
    c: Arc<Compiled>,
    ev: Evaluation,
    classes: ClassIds,
    warnings: Vec<crate::engine::warnings::Warning>,
    params: BTreeMap<String, f64>,
}

fn full(v: &View<'_>, t: &Target, budget: u64) -> Result<Full, HostError> {
    let c = v.compiled_target(t)?;
    check_budget(&c, None, &every_series(&c), budget)?;
    let mut ev = v.evaluate_target(t, None)?;
    if c.classes.is_some() {
        let all: Vec<u32> = ev.series.keys().copied().collect();
        v.evaluate_mixes(t, &mut ev, &all)?;
    }
    let warnings = v.warnings(t, &ev)?;
    let params = numeric_params(v, t)?;
    let classes = class_ids(&ev);
    Ok(Full { c, ev, classes, warnings, params })
}

fn stats(v: &[f64]) -> pb::Stats {
    let mut st = pb::Stats { min: f64::NAN, mean: f64::NAN, max: f64::NAN, sum: 0.0, bins: 0 };
    for x in v.iter().filter(|x| !x.is_nan()) {
        st.min = if st.bins == 0 { *x } else { st.min.min(*x) };
        st.max = if st.bins == 0 { *x } else { st.max.max(*x) };
        st.sum += x;
        st.bins += 1;
    }
    if st.bins > 0 {
        st.mean = st.sum / st.bins as f64;
    }
    st
}

#[tonic::async_trait]
impl pb::query_service_server::QueryService for Api {
    async fn get_series(&self, req: Request<pb::GetSeriesRequest>) -> Reply<pb::GetSeriesResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let max_bytes = self.opts.max_message_bytes as u64;
        let out = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let ids = matching(&c, &r.ids, &r.pattern)?;
                let per_class = matching_classes(&c, &r.ids, &r.pattern)?;
                if ids.is_empty() && per_class.is_empty() {
                    return Err(no_match(&c, &t, &r.pattern));
                }
                let (a, b) = window(r.window.as_ref(), c.grid.bins, "window").map_err(to_host)?;
                let count = ids.len() as u64 + per_class.iter().map(|(_, sel)| sel.len()).sum::<u64>();
                if count * (b - a) as u64 * 8 > max_bytes {
                    return Err(exhausted(format!("{count} series × {} bins exceed the message size limit of {max_bytes} bytes; narrow the window or the pattern", b - a)));
                }
                // An inferred capacity carries its label (§7.2), which needs the series it is
                // inferred from: evaluate those too.
                let mut needed = ids.clone();
                needed.extend(per_class.iter().map(|(s, _)| *s));
                for s in &ids {
                    if let Some((served, queue, _)) = &c.series[*s as usize].inference {
                        needed.extend([*served, *queue]);
                    }
                }
                needed.sort_unstable();
                needed.dedup();
                let bases: Vec<u32> = per_class.iter().map(|(s, _)| *s).collect();
                check_budget(&c, Some(&needed), &bases, budget)?;
                let mut ev = v.evaluate_target(&t, Some(&needed))?;
                if !per_class.is_empty() {
                    v.evaluate_mixes(&t, &mut ev, &bases)?;
                }
                let params = numeric_params(&v, &t)?;
                let mut series: Vec<pb::Series> = ids.iter().map(|s| series_msg(&ev, *s, a, b, &params)).collect();
                series.extend(class_msgs(&ev, &per_class, a, b));
                Ok(pb::GetSeriesResponse {
                    grid: Some(convert::grid(&c.grid)),
                    window: Some(pb::BinWindow { start: a, end: b }),
                    series,
                    info: Some(info(&v, &t, &ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_state(&self, req: Request<pb::GetStateRequest>) -> Reply<pb::GetStateResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let out = self
            .read("target", move |v| {
                let bin = resolve_bin(&*v.compiled_target(&t)?, r.at.as_ref())?;
                let f = full(&v, &t, budget)?;
                Ok(pb::GetStateResponse {
                    grid: Some(convert::grid(&f.c.grid)),
                    state: Some(bin_state(&f.ev, &f.classes, &f.warnings, &f.params, bin)),
                    info: Some(info(&v, &t, &f.ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_state_window(&self, req: Request<pb::GetStateWindowRequest>) -> Reply<pb::GetStateWindowResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let cap = self.opts.max_state_window;
        let out = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let (a, b) = window(r.window.as_ref(), c.grid.bins, "window").map_err(to_host)?;
                if b - a > cap {
                    return Err(exhausted(format!(
                        "a state window holds at most {cap} bins; [{a}, {b}) has {}",
                        b - a
                    )));
                }
                let f = full(&v, &t, budget)?;
                Ok(pb::GetStateWindowResponse {
                    grid: Some(convert::grid(&c.grid)),
                    states: (a..b).map(|bin| bin_state(&f.ev, &f.classes, &f.warnings, &f.params, bin)).collect(),
                    info: Some(info(&v, &t, &f.ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_metrics(&self, req: Request<pb::GetMetricsRequest>) -> Reply<pb::GetMetricsResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let out = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let (a, b) = window(r.window.as_ref(), c.grid.bins, "window").map_err(to_host)?;
                check_budget(&c, None, &[], budget)?;
                let ev = v.evaluate_target(&t, None)?;
                let slice = |id: &str| ev.get(id).map(|s| &s[a as usize..b as usize]);
                let nodes = c
                    .topology
                    .nodes
                    .iter()
                    .map(|n| {
                        let roles = n
                            .roles
                            .iter()
                            .filter_map(|(r, id)| Some((r.name().to_string(), stats(slice(id)?))))
                            .collect();
                        let derived =
                            n.derived.iter().filter_map(|(m, id)| Some((m.clone(), stats(slice(id)?)))).collect();
                        let sla_share = match (n.sla_min, n.derived.get("latency_min").and_then(|id| slice(id))) {
                            (Some(sla), Some(lat)) => {
                                let defined: Vec<f64> = lat.iter().copied().filter(|x| !x.is_nan()).collect();
                                (!defined.is_empty()).then(|| {
                                    defined.iter().filter(|x| **x <= sla).count() as f64 / defined.len() as f64
                                })
                            }
                            _ => None,
                        };
                        pb::NodeMetrics {
                            id: n.id.clone(),
                            kind: n.kind.name().to_string(),
                            roles,
                            derived,
                            sla_share,
                            sla_min: n.sla_min,
                        }
                    })
                    .collect();
                Ok(pb::GetMetricsResponse { grid: Some(convert::grid(&c.grid)), nodes, info: Some(info(&v, &t, &ev)?) })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_graph(&self, req: Request<pb::GetGraphRequest>) -> Reply<pb::Graph> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let g = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let (_, revision) = v.scenario(&t)?;
                let nodes = c
                    .topology
                    .nodes
                    .iter()
                    .map(|n| pb::GraphNode {
                        id: n.id.clone(),
                        kind: n.kind.name().to_string(),
                        group: n.group.clone().unwrap_or_default(),
                        ui_x: n.ui.as_ref().and_then(|u| u["x"].as_f64()),
                        ui_y: n.ui.as_ref().and_then(|u| u["y"].as_f64()),
                        roles: n.roles.iter().map(|(r, id)| (r.name().to_string(), id.clone())).collect(),
                        derived: n.derived.iter().map(|(m, id)| (m.clone(), id.clone())).collect(),
                    })
                    .collect();
                let edges = c
                    .topology
                    .edges
                    .iter()
                    .map(|e| pb::GraphEdge {
                        from: e.from.clone(),
                        to: e.to.clone(),
                        weight: e.weight,
                        series: e.series.clone(),
                    })
                    .collect();
                let series = c
                    .by_id
                    .iter()
                    .map(|(id, s)| pb::SeriesInfo {
                        id: id.clone(),
                        kind: artifacts::artifact_kind(&c, *s).to_string(),
                        owner: c.series[*s as usize].owner.clone(),
                    })
                    .collect();
                Ok(pb::Graph { grid: Some(convert::grid(&c.grid)), nodes, edges, series, revision })
            })
            .await?;
        Ok(Response::new(g))
    }

    async fn get_warnings(&self, req: Request<pb::GetWarningsRequest>) -> Reply<pb::GetWarningsResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let out = self
            .read("target", move |v| {
                let f = full(&v, &t, budget)?;
                Ok(pb::GetWarningsResponse {
                    warnings: f.warnings.iter().map(convert::warning).collect(),
                    info: Some(info(&v, &t, &f.ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn compare(&self, req: Request<pb::CompareRequest>) -> Reply<pb::CompareResponse> {
        let r = req.into_inner();
        let a = operand("a", r.a.as_ref())?;
        let b = operand("b", r.b.as_ref())?;
        // Runs are read from their directories first (no snapshot needed).
        let run_a = match &a {
            Op::Run(id) => Some(self.run_values(id).await?),
            Op::Target(_) => None,
        };
        let run_b = match &b {
            Op::Run(id) => Some(self.run_values(id).await?),
            Op::Target(_) => None,
        };
        let budget = self.opts.eval_budget;
        let out =
            self.read("a", move |v| compare_operands(&v, &a, &b, run_a.as_ref(), run_b.as_ref(), &r, budget)).await?;
        Ok(Response::new(out))
    }
}

/// "no series of `s1` matches `x`", with the nearest series id.
fn no_match(c: &Compiled, t: &Target, pattern: &str) -> HostError {
    if pattern.is_empty() {
        return HostError::BadInput(
            crate::diag::Diagnostic::error("missing", "give series ids or a pattern (`*` matches all)")
                .at_path("pattern")
                .into(),
        );
    }
    let ids: Vec<&str> = c.by_id.keys().map(String::as_str).collect();
    let hint = match crate::model::doc::closest(&pattern.replace('*', ""), &ids) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    };
    HostError::NotFound(format!(
        "no series of `{t}` matches `{pattern}`{hint} ({} series; `*` lists them all)",
        ids.len()
    ))
}

fn exhausted(msg: String) -> HostError {
    HostError::BadInput(crate::diag::Diagnostic::error("resource_exhausted", msg).into())
}

/// The bin a state request names: an index, or an aligned timestamp.
fn resolve_bin(c: &Compiled, at: Option<&pb::get_state_request::At>) -> Result<u32, HostError> {
    use pb::get_state_request::At;
    let g = &c.grid;
    let out_of_range = |m: String| HostError::BadInput(crate::diag::Diagnostic::error("out_of_range", m).into());
    match at {
        None => Err(HostError::BadInput(
            crate::diag::Diagnostic::error("missing", "give `bin` or `timestamp`").at_path("at").into(),
        )),
        Some(At::Bin(b)) if *b < g.bins => Ok(*b),
        Some(At::Bin(b)) => Err(out_of_range(format!("bin {b} is outside the grid of {} bins", g.bins))),
        Some(At::Timestamp(ts)) => {
            let Some(start) = g.start_minutes else {
                return Err(HostError::FailedPrecondition(
                    "the model has no grid.start, so timestamps cannot be resolved; query by bin index".into(),
                ));
            };
            // Seconds, so a timestamp inside a minute is still placed in its bin for the message.
            let (secs, nanos) = crate::model::grid::parse_utc_seconds(ts).map_err(|e| {
                HostError::BadInput(crate::diag::Diagnostic::error("timestamp", e).at_path("timestamp").into())
            })?;
            let bm = g.bin_minutes() as i64;
            let off_s = secs - start * 60;
            let bin = off_s.div_euclid(bm * 60);
            if bin < 0 || bin >= g.bins as i64 {
                return Err(out_of_range(format!(
                    "{ts} is outside the grid [{}, {})",
                    format_minutes(start),
                    format_minutes(start + bm * g.bins as i64)
                )));
            }
            if off_s.rem_euclid(bm * 60) != 0 || nanos != 0 {
                let s = start + bin * bm;
                return Err(HostError::BadInput(
                    crate::diag::Diagnostic::error(
                        "timestamp",
                        format!("{ts} is not aligned to a bin start: it falls in bin {bin}, which starts at {} (bins are {bm} minutes)", format_minutes(s)),
                    )
                    .at_path("timestamp")
                    .with_help(format!("use {} or {}", format_minutes(s), format_minutes(s + bm)))
                    .into(),
                ));
            }
            Ok(bin as u32)
        }
    }
}
