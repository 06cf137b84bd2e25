//! When §7.2 capacity inference is refused: a what-if that changes the queue but not `served`.
//!
//! `infer_from_saturation(served, queue)` reads a bin as saturated when the queue builds, on the
//! premise that `served` was then limited by capacity. That holds when both come from one world:
//! both replayed (telemetry, or a queue rebuilt from replayed flows) or both modelled. A what-if
//! that changes what the queue depends on while `served` stays replayed telemetry breaks it: the
//! replayed `served` cannot react, the queue keeps building, and every bin looks saturated (the
//! order-system template with `q0=500` "inferred" 43/bin where the truth is 109).
//!
//! So each inference is guarded by what its queue depends on and `served` does not: parameters
//! (a value other than the declared default is such a what-if) and overridden const nodes (always
//! one). A tripped guard makes the inferred capacity NaN with `capacity_not_inferable` saying why;
//! a what-if that models `served` too (it then depends on what the queue depends on) infers the
//! modelled capacity. The guards are found from the plan's unit graph once per plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::engine::cexpr::Bits;
use crate::engine::db::Evaluation;
use crate::engine::plan::UnitPlan;
use crate::engine::unit::{Inference, MemberDef, UnitDef, infer_capacity};
use crate::model::doc::Num;
use crate::model::params::ParamDecl;

/// What an inference checks before inferring (part of its unit's definition).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Guards {
    /// Parameter slots the queue depends on and `served` does not, with their declared
    /// defaults: another value is a what-if `served` cannot follow.
    pub params: Vec<(u16, Bits)>,
    /// Const nodes overridden where the queue depends on them and `served` does not.
    pub overrides: Vec<String>,
}

/// An inferred capacity, or why it was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Inferred {
    Value(Inference),
    Refused(String),
}

/// Adds the guards to every inference of a plan, rebuilding the units that hold one.
pub(crate) fn add_guards(units: &mut [UnitPlan], decls: &[ParamDecl]) {
    let defaults: BTreeMap<&str, f64> =
        decls.iter().filter_map(|d| Some((d.name.as_str(), d.default.as_ref()?.as_f64()?))).collect();
    for u in 0..units.len() {
        let infers: Vec<(usize, u16, u16)> = units[u]
            .def
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match &m.def {
                MemberDef::Infer { served, queue, .. } => Some((i, *served, *queue)),
                _ => None,
            })
            .collect();
        if infers.is_empty() {
            continue;
        }
        let mut plan = units[u].clone();
        let mut members = plan.def.members.clone();
        for (i, served, queue) in infers {
            let (Some(su), Some(qu)) = (ext_unit(&plan, served), ext_unit(&plan, queue)) else { continue };
            let (sp, so) = reads(units, su);
            let (qp, qo) = reads(units, qu);
            let mut guards = Guards::default();
            for p in qp.difference(&sp) {
                let Some(default) = defaults.get(p.as_str()) else { continue };
                let slot = match plan.params.iter().position(|x| x == p) {
                    Some(s) => s as u16,
                    None => {
                        plan.params.push(p.clone());
                        (plan.params.len() - 1) as u16
                    }
                };
                guards.params.push((slot, Bits::new(*default)));
            }
            guards.overrides = qo.difference(&so).cloned().collect();
            if let MemberDef::Infer { guards: g, .. } = &mut members[i].def {
                *g = guards;
            }
        }
        let d = &plan.def;
        plan.def = Arc::new(UnitDef::new(d.bins, d.srcs.clone(), members, d.n_outputs, d.sequential));
        units[u] = plan;
    }
}

/// The unit an external source slot of `plan` reads.
fn ext_unit(plan: &UnitPlan, slot: u16) -> Option<u32> {
    match plan.def.srcs.get(slot as usize)? {
        crate::engine::unit::Src::Ext { dep, .. } => plan.deps.get(*dep as usize).copied(),
        crate::engine::unit::Src::Own(_) => None,
    }
}

/// The parameters and overridden nodes unit `u` depends on, itself included.
fn reads(units: &[UnitPlan], u: u32) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut params, mut overrides) = (BTreeSet::new(), BTreeSet::new());
    let mut seen = BTreeSet::new();
    let mut stack = vec![u];
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        let p = &units[x as usize];
        params.extend(p.params.iter().cloned());
        overrides.extend(p.inputs.iter().filter_map(|k| k.strip_prefix("override:")).map(str::to_string));
        stack.extend(p.deps.iter().copied());
    }
    (params, overrides)
}

impl Guards {
    /// Whether the inference is refused, given the values of the guarded parameter slots.
    pub fn tripped(&self, value: impl Fn(u16) -> f64) -> bool {
        !self.overrides.is_empty()
            || self.params.iter().any(|(slot, default)| value(*slot).to_bits() != default.get().to_bits())
    }
}

/// Why the guards refuse (`queue` names the queue), given the values and names of the guarded
/// parameter slots.
pub(crate) fn refusal(
    g: &Guards,
    queue: &str,
    value: impl Fn(u16) -> f64,
    name: impl Fn(u16) -> String,
) -> Option<String> {
    let what = match g.overrides.first() {
        Some(node) => format!("the override of `{node}`"),
        None => {
            let (slot, default) = g.params.iter().find(|(s, d)| value(*s).to_bits() != d.get().to_bits())?;
            format!("{} = {} (default {})", name(*slot), value(*slot), default.get())
        }
    };
    Some(format!(
        "{what} changes the queue `{queue}` but not `served`, and replayed telemetry cannot follow a changed queue (every bin would look saturated); model `served` too, e.g. as a capacity-limited node"
    ))
}

/// The inference of series `s` of an evaluation (which must hold its `served` and queue), or why
/// it is refused; `None` for a series that is not inferred. `params` are numeric parameter values.
pub fn inferred(ev: &Evaluation, s: u32, params: &BTreeMap<String, f64>) -> Option<Inferred> {
    let c = &ev.compiled;
    let info = &c.series[s as usize];
    let (served, queue, init) = info.inference.as_ref()?;
    let plan = &c.units[info.unit as usize];
    let guards = plan.def.members.iter().find_map(|m| match &m.def {
        MemberDef::Infer { guards, .. } => Some(guards),
        _ => None,
    });
    let name = |slot: u16| plan.params.get(slot as usize).cloned().unwrap_or_default();
    let value = |slot: u16| params.get(&name(slot)).copied().unwrap_or(f64::NAN);
    if let Some(why) = guards.and_then(|g| refusal(g, c.series_id(*queue), value, name)) {
        return Some(Inferred::Refused(why));
    }
    let (sv, qv) = (ev.series.get(served)?, ev.series.get(queue)?);
    let init = match init {
        Some(Num::Lit(v)) => *v,
        Some(Num::Param(p)) => params.get(p).copied().unwrap_or(0.0),
        None => 0.0,
    };
    Some(Inferred::Value(infer_capacity(sv, qv, init)))
}
