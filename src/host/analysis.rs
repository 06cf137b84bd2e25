//! What the analyses (`crate::analysis`) need from the host: a target's scenario taken apart into
//! its plan, parameter cells and input cells on a snapshot (taken under the lock, used without
//! it), the compiler for points that change a structural parameter, reference series a fit
//! compares with, and keeping points as real variants.
//!
//! Invariant: nothing here writes except [`Host::keep_points`], which creates every variant or
//! none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::plan::{Compiled, compile};
use crate::engine::{ParamCell, Scenario, SeriesCell};
use crate::host::{Host, HostError, Snapshot, Target, read_input};
use crate::model::grid::Grid;
use crate::model::params::{ParamDecl, ParamValue};
use crate::model::series::{SeriesRef, parse_ref};
use crate::model::source::Source;
use crate::model::template::Supplied;

use super::plan_cache::plan_recording;

/// A target as the analyses derive points from it.
pub struct AnalysisBase {
    /// The database and sessions as they were when the analysis started.
    pub snapshot: Snapshot,
    /// The target's scenario: its unit keys come from its own `unit_keys` query, so they are
    /// interned inside a query and collected like any scenario's once unused (keys interned
    /// outside a query are immortal in salsa).
    pub scenario: Scenario,
    pub target: Target,
    /// The session's revision at the snapshot.
    pub revision: u64,
    pub plan: Arc<Compiled>,
    /// Every declared parameter's cell, with the target's values.
    pub cells: BTreeMap<String, ParamCell>,
    /// Input key → cell, as the target reads them.
    pub inputs: BTreeMap<String, SeriesCell>,
    pub decls: Arc<Vec<ParamDecl>>,
    /// The parameters the document reads structurally (a new value may change the graph).
    pub structural: BTreeSet<String>,
    pub compiler: PlanCompiler,
}

/// Compiles the target's document for other parameter values, without the host's plan cache
/// (it runs off the host lock).
#[derive(Clone)]
pub struct PlanCompiler {
    /// The target's document, parsed once.
    source: Arc<Source>,
    /// Const nodes the target overrides.
    overrides: BTreeSet<String>,
}

impl PlanCompiler {
    /// The plan for `params` with `extra` nodes overridden as well as the target's.
    pub fn compile(
        &self,
        params: &BTreeMap<String, ParamValue>,
        extra: &BTreeSet<String>,
    ) -> Result<Arc<Compiled>, Diagnostics> {
        let overrides: BTreeSet<String> = self.overrides.union(extra).cloned().collect();
        plan_recording(&self.source, params, &overrides).map(|(c, _)| Arc::new(c))
    }

    /// `plan` (compiled for the target's parameters) with `extra` nodes overridden too.
    pub fn with_overrides(&self, plan: &Compiled, extra: &BTreeSet<String>) -> Result<Arc<Compiled>, Diagnostics> {
        let overrides: BTreeSet<String> = self.overrides.union(extra).cloned().collect();
        compile(plan.document.clone(), &overrides).map(Arc::new)
    }
}

impl Host {
    /// The target's scenario taken apart for an analysis, on a snapshot.
    pub fn analysis_base(&mut self, t: &Target) -> Result<AnalysisBase, HostError> {
        let (scenario, revision) = self.view().scenario(t)?;
        let (id, version) = {
            let view = self.view();
            let record = &view.state(&t.session)?.record;
            (record.template_id.clone(), record.template_version.clone())
        };
        let entry = self.template_entry(&id, &version)?;
        let db = self.db();
        let plan = scenario.plan(db).clone();
        let cells: BTreeMap<String, ParamCell> = (**scenario.params(db)).clone();
        let inputs: BTreeMap<String, SeriesCell> = (**scenario.inputs(db)).clone();
        let values: BTreeMap<String, ParamValue> =
            cells.iter().map(|(k, c)| (k.clone(), c.value(db).clone())).collect();
        let overrides: BTreeSet<String> =
            inputs.keys().filter_map(|k| k.strip_prefix("override:")).map(str::to_string).collect();
        let source = entry.source.clone();
        // The plan cache knows what the target's plan read; compiling again is the fallback for
        // a plan it no longer holds (compiling a 1,000-node document takes tens of milliseconds).
        let structural = match self.plans.structural_reads(source.sha256(), &plan) {
            Some(reads) => reads,
            None => plan_recording(&source, &values, &overrides)?.1.into_iter().map(|(k, _)| k).collect(),
        };
        Ok(AnalysisBase {
            snapshot: self.snapshot(),
            scenario,
            target: t.clone(),
            revision,
            plan,
            cells,
            inputs,
            decls: entry.decls.clone(),
            structural,
            compiler: PlanCompiler { source, overrides },
        })
    }

    /// The values of a `series:` (stored telemetry, sliced to `grid`'s window) or `file:`
    /// (under the data root) reference, read without creating any input.
    pub fn reference_values(&self, reference: &str, grid: &Grid, field: &str) -> Result<Vec<f64>, HostError> {
        let located = |d: Diagnostic| d.at_path(field.to_string());
        match parse_ref(reference) {
            Ok(SeriesRef::Stored(name)) => {
                let rec = self.store.read()?.series(&name)?.ok_or_else(|| {
                    HostError::BadInput(
                        located(Diagnostic::error("unknown_series", format!("no stored series `{name}`")))
                            .with_help("load telemetry first (`flowtime telemetry load … --db`), or use `file:`")
                            .into(),
                    )
                })?;
                Ok(self.slice_stored(&rec, grid)?.values.to_vec())
            }
            Ok(SeriesRef::File(_)) => {
                let data = read_input(reference, grid, &self.data_root)
                    .map_err(|d| HostError::BadInput(Diagnostics(d.0.into_iter().map(located).collect())))?;
                Ok(data.values.to_vec())
            }
            Ok(other) => {
                Err(located(Diagnostic::error("bad_reference", format!("`{other}` is not a stored or file series")))
                    .with_help(
                        "use `series:<name>`, `file:<path>.csv`, a series id of the target, or upload the values",
                    )
                    .into())
            }
            Err(e) => Err(located(Diagnostic::error("bad_reference", e))
                .with_help("use `series:<name>`, `file:<path>.csv`, a series id of the target, or upload the values")
                .into()),
        }
    }

    /// Creates one variant of `t`'s session per point, named as given, each with `t`'s overrides
    /// (when `t` is a variant), `common` and the point's own values. All or nothing: names are
    /// checked first, and a failure part way deletes the variants already created.
    pub fn keep_points(
        &mut self,
        t: &Target,
        common: &BTreeMap<String, Supplied>,
        points: &[(String, BTreeMap<String, Supplied>)],
    ) -> Result<Vec<String>, HostError> {
        let state =
            self.sessions.get(&t.session).ok_or_else(|| HostError::NotFound(format!("session `{}`", t.session)))?;
        let taken: BTreeSet<String> = state.variants.keys().cloned().collect();
        let (mut params, mut series) = (BTreeMap::new(), BTreeMap::new());
        if let Some(v) = &t.variant {
            let v = state.variants.get(v).ok_or_else(|| HostError::NotFound(format!("variant `{t}`")))?;
            params.extend(
                v.own_cells.keys().filter_map(|k| Some((k.clone(), Supplied::Yaml(v.params.get(k)?.to_yaml())))),
            );
            for (key, cell) in &v.inputs {
                if let Some(node) = key.strip_prefix("override:") {
                    series.insert(node.to_string(), cell.data(self.db()).values.to_vec());
                }
            }
        }
        params.extend(common.clone());
        for (name, _) in points {
            if taken.contains(name) {
                return Err(HostError::AlreadyExists(format!("variant `{}/{name}`", t.session)));
            }
        }
        let mut created: Vec<String> = Vec::new();
        for (name, own) in points {
            let mut p = params.clone();
            p.extend(own.clone());
            if let Err(e) = self.create_variant(&t.session, name, &p, &series) {
                for done in &created {
                    let _ = self.delete_variant(&t.session, done);
                }
                return Err(e);
            }
            created.push(name.clone());
        }
        Ok(created)
    }
}
