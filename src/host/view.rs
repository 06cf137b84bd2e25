//! Read-only access: `View` (over the host, or a `Snapshot` on another thread) and `Target`;
//! evaluation, warnings, overrides, unit reads, and comparison (`Comparison`, `SeriesDiff`,
//! `diff_bins`), which reports series outside every difference's downstream cone as identical
//! without evaluating them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::engine::db::{self as edb, unit_keys};
use crate::engine::plan::Compiled;
use crate::engine::{Evaluation, InputSeries, Scenario};
use crate::host::{Host, HostError};
use crate::model::params::ParamValue;
use crate::sys;

use super::sessions::{SessionInfo, SessionState, VariantInfo};

/// Warnings (§7.1) of a full evaluation `ev` of scenario `sc`, read against its parameter and
/// input cells; with the class warnings of §6.1 when the model declares classes (their mixes are
/// computed here when `ev` lacks them). The one implementation for targets and one-shot models.
pub(crate) fn warnings(
    db: &crate::engine::Database,
    sc: Scenario,
    ev: &Evaluation,
) -> Result<Vec<crate::engine::warnings::Warning>, crate::diag::Diagnostics> {
    let inputs: BTreeMap<String, InputSeries> =
        sc.inputs(db).iter().map(|(k, c)| (k.clone(), c.data(db).clone())).collect();
    let params: BTreeMap<String, f64> =
        sc.params(db).iter().filter_map(|(k, c)| c.value(db).as_f64().map(|x| (k.clone(), x))).collect();
    let mut with_mixes;
    let ev = if ev.compiled.classes.is_some() && ev.mixes.is_empty() {
        with_mixes = ev.clone();
        let all: Vec<u32> = ev.series.keys().copied().collect();
        edb::evaluate_mixes(db, sc, &mut with_mixes, &all)?;
        &with_mixes
    } else {
        ev
    };
    Ok(crate::engine::validate::warnings(
        ev,
        &crate::engine::validate::ValidationInputs { inputs: &inputs, params: &params },
    ))
}

/// `session` or `session/variant`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub session: String,
    pub variant: Option<String>,
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s.split_once('/') {
            Some((a, b)) => Target { session: a.to_string(), variant: Some(b.to_string()) },
            None => Target { session: s.to_string(), variant: None },
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{v}", self.session),
            None => f.write_str(&self.session),
        }
    }
}

/// "session `x` not found", with the nearest open session and the list of open ones.
pub(crate) fn session_not_found(sessions: &BTreeMap<String, SessionState>, id: &str) -> HostError {
    let ids: Vec<&str> = sessions.keys().map(String::as_str).collect();
    HostError::NotFound(format!("session `{id}` not found{}", among("open sessions", &ids, id)))
}

/// "variant `s/x` not found", with the nearest variant of the session and the list of them.
pub(crate) fn variant_not_found(s: &SessionState, name: &str) -> HostError {
    let names: Vec<&str> = s.variants.keys().map(String::as_str).collect();
    let what = format!("variants of `{}`", s.record.id);
    HostError::NotFound(format!("variant `{}/{name}` not found{}", s.record.id, among(&what, &names, name)))
}

/// "; did you mean `b`? (open sessions: a, b)" — the nearest name and up to 20 of the names.
fn among(what: &str, names: &[&str], name: &str) -> String {
    if names.is_empty() {
        return format!(" (there are no {what})");
    }
    let hint = match crate::model::doc::closest(name, names) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    };
    let shown: Vec<&str> = names.iter().take(20).copied().collect();
    let more = if names.len() > 20 { format!(" and {} more", names.len() - 20) } else { String::new() };
    format!("{hint} ({what}: {}{more})", shown.join(", "))
}

/// One series compared between two operands.
#[derive(Clone, Debug)]
pub struct SeriesDiff {
    pub id: String,
    /// True when the series was not downstream of any difference (not evaluated).
    pub identical_by_construction: bool,
    pub a: Option<crate::engine::Series>,
    pub b: Option<crate::engine::Series>,
    pub max_abs_diff: f64,
    pub bins_differ: Vec<u32>,
    pub total_a: f64,
    pub total_b: f64,
}

impl SeriesDiff {
    /// A series not downstream of any difference: reported without evaluation.
    fn by_construction(id: String) -> SeriesDiff {
        SeriesDiff {
            id,
            identical_by_construction: true,
            a: None,
            b: None,
            max_abs_diff: 0.0,
            bins_differ: Vec::new(),
            total_a: f64::NAN,
            total_b: f64::NAN,
        }
    }

    /// The differences between two evaluated sides (either may be absent).
    fn of(id: String, a: Option<crate::engine::Series>, b: Option<crate::engine::Series>) -> SeriesDiff {
        let mut d = SeriesDiff {
            id,
            identical_by_construction: false,
            a,
            b,
            max_abs_diff: f64::NAN,
            bins_differ: Vec::new(),
            total_a: f64::NAN,
            total_b: f64::NAN,
        };
        if let (Some(x), Some(y)) = (&d.a, &d.b) {
            (d.bins_differ, d.max_abs_diff) = diff_bins(x, y, 0);
            d.total_a = x.iter().fold(0.0, |acc, v| acc + v);
            d.total_b = y.iter().fold(0.0, |acc, v| acc + v);
        }
        d
    }
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub series: Vec<SeriesDiff>,
    pub accounting: crate::engine::Accounting,
}

impl Host {
    pub fn view(&self) -> View<'_> {
        View { db: self.db(), sessions: &self.sessions }
    }

    /// A snapshot for a reader on another thread. A write through the host cancels in-flight
    /// reads on snapshots (they unwind with `salsa::Cancelled` and retry) and waits for them to
    /// drop: a reader never sees a half-applied change. Never lock the host while holding one.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { db: self.db().clone(), sessions: self.sessions.clone() }
    }

    pub fn session_info(&self, id: &str) -> Result<SessionInfo, HostError> {
        self.view().session_info(id)
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.view().session_ids()
    }

    pub fn variant_info(&self, session: &str, name: &str) -> Result<VariantInfo, HostError> {
        self.view().variant_info(session, name)
    }

    pub fn scenario(&self, t: &Target) -> Result<(Scenario, u64), HostError> {
        self.view().scenario(t)
    }

    pub fn evaluate_target(&self, t: &Target, targets: Option<&[u32]>) -> Result<Evaluation, HostError> {
        self.view().evaluate_target(t, targets)
    }

    pub fn compiled_target(&self, t: &Target) -> Result<Arc<Compiled>, HostError> {
        self.view().compiled_target(t)
    }

    pub fn compare(&self, a: &Target, b: &Target) -> Result<Comparison, HostError> {
        self.view().compare(a, b)
    }
}

/// Read-only access to sessions and the salsa database: from the host itself, or from a
/// [`Snapshot`] on another thread.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub(crate) db: &'a crate::engine::Database,
    pub(crate) sessions: &'a BTreeMap<String, SessionState>,
}

impl View<'_> {
    /// Warnings (§7.1) of a full evaluation of `t`.
    pub fn warnings(&self, t: &Target, ev: &Evaluation) -> Result<Vec<crate::engine::warnings::Warning>, HostError> {
        let (sc, _) = self.scenario(t)?;
        Ok(warnings(self.db, sc, ev)?)
    }

    /// Adds the mixes of the classed series among `series` to `ev` (§6.1).
    pub fn evaluate_mixes(&self, t: &Target, ev: &mut Evaluation, series: &[u32]) -> Result<(), HostError> {
        let (sc, _) = self.scenario(t)?;
        edb::evaluate_mixes(self.db, sc, ev, series).map_err(HostError::from)
    }

    /// The effective overrides of a target: overridden parameters and bound const nodes.
    pub fn overrides(&self, t: &Target) -> Result<(BTreeMap<String, ParamValue>, Vec<String>), HostError> {
        match &t.variant {
            None => Ok((BTreeMap::new(), self.session_info(&t.session)?.overrides)),
            Some(v) => {
                let info = self.variant_info(&t.session, v)?;
                Ok((info.params, info.series))
            }
        }
    }

    /// Identities and value fingerprints of what every unit of `t` reads (for watchers).
    pub fn unit_reads(&self, t: &Target) -> Result<Option<Vec<crate::engine::db::UnitReads>>, HostError> {
        let (sc, _) = self.scenario(t)?;
        Ok(edb::unit_reads(self.db, sc))
    }

    pub(crate) fn state(&self, id: &str) -> Result<&SessionState, HostError> {
        self.sessions.get(id).ok_or_else(|| session_not_found(self.sessions, id))
    }

    pub fn session_info(&self, id: &str) -> Result<SessionInfo, HostError> {
        let s = self.state(id)?;
        Ok(SessionInfo {
            id: s.record.id.clone(),
            template_id: s.record.template_id.clone(),
            template_version: s.record.template_version.clone(),
            params: s.params.clone(),
            inputs: s.inputs.keys().filter(|k| !k.starts_with("override:")).cloned().collect(),
            overrides: s.record.overrides.keys().cloned().collect(),
            tenant: s.record.tenant.clone(),
            revision: s.record.revision,
            variants: s.variants.keys().cloned().collect(),
            created_utc: s.record.created_utc.clone(),
        })
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    pub fn variant_info(&self, session: &str, name: &str) -> Result<VariantInfo, HostError> {
        let s = self.state(session)?;
        let v = s.variants.get(name).ok_or_else(|| variant_not_found(s, name))?;
        Ok(VariantInfo {
            session: session.to_string(),
            name: name.to_string(),
            params: v.own_cells.keys().filter_map(|k| v.params.get(k).map(|x| (k.clone(), x.clone()))).collect(),
            series: v.record.overrides.keys().cloned().collect(),
            revision: v.record.revision,
            created_utc: v.record.created_utc.clone(),
        })
    }

    /// The scenario behind a target, with its session's revision.
    pub fn scenario(&self, t: &Target) -> Result<(Scenario, u64), HostError> {
        let s = self.state(&t.session)?;
        match &t.variant {
            None => Ok((s.scenario, s.record.revision)),
            Some(v) => {
                let v = s.variants.get(v).ok_or_else(|| variant_not_found(s, v))?;
                Ok((v.scenario, s.record.revision))
            }
        }
    }

    /// A number unique to this opening of the session (or creation of the variant): a session
    /// closed and reopened under the same id has another, even on a recycled salsa input.
    pub fn incarnation(&self, t: &Target) -> Result<u64, HostError> {
        let s = self.state(&t.session)?;
        match &t.variant {
            None => Ok(s.incarnation),
            Some(v) => Ok(s.variants.get(v).ok_or_else(|| HostError::NotFound(format!("variant `{t}`")))?.incarnation),
        }
    }

    /// Evaluates the series of a target matching `targets` (every series when None).
    pub fn evaluate_target(&self, t: &Target, targets: Option<&[u32]>) -> Result<Evaluation, HostError> {
        let (sc, _) = self.scenario(t)?;
        let sw = sys::Stopwatch::start();
        let mut ev = edb::evaluate(self.db, sc, targets)?;
        ev.accounting.elapsed_us = sw.elapsed_us();
        Ok(ev)
    }

    pub fn compiled_target(&self, t: &Target) -> Result<Arc<Compiled>, HostError> {
        let (sc, _) = self.scenario(t)?;
        Ok(edb::compiled(self.db, sc))
    }

    /// Compares two targets series by series. Series whose unit keys are equal in both are
    /// identical by construction and are not evaluated.
    pub fn compare(&self, a: &Target, b: &Target) -> Result<Comparison, HostError> {
        let (sa, _) = self.scenario(a)?;
        let (sb, _) = self.scenario(b)?;
        let ca = edb::compiled(self.db, sa);
        let cb = edb::compiled(self.db, sb);
        if !ca.grid.same_window(&cb.grid) {
            return Err(HostError::FailedPrecondition(format!(
                "{a} and {b} have different grids ({} vs {})",
                ca.grid.describe(),
                cb.grid.describe()
            )));
        }
        let ka = unit_keys(self.db, sa)
            .clone()
            .ok_or_else(|| HostError::FailedPrecondition(format!("{a} has unresolved inputs")))?;
        let kb = unit_keys(self.db, sb)
            .clone()
            .ok_or_else(|| HostError::FailedPrecondition(format!("{b} has unresolved inputs")))?;
        let ids: BTreeSet<&String> = ca.by_id.keys().chain(cb.by_id.keys()).collect();
        let mut need_a = Vec::new();
        let mut need_b = Vec::new();
        let mut same = BTreeSet::new();
        for id in &ids {
            match (ca.by_id.get(*id), cb.by_id.get(*id)) {
                (Some(&x), Some(&y)) => {
                    let (ix, iy) = (&ca.series[x as usize], &cb.series[y as usize]);
                    if ka[ix.unit as usize] == kb[iy.unit as usize] && ix.output == iy.output {
                        same.insert((*id).clone());
                    } else {
                        need_a.push(x);
                        need_b.push(y);
                    }
                }
                (Some(&x), None) => need_a.push(x),
                (None, Some(&y)) => need_b.push(y),
                (None, None) => {}
            }
        }
        // §6.1 per-class series `x@c`: identical by construction when both the value unit and
        // the mix unit of `x` have the same keys on both sides; otherwise both mixes are computed.
        let classed = |c: &crate::engine::plan::Compiled, s: u32| {
            c.classes.as_ref().and_then(|cp| cp.series_mix[s as usize]).map(|(m, o)| (m, o, cp_ids(c)))
        };
        fn cp_ids(c: &crate::engine::plan::Compiled) -> Vec<String> {
            c.classes.as_ref().map_or_else(Vec::new, |cp| cp.ids.clone())
        }
        let mixes = |sc: Scenario, c: &crate::engine::plan::Compiled| match c.classes {
            Some(_) => edb::mix_keys(self.db, sc).clone(),
            None => None,
        };
        let (ma, mb) = (mixes(sa, &ca), mixes(sb, &cb));
        let mut class_need_a = Vec::new();
        let mut class_need_b = Vec::new();
        // Base id → identical by construction.
        let mut class_ids: BTreeMap<String, bool> = BTreeMap::new();
        for id in &ids {
            let x = ca.by_id.get(*id).and_then(|&x| classed(&ca, x).map(|m| (x, m)));
            let y = cb.by_id.get(*id).and_then(|&y| classed(&cb, y).map(|m| (y, m)));
            if x.is_none() && y.is_none() {
                continue;
            }
            let identical = match (&x, &y, &ma, &mb) {
                (Some((_, (mx, ox, cx))), Some((_, (my, oy, cy))), Some(ma), Some(mb)) => {
                    same.contains(*id) && ma[*mx as usize] == mb[*my as usize] && ox == oy && cx == cy
                }
                _ => false,
            };
            if !identical {
                class_need_a.extend(x.map(|(s, _)| s));
                class_need_b.extend(y.map(|(s, _)| s));
            }
            class_ids.insert((*id).clone(), identical);
        }
        let sw = sys::Stopwatch::start();
        let mut ea = edb::evaluate(self.db, sa, Some(&need_a))?;
        let mut eb = edb::evaluate(self.db, sb, Some(&need_b))?;
        edb::evaluate_mixes(self.db, sa, &mut ea, &class_need_a)?;
        edb::evaluate_mixes(self.db, sb, &mut eb, &class_need_b)?;
        let mut out = Vec::new();
        for id in ids {
            if same.contains(id) {
                out.push(SeriesDiff::by_construction(id.clone()));
                continue;
            }
            out.push(SeriesDiff::of(id.clone(), ea.get(id).cloned(), eb.get(id).cloned()));
        }
        for (id, identical) in &class_ids {
            let per_class = |ev: &Evaluation| -> BTreeMap<String, crate::engine::Series> {
                let Some(&s) = ev.compiled.by_id.get(id) else { return BTreeMap::new() };
                ev.classes_of(s)
                    .into_iter()
                    .filter_map(|k| Some((ev.class_series_id(s, k), ev.class_series(s, k)?.into())))
                    .collect()
            };
            if *identical {
                out.extend(cp_ids(&ca).into_iter().map(|k| SeriesDiff::by_construction(format!("{id}@{k}"))));
                continue;
            }
            let (pa, pb) = (per_class(&ea), per_class(&eb));
            let keys: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
            for k in keys {
                out.push(SeriesDiff::of(k.clone(), pa.get(k).cloned(), pb.get(k).cloned()));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        let mut acc = ea.accounting;
        acc.add_counts(&eb.accounting);
        acc.elapsed_us = sw.elapsed_us();
        Ok(Comparison { series: out, accounting: acc })
    }
}

/// An owned read snapshot (see [`Host::snapshot`]).
#[derive(Clone)]
pub struct Snapshot {
    db: crate::engine::Database,
    sessions: Arc<BTreeMap<String, SessionState>>,
}

impl Snapshot {
    pub fn view(&self) -> View<'_> {
        View { db: &self.db, sessions: &self.sessions }
    }
}

/// The bins (numbered from `first`) whose bits differ between `a` and `b` (NaN equals NaN),
/// and the largest absolute difference among them: NaN when a differing bin is NaN on one side
/// only (the difference is unknown, not zero).
pub(crate) fn diff_bins(a: &[f64], b: &[f64], first: u32) -> (Vec<u32>, f64) {
    let mut max: f64 = 0.0;
    let mut differ = Vec::new();
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        if p.to_bits() != q.to_bits() && !(p.is_nan() && q.is_nan()) {
            differ.push(first + i as u32);
            let d = (q - p).abs();
            max = if d.is_nan() || max.is_nan() { f64::NAN } else { max.max(d) };
        }
    }
    (differ, max)
}
