//! The point evaluator every mode calls: a point is a scenario derived from the target by
//! overrides (parameter values, and series drawn for pmf nodes), evaluated on the shared salsa
//! cache and never stored.
//!
//! A point is not a salsa input, and creates none. Its plan is *prepared* once: every unit that
//! is identical to one of the target's (same definition, and reading no parameter the points
//! vary or the request overrides, no drawn node, and only such units) takes the target's key and
//! is evaluated before the points, so its memo is the target's own. A point then computes the
//! rest, its cone, directly from its values and those memos (`engine::db::evaluate_point`), and
//! keeps nothing: salsa never frees a memo, an interned key or an input, and a point's cone is
//! of use to no one else, so memoising it would grow memory by the cone's series at every point
//! (70 MB per point of a root sweep at 1000 × 8,760). An analysis therefore leaves memory as it
//! found it, but for the target's own memos. Points run in parallel on database clones, one per
//! worker, and come back in input order; identical points are evaluated once. A concurrent write
//! cancels the clones (`salsa::Cancelled`), which ends the analysis as
//! [`AnalysisError::Interrupted`].

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use salsa::plumbing::{AsId, FromId};

use crate::analysis::{AnalysisError, Control};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::classes::KeyNode;
use crate::engine::db::{
    ClassId, Memos, MixKey, PointValues, UnitKey, build_all_keys, class_part, evaluate_known, evaluate_point, mix_keys,
    unit_keys,
};
use crate::engine::plan::Compiled;
use crate::engine::{Accounting, Database, Series, SeriesCell};
use crate::host::{AnalysisBase, HostError, Snapshot};
use crate::model::params::{ParamDecl, ParamType, ParamValue};
use crate::model::template::{Supplied, bind};
use crate::sys;

/// One point: parameter values, and whole series for drawn pmf nodes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Point {
    pub(crate) params: Vec<(String, f64)>,
    pub(crate) series: Vec<(String, Arc<[f64]>)>,
}

impl Point {
    pub(crate) fn of(params: Vec<(String, f64)>) -> Point {
        Point { params, series: Vec::new() }
    }

    pub(crate) fn param_map(&self) -> BTreeMap<String, f64> {
        self.params.iter().cloned().collect()
    }

    /// Identical points (same values, bit for bit; no drawn series) are evaluated once.
    fn dedup_key(&self) -> Option<Vec<(String, u64)>> {
        self.series.is_empty().then(|| self.params.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect())
    }
}

/// Completes point `i` on its worker just before it is evaluated.
pub(crate) type Expand<'a> = dyn Fn(usize, &mut Point) + Sync + 'a;

/// What one point evaluated.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// The target series (metrics' and requested ones), by id.
    pub(crate) series: BTreeMap<String, Series>,
    pub(crate) accounting: Accounting,
    /// True when the point's plan differs from the target's (a structural parameter changed).
    pub(crate) structural: bool,
}

/// A plan ready for points: the target's keys of its units identical to the target's, already
/// evaluated.
struct Prepared {
    /// Values of the structural parameters this plan was compiled with.
    structural: Vec<(String, ParamValue)>,
    plan: Arc<Compiled>,
    targets: Vec<u32>,
    /// §6.1: the classed series whose mixes per-class targets (`x@c`) need.
    mix_targets: Vec<u32>,
    /// Each target id of the analysis: its series, and its class for a per-class target.
    wanted: Vec<(String, u32, Option<ClassId>)>,
    /// The value units (and mix units) the targets need, in evaluation order.
    order: Vec<KeyNode>,
    /// The weight of the value units of `order` (a point's `nodes_total`).
    nodes_total: u64,
    /// The target's keys of the fixed units; None for the units a point computes.
    fixed: Vec<Option<salsa::Id>>,
    /// §6.1: the target's keys of the fixed mix units; None for the mix units a point computes.
    fixed_mixes: Vec<Option<salsa::Id>>,
    differs: bool,
}

/// What of a plan is identical to the target's ([`Evaluator::same_as_target`]): per value unit
/// and per mix unit, the target's unit it is identical to.
struct Same {
    units: Vec<Option<u32>>,
    mixes: Vec<Option<u32>>,
}

/// The target as points derive from it: an [`AnalysisBase`] without its snapshot, so that it can
/// be shared by the workers (each owns a database clone).
pub(crate) struct Base {
    pub(crate) target: crate::host::Target,
    pub(crate) revision: u64,
    pub(crate) plan: Arc<Compiled>,
    pub(crate) inputs: BTreeMap<String, SeriesCell>,
    pub(crate) decls: Arc<Vec<ParamDecl>>,
    pub(crate) structural: BTreeSet<String>,
    pub(crate) compiler: crate::host::PlanCompiler,
    /// Variants of the target's session (for `keep`).
    pub(crate) variants: Vec<String>,
}

/// The shared part of one analysis: the base scenario and its prepared plans.
pub(crate) struct Evaluator {
    /// The snapshot the analysis started from; workers clone it.
    snapshot: Mutex<Snapshot>,
    base: Base,
    /// Effective parameter values of the base: the target's, with the request's overrides.
    values: BTreeMap<String, ParamValue>,
    /// Parameters the request gives another value than the target's.
    overridden: BTreeSet<String>,
    /// The target's key of each of its units (None where it lacks a cell).
    target_keys: Vec<Option<salsa::Id>>,
    /// §6.1: the target's key of each of its mix units.
    target_mix_keys: Vec<Option<salsa::Id>>,
    plan: Arc<Compiled>,
    varied: BTreeSet<String>,
    drawn: BTreeSet<String>,
    targets: Vec<String>,
    plans: Mutex<Vec<Arc<Prepared>>>,
    preparation: Mutex<Accounting>,
    /// Every point's accounting, summed.
    points: Mutex<Accounting>,
}

/// The analysis's target ids on plan `c`: the series to evaluate, the classed series whose mixes
/// per-class ids (`x@c`, §6.1) need, and each id's series and class. Err is an id `c` lacks.
#[allow(clippy::type_complexity)]
fn resolve_targets(
    c: &Compiled,
    ids: &[String],
) -> Result<(Vec<u32>, Vec<u32>, Vec<(String, u32, Option<ClassId>)>), String> {
    let mut targets = Vec::new();
    let mut mix_targets = Vec::new();
    let mut wanted = Vec::new();
    for id in ids {
        let (s, class) = match c.by_id.get(id) {
            Some(&s) => (s, None),
            None => {
                let (s, class) = c.per_class(id).ok_or_else(|| id.clone())?;
                mix_targets.push(s);
                (s, Some(class))
            }
        };
        targets.push(s);
        wanted.push((id.clone(), s, class));
    }
    for v in [&mut targets, &mut mix_targets] {
        v.sort_unstable();
        v.dedup();
    }
    Ok((targets, mix_targets, wanted))
}

/// The value units of an evaluation order.
fn units_of(order: &[KeyNode]) -> Vec<u32> {
    order.iter().filter_map(|n| if let KeyNode::Unit(u) = n { Some(*u) } else { None }).collect()
}

fn bad(d: Diagnostic) -> HostError {
    HostError::BadInput(d.into())
}

impl Evaluator {
    /// The base of an analysis: `base` with the request's parameter values applied (validated
    /// like a variant's), and `drawn` pmf nodes turned into per-point inputs.
    pub(crate) fn new(
        base: AnalysisBase,
        overrides: &BTreeMap<String, Supplied>,
        drawn: BTreeSet<String>,
    ) -> Result<Evaluator, HostError> {
        let AnalysisBase { snapshot, scenario, target, revision, plan, cells, inputs, decls, structural, compiler } =
            base;
        let variants = match snapshot.view().session_info(&target.session) {
            Ok(info) => info.variants,
            Err(_) => Vec::new(),
        };
        let base = Base { target, revision, plan, inputs, decls, structural, compiler, variants };
        let base_cells = cells;
        let db = snapshot.view().db;
        let values: BTreeMap<String, ParamValue> =
            base_cells.iter().map(|(k, c)| (k.clone(), c.value(db).clone())).collect();
        let mut supplied: BTreeMap<String, Supplied> =
            values.iter().map(|(k, v)| (k.clone(), Supplied::Yaml(v.to_yaml()))).collect();
        supplied.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let bound = bind(&base.decls, &supplied).map_err(|d| {
            HostError::BadInput(Diagnostics(
                d.0.into_iter()
                    .map(|x| {
                        let path = param_path(x.path.as_deref());
                        x.at_path(path)
                    })
                    .collect(),
            ))
        })?;
        let overridden: BTreeSet<String> = bound.keys().filter(|k| values.get(*k) != bound.get(*k)).cloned().collect();
        let mut plan = base.plan.clone();
        if overridden.iter().any(|k| base.structural.contains(k)) {
            plan = base.compiler.compile(&bound, &BTreeSet::new())?;
            check_same_shape(&base, &plan, &BTreeSet::new(), "parameters")?;
        }
        // The target's own keys, from its own query: interned there, they are collected with the
        // target (a variant deleted after an analysis); built here, outside any query, salsa
        // would keep them for good.
        // One build of both when the queries have none (building interns every key).
        let (target_keys, target_mix_keys): (Vec<_>, Vec<_>) = match (unit_keys(db, scenario), mix_keys(db, scenario)) {
            (Some(u), Some(m)) => {
                (u.iter().map(|k| Some(k.as_id())).collect(), m.iter().map(|k| Some(k.as_id())).collect())
            }
            _ => {
                let (u, m) = build_all_keys(db, &base.plan, &base_cells, &base.inputs);
                (
                    u.into_iter().map(|k| k.map(|k| k.as_id())).collect(),
                    m.into_iter().map(|k| k.map(|k| k.as_id())).collect(),
                )
            }
        };
        if !drawn.is_empty() {
            plan = base.compiler.with_overrides(&plan, &drawn)?;
        }
        Ok(Evaluator {
            snapshot: Mutex::new(snapshot),
            base,
            values: bound,
            overridden,
            target_keys,
            target_mix_keys,
            plan,
            varied: BTreeSet::new(),
            drawn,
            targets: Vec::new(),
            plans: Mutex::new(Vec::new()),
            preparation: Mutex::new(Accounting::default()),
            points: Mutex::new(Accounting::default()),
        })
    }

    pub(crate) fn plan(&self) -> &Arc<Compiled> {
        &self.plan
    }

    pub(crate) fn base(&self) -> &Base {
        &self.base
    }

    pub(crate) fn decls(&self) -> &[ParamDecl] {
        &self.base.decls
    }

    /// The base value of a numeric parameter.
    pub(crate) fn value(&self, name: &str) -> f64 {
        self.values.get(name).and_then(ParamValue::as_f64).unwrap_or(f64::NAN)
    }

    /// Declares what points vary and which series they evaluate; call before any point.
    pub(crate) fn set_scope(&mut self, varied: BTreeSet<String>, targets: Vec<String>) {
        self.varied = varied;
        self.targets = targets;
    }

    /// The declaration of a parameter points may vary: declared and numeric, else a located error.
    pub(crate) fn numeric_param(&self, name: &str, field: &str) -> Result<&ParamDecl, Diagnostic> {
        let Some(d) = self.base.decls.iter().find(|d| d.name == name) else {
            let names: Vec<&str> = self.base.decls.iter().map(|d| d.name.as_str()).collect();
            let help = match crate::model::doc::closest(name, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None if names.is_empty() => "the template declares no parameters".to_string(),
                None => format!("declared parameters: {}", names.join(", ")),
            };
            return Err(Diagnostic::error("unknown_parameter", format!("unknown parameter `{name}`"))
                .at_path(field.to_string())
                .with_help(help));
        };
        if !d.ty.is_numeric() {
            return Err(Diagnostic::error(
                "parameter_type",
                format!("parameter `{name}` is {}; analyses vary number and integer parameters", d.ty.with_article()),
            )
            .at_path(field.to_string())
            .with_help("set it with `-p` (it then holds for every point), or create a variant per value"));
        }
        Ok(d)
    }

    /// A point's value for parameter `name` as the typed value its declaration accepts.
    pub(crate) fn typed(&self, name: &str, v: f64, field: &str) -> Result<ParamValue, Diagnostic> {
        let d = self.numeric_param(name, field)?;
        let value = match d.ty {
            ParamType::Integer if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => {
                ParamValue::Integer(v as i64)
            }
            ParamType::Integer => {
                return Err(Diagnostic::error(
                    "parameter_type",
                    format!("parameter `{name}` is an integer; {v} is not a whole number"),
                )
                .at_path(field.to_string())
                .with_help("give whole numbers for integer parameters"));
            }
            _ if !v.is_finite() => {
                return Err(Diagnostic::error(
                    "parameter_type",
                    format!("parameter `{name}`: {v} is not a finite number"),
                )
                .at_path(field.to_string()));
            }
            _ => ParamValue::Number(v),
        };
        d.check(&value).map_err(|e| {
            Diagnostic::error("parameter_range", format!("parameter `{name}`: {e}"))
                .at_path(field.to_string())
                .with_help(range_help(d))
        })?;
        Ok(value)
    }

    /// Units one point evaluates at most, and units in the evaluated closure, for the budget.
    /// A target id the analysis plan lacks is an error, never a free analysis: the modes check
    /// their ids first, so this is their mistake, reported as the request's.
    fn cost(&self) -> Result<(u64, u64), HostError> {
        let c = &self.plan;
        let (targets, mix_targets, _) = resolve_targets(c, &self.targets).map_err(|id| {
            bad(Diagnostic::error("unknown_reference", format!("series `{id}` does not exist in {}", self.base.target))
                .with_help("name a series of the model"))
        })?;
        let order = c.point_order(&targets, &mix_targets);
        let weight = |n: &KeyNode| c.node_weight(n);
        let all: u64 = order.iter().map(weight).sum();
        if self.varied.iter().any(|v| self.base.structural.contains(v)) {
            return Ok((all, all));
        }
        let same = self.same_as_target(c);
        let recomputed = |n: &&KeyNode| match n {
            KeyNode::Unit(u) => same.units[*u as usize].is_none(),
            KeyNode::Mix(m) => same.mixes[*m as usize].is_none(),
        };
        Ok((order.iter().filter(recomputed).map(weight).sum(), all))
    }

    /// Refuses an analysis of `points` points (`evaluations` of them at most) over the limits,
    /// before any work.
    pub(crate) fn check_limits(&self, points: u64, ctl: &Control<'_>) -> Result<(), HostError> {
        let limits = &ctl.limits;
        if points > limits.max_points {
            return Err(bad(Diagnostic::error(
                "resource_exhausted",
                format!("the analysis needs up to {points} points, over the limit of {}", limits.max_points),
            )
            .with_help("use fewer values, samples or iterations")));
        }
        let (per_point, closure) = self.cost()?;
        let bins = self.plan.grid.bins as u64;
        let cost = (closure + points.saturating_mul(per_point)).saturating_mul(bins);
        if cost > limits.eval_budget {
            return Err(bad(Diagnostic::error(
                "resource_exhausted",
                format!(
                    "the analysis needs ({closure} + {points} points × {per_point}) series definitions × {bins} bins = {cost}, over the budget of {}",
                    limits.eval_budget
                ),
            )
            .with_help("use fewer points, or vary parameters with smaller downstream cones")));
        }
        Ok(())
    }

    /// True when pmf node `id` is drawn by the points.
    pub(crate) fn is_drawn(&self, id: &str) -> bool {
        self.drawn.contains(id)
    }

    /// True when series `id` of the analysis plan reads a varied parameter, directly or not.
    pub(crate) fn reads_varied(&self, id: &str) -> bool {
        let c = &self.plan;
        let drawn: BTreeSet<String> = self.drawn.iter().map(|n| format!("override:{n}")).collect();
        let roots: Vec<u32> = (0..c.units.len() as u32)
            .filter(|u| {
                let p = &c.units[*u as usize];
                p.params.iter().any(|x| self.varied.contains(x)) || p.inputs.iter().any(|k| drawn.contains(k))
            })
            .collect();
        c.by_id.get(id).is_some_and(|s| c.downstream(&roots).contains(&c.series[*s as usize].unit))
    }

    /// For each value unit and each mix unit (§6.1) of `c`, the target's unit it is identical to,
    /// or None for a unit points compute. Identical means the same definition, the same
    /// parameter and input names, none a parameter the points vary or the request overrides nor
    /// a drawn node, and reads (value units and mix units) identical to the target unit's, in
    /// order. Such a unit's key is the target's, so its memo is the target's own. One pass in the
    /// plan's evaluation order decides both kinds, each after everything it reads, so a router
    /// target with class routes and the mixes it reads are judged by one rule.
    fn same_as_target(&self, c: &Compiled) -> Same {
        let t = &*self.base.plan;
        let drawn: BTreeSet<String> = self.drawn.iter().map(|n| format!("override:{n}")).collect();
        let fixed = |params: &[String]| !params.iter().any(|p| self.varied.contains(p) || self.overridden.contains(p));
        let mut same = Same {
            units: vec![None; c.units.len()],
            mixes: vec![None; c.classes.as_ref().map_or(0, |cp| cp.units.len())],
        };
        let order: std::borrow::Cow<'_, [KeyNode]> = match &c.classes {
            Some(cp) => std::borrow::Cow::Borrowed(&cp.order),
            None => (0..c.units.len() as u32).map(KeyNode::Unit).collect(),
        };
        for &n in order.iter() {
            match n {
                KeyNode::Unit(u) => {
                    let u = u as usize;
                    same.units[u] = (|| {
                        let p = &c.units[u];
                        let first = *p.series.first()?;
                        let tu = t.series[*t.by_id.get(c.series_id(first))? as usize].unit;
                        let tp = &t.units[tu as usize];
                        let ok = fixed(&p.params)
                            && !p.inputs.iter().any(|k| drawn.contains(k))
                            && (Arc::ptr_eq(&p.def, &tp.def) || p.def == tp.def)
                            && p.params == tp.params
                            && p.inputs == tp.inputs
                            && p.series.len() == tp.series.len()
                            && p.deps.len() == tp.deps.len()
                            && p.deps.iter().zip(&tp.deps).all(|(d, td)| same.units[*d as usize] == Some(*td))
                            && p.mixes.len() == tp.mixes.len()
                            && p.mixes
                                .iter()
                                .zip(&tp.mixes)
                                .all(|((m, o), (tm, to))| o == to && same.mixes[*m as usize] == Some(*tm));
                        ok.then_some(tu)
                    })();
                }
                KeyNode::Mix(m) => {
                    let m = m as usize;
                    same.mixes[m] = (|| {
                        let mp = &c.classes.as_ref()?.units[m];
                        let tcp = t.classes.as_ref()?;
                        let first = *mp.series.first()?;
                        let (tm, _) = tcp.series_mix[*t.by_id.get(c.series_id(first))? as usize]?;
                        let tmp = &tcp.units[tm as usize];
                        let ok = fixed(&mp.params)
                            && (Arc::ptr_eq(&mp.def, &tmp.def) || mp.def == tmp.def)
                            && mp.params == tmp.params
                            && mp.units.len() == tmp.units.len()
                            && mp.units.iter().zip(&tmp.units).all(|(u, tu)| same.units[*u as usize] == Some(*tu))
                            && mp.mixes.len() == tmp.mixes.len()
                            && mp.mixes.iter().zip(&tmp.mixes).all(|(d, td)| same.mixes[*d as usize] == Some(*td));
                        ok.then_some(tm)
                    })();
                }
            }
        }
        same
    }

    /// Accounting of the preparations so far (base evaluations of each plan's fixed units).
    pub(crate) fn preparation(&self) -> Accounting {
        *self.preparation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accounting of every point evaluated so far, summed.
    pub(crate) fn points_accounting(&self) -> Accounting {
        *self.points.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, a: &Accounting) {
        crate::analysis::add(&mut self.points.lock().unwrap_or_else(|p| p.into_inner()), a);
    }

    fn structural_key(&self, p: &Point) -> Vec<(String, ParamValue)> {
        self.base
            .structural
            .iter()
            .map(|k| {
                let own = p.params.iter().find(|(n, _)| n == k).and_then(|(_, v)| self.typed(k, *v, k).ok());
                (k.clone(), own.unwrap_or_else(|| self.values.get(k).cloned().unwrap_or(ParamValue::Number(f64::NAN))))
            })
            .collect()
    }

    /// The prepared plan of point `p`, preparing it on `db` the first time it is needed.
    fn prepared(&self, db: &Database, p: &Point) -> Result<Arc<Prepared>, HostError> {
        let key = self.structural_key(p);
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = plans.iter().find(|x| x.structural == key) {
            return Ok(found.clone());
        }
        let base_key = self.structural_key(&Point::default());
        let (plan, differs) = if key == base_key {
            (self.plan.clone(), false)
        } else {
            let mut values = self.values.clone();
            values.extend(key.iter().cloned());
            let plan = self.base.compiler.compile(&values, &self.drawn).map_err(|d| point_error(p, d))?;
            check_same_shape(&self.base, &plan, &self.drawn, "points").map_err(|e| match e {
                HostError::BadInput(d) => point_error(p, d),
                other => other,
            })?;
            (plan, true)
        };
        let (targets, mix_targets, wanted) = resolve_targets(&plan, &self.targets).map_err(|id| {
            point_error(
                p,
                Diagnostic::error("unknown_reference", format!("series `{id}` does not exist at this point")).into(),
            )
        })?;
        let same = self.same_as_target(&plan);
        let keys: Vec<Option<UnitKey<'_>>> =
            same.units.iter().map(|tu| tu.and_then(|tu| self.target_keys[tu as usize]).map(UnitKey::from_id)).collect();
        let mkeys: Vec<Option<MixKey<'_>>> = same
            .mixes
            .iter()
            .map(|tm| tm.and_then(|tm| self.target_mix_keys.get(tm as usize).copied().flatten()).map(MixKey::from_id))
            .collect();
        let sw = sys::Stopwatch::start();
        let order = plan.point_order(&targets, &mix_targets);
        let closure = units_of(&order);
        let evaluated = evaluate_known(db, &order, &keys, &mkeys).map_err(|i| HostError::BadInput(i.into()))?;
        let total: u64 = closure
            .iter()
            .filter(|u| keys[**u as usize].is_some())
            .map(|u| plan.units[*u as usize].weight as u64)
            .sum();
        let mut acc = self.preparation.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = crate::engine::db::loaded_since_reset();
        acc.nodes_total += total;
        acc.nodes_evaluated += evaluated;
        acc.nodes_loaded += loaded;
        acc.nodes_reused += total - (evaluated + loaded).min(total);
        acc.elapsed_us += sw.elapsed_us();
        let prepared = Arc::new(Prepared {
            structural: key,
            fixed: keys.iter().map(|k| k.map(|k| k.as_id())).collect(),
            fixed_mixes: mkeys.iter().map(|k| k.map(|k| k.as_id())).collect(),
            nodes_total: closure.iter().map(|u| plan.units[*u as usize].weight as u64).sum(),
            order,
            plan,
            targets,
            mix_targets,
            wanted,
            differs,
        });
        plans.push(prepared.clone());
        Ok(prepared)
    }

    /// Evaluates one point on `db` (a clone of the snapshot owned by the calling worker).
    pub(crate) fn eval_point(&self, db: &Database, p: &Point) -> Result<Outcome, HostError> {
        let prep = self.prepared(db, p)?;
        let sw = sys::Stopwatch::start();
        let plan = &prep.plan;
        let mut own: BTreeMap<&str, f64> = BTreeMap::new();
        for (name, v) in &p.params {
            let value = self.typed(name, *v, name).map_err(|d| point_error(p, d.into()))?;
            own.insert(name, value.as_f64().unwrap_or(f64::NAN));
        }
        let drawn: BTreeMap<String, &[f64]> = p.series.iter().map(|(n, v)| (format!("override:{n}"), &v[..])).collect();
        let params = |name: &str| {
            own.get(name).copied().or_else(|| self.values.get(name).map(|v| v.as_f64().unwrap_or(f64::NAN)))
        };
        let inputs =
            |key: &str| drawn.get(key).copied().or_else(|| self.base.inputs.get(key).map(|c| &c.data(db).values[..]));
        let known: Vec<Option<UnitKey<'_>>> = prep.fixed.iter().map(|id| id.map(UnitKey::from_id)).collect();
        let known_mix: Vec<Option<MixKey<'_>>> = prep.fixed_mixes.iter().map(|id| id.map(MixKey::from_id)).collect();
        let values = PointValues { params: &params, inputs: &inputs };
        let r = evaluate_point(
            db,
            plan,
            Memos { units: &known, mixes: &known_mix },
            &values,
            &prep.order,
            &prep.targets,
            &prep.mix_targets,
        )
        .map_err(|what| {
            HostError::FailedPrecondition(format!(
                "a point of the analysis reads {what}, which {} does not have",
                self.base.target
            ))
        })?;
        let evaluated = r.evaluated;
        let nodes_total = prep.nodes_total;
        let accounting = Accounting {
            nodes_total,
            nodes_evaluated: evaluated,
            nodes_reused: nodes_total.saturating_sub(evaluated),
            nodes_loaded: 0,
            elapsed_us: sw.elapsed_us(),
        };
        // Totals by id, per-class targets `x@c = x · m_x[c]` (§6.1) by theirs.
        let k = plan.classes.as_ref().map_or(0, |cp| cp.k());
        let series = prep
            .wanted
            .iter()
            .filter_map(|(id, s, class)| {
                let x = r.series.get(s)?;
                let v = match class {
                    None => x.clone(),
                    Some(c) => Series::from(class_part(x, r.mixes.get(s)?, k, *c)),
                };
                Some((id.clone(), v))
            })
            .collect();
        Ok(Outcome { series, accounting, structural: prep.differs })
    }

    /// Prepares the plan of every point up front, in order, so that preparation (and hence each
    /// point's accounting) does not depend on which worker runs first.
    pub(crate) fn prepare_all(&self, points: &[Point]) -> Result<(), AnalysisError> {
        let snapshot = self.snapshot();
        let db = snapshot.view().db;
        let mut seen: BTreeSet<Vec<(String, u64)>> = BTreeSet::new();
        for p in points {
            let key: Vec<(String, u64)> =
                self.structural_key(p).iter().map(|(k, v)| (k.clone(), v.as_f64().map_or(0, f64::to_bits))).collect();
            if seen.insert(key) {
                catch(|| self.prepared(db, p).map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// Evaluates `points` on `ctl.threads` workers and returns their outcomes in input order.
    /// Stops at a client cancel, a concurrent write, or the first failing point. `expand`, when
    /// given, completes point `i` on its worker just before it is evaluated (Monte Carlo draws its
    /// series there, so they are never all in memory at once).
    pub(crate) fn run(
        &self,
        points: &[Point],
        ctl: &Control<'_>,
        expand: Option<&Expand<'_>>,
    ) -> Result<Vec<Outcome>, AnalysisError> {
        self.prepare_all(points)?;
        // Identical points are evaluated once; the copies reuse everything.
        let mut unique: Vec<usize> = Vec::new();
        let mut first_of: Vec<usize> = Vec::with_capacity(points.len());
        let mut by_key: BTreeMap<Vec<(String, u64)>, usize> = BTreeMap::new();
        for (i, p) in points.iter().enumerate() {
            match p.dedup_key().filter(|_| expand.is_none()) {
                Some(k) => {
                    let slot = *by_key.entry(k).or_insert_with(|| {
                        unique.push(i);
                        i
                    });
                    first_of.push(slot);
                }
                None => {
                    unique.push(i);
                    first_of.push(i);
                }
            }
        }
        let mut copies: BTreeMap<usize, usize> = BTreeMap::new();
        for f in &first_of {
            *copies.entry(*f).or_default() += 1;
        }
        let total = points.len() as u64;
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let work = |db: &Database| -> Vec<(usize, Result<Outcome, AnalysisError>)> {
            let mut out = Vec::new();
            loop {
                if stop.load(Ordering::Relaxed) || ctl.cancelled() {
                    break;
                }
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = unique.get(j) else { break };
                let r = match expand {
                    Some(f) => {
                        let mut p = points[i].clone();
                        f(i, &mut p);
                        catch(|| self.eval_point(db, &p))
                    }
                    None => catch(|| self.eval_point(db, &points[i])),
                };
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                out.push((i, r));
                let n = copies.get(&i).copied().unwrap_or(1);
                let d = done.fetch_add(n, Ordering::Relaxed) + n;
                ctl.report(d as u64, total, None);
            }
            out
        };
        let threads = ctl.threads.clamp(1, unique.len().max(1));
        let mut results: Vec<(usize, Result<Outcome, AnalysisError>)> = if threads == 1 {
            work(self.snapshot().view().db)
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let snapshot = self.snapshot();
                        let work = &work;
                        s.spawn(move || work(snapshot.view().db))
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
            })
        };
        if ctl.cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        results.sort_by_key(|(i, _)| *i);
        let mut slots: Vec<Option<Outcome>> = vec![None; points.len()];
        for (i, r) in results {
            slots[i] = Some(r?);
        }
        let mut out = Vec::with_capacity(points.len());
        for (i, first) in first_of.iter().enumerate() {
            let o = if *first == i {
                slots[i].take()
            } else {
                out.get(*first).map(|o: &Outcome| Outcome {
                    series: o.series.clone(),
                    accounting: Accounting {
                        nodes_total: o.accounting.nodes_total,
                        nodes_evaluated: 0,
                        nodes_reused: o.accounting.nodes_total,
                        nodes_loaded: 0,
                        elapsed_us: 0,
                    },
                    structural: o.structural,
                })
            };
            let o = o.ok_or(AnalysisError::Cancelled)?;
            self.count(&o.accounting);
            out.push(o);
        }
        Ok(out)
    }

    /// Evaluates one point on the analysis's own clone (the iterative modes, which choose each
    /// point from the previous ones).
    pub(crate) fn eval_one(&self, p: &Point, ctl: &Control<'_>) -> Result<Outcome, AnalysisError> {
        if ctl.cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        let o = catch(|| self.eval_point(self.snapshot().view().db, p))?;
        self.count(&o.accounting);
        Ok(o)
    }

    /// A clone of the analysis's snapshot, for one worker (or one call) to evaluate on.
    fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs `f`, turning a cancellation by a concurrent write into [`AnalysisError::Interrupted`].
fn catch<T>(f: impl FnOnce() -> Result<T, HostError>) -> Result<T, AnalysisError> {
    match salsa::Cancelled::catch(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(AnalysisError::Host),
        Err(_) => Err(AnalysisError::Interrupted),
    }
}

/// A point's plan must keep the target's grid and read no input the target does not.
fn check_same_shape(base: &Base, plan: &Compiled, drawn: &BTreeSet<String>, field: &str) -> Result<(), HostError> {
    if !plan.grid.same_window(&base.plan.grid) || plan.grid.bins != base.plan.grid.bins {
        return Err(bad(Diagnostic::error(
            "structural_grid",
            format!("these values change the grid ({} instead of {})", plan.grid.describe(), base.plan.grid.describe()),
        )
        .at_path(field.to_string())
        .with_help("analyses keep the target's grid; open a session with these values instead")));
    }
    let missing: Vec<&String> = plan
        .inputs
        .keys()
        .filter(|k| !base.inputs.contains_key(*k) && !k.strip_prefix("override:").is_some_and(|n| drawn.contains(n)))
        .collect();
    if let Some(k) = missing.first() {
        return Err(bad(Diagnostic::error(
            "structural_input",
            format!("these values read input `{k}`, which {} does not read", base.target),
        )
        .at_path(field.to_string())
        .with_help("create a variant with these values first, then analyse it")));
    }
    Ok(())
}

fn point_error(p: &Point, d: Diagnostics) -> HostError {
    let at = p.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    HostError::BadInput(Diagnostics(
        d.0.into_iter()
            .map(|x| Diagnostic { message: crate::diag::bounded(&format!("at the point {at}: {}", x.message)), ..x })
            .collect(),
    ))
}

fn param_path(path: Option<&str>) -> String {
    match path.and_then(|p| p.strip_prefix("parameters.")) {
        Some(name) => format!("parameters[{name}]"),
        None => "parameters".to_string(),
    }
}

fn range_help(d: &ParamDecl) -> String {
    match (d.min, d.max) {
        (Some(lo), Some(hi)) => format!("`{}` is declared between {lo} and {hi}", d.name),
        (Some(lo), None) => format!("`{}` is declared ≥ {lo}", d.name),
        (None, Some(hi)) => format!("`{}` is declared ≤ {hi}", d.name),
        _ => format!("see the declaration of `{}`", d.name),
    }
}
