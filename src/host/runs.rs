//! Runs (§8) as the host sees them: `RunMaterial` evaluated on a snapshot, written by `artifacts`
//! with no lock held, then recorded under the host lock (`record_run`), listed and looked up.

use std::collections::BTreeMap;

use crate::engine::{Evaluation, InputSeries};
use crate::host::{Host, HostError};
use crate::model::grid::Grid;
use crate::model::params::ParamValue;
use crate::store::RunRecord;

use super::view::{Target, View};

/// A target evaluated for a run, not yet written (see [`View::run_material`]).
#[derive(Clone, Debug)]
pub struct RunMaterial {
    pub target: String,
    pub template_id: String,
    pub template_version: String,
    pub tenant: Option<String>,
    params: BTreeMap<String, ParamValue>,
    inputs: BTreeMap<String, InputSeries>,
    ev: Evaluation,
    warnings: Vec<crate::engine::warnings::Warning>,
}

impl RunMaterial {
    /// Writes (or reuses) the run directory under `runs`; `text` is the template's text.
    pub fn write(self, text: &str, runs: &std::path::Path) -> Result<RunCreated, HostError> {
        // The only parse of this request: runs are evaluated from cached plans.
        let source = crate::model::source::Source::parse(text)?;
        let out = crate::artifacts::write_run(
            runs,
            &crate::artifacts::RunInput {
                source: &source,
                params: &self.params,
                inputs: &self.inputs,
                evaluation: &self.ev,
                warnings: &self.warnings,
                tenant: self.tenant.as_deref(),
            },
        )?;
        let meta = &self.ev.compiled.document.meta;
        let record = RunInfo {
            id: out.run_id.clone(),
            dir: out.dir.display().to_string(),
            run_hash: out.run_hash.clone(),
            target: self.target.clone(),
            template_id: meta.id.clone().unwrap_or_default(),
            template_version: meta.version.clone().unwrap_or_default(),
            tenant: self.tenant.clone(),
            series: self.ev.compiled.outputs.len() as u32,
            warnings: self.warnings.len() as u32,
        };
        Ok(RunCreated {
            output: out,
            record,
            warnings: self.warnings,
            accounting: self.ev.accounting,
            grid: self.ev.compiled.grid,
        })
    }
}

/// A run written by [`RunMaterial::write`].
pub struct RunCreated {
    pub output: crate::artifacts::RunOutput,
    pub record: RunInfo,
    pub warnings: Vec<crate::engine::warnings::Warning>,
    pub accounting: crate::engine::Accounting,
    pub grid: Grid,
}

/// A recorded run (§8): where its directory is and what it was made from.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub id: String,
    /// The run directory.
    pub dir: String,
    pub run_hash: String,
    /// `session` or `session/variant` it was made from.
    pub target: String,
    pub template_id: String,
    pub template_version: String,
    pub tenant: Option<String>,
    /// Series written.
    pub series: u32,
    /// Warnings raised.
    pub warnings: u32,
}

impl RunInfo {
    fn record(&self) -> RunRecord {
        RunRecord {
            id: self.id.clone(),
            dir: self.dir.clone(),
            summary: serde_json::json!({
                "runHash": self.run_hash,
                "target": self.target,
                "templateId": self.template_id,
                "templateVersion": self.template_version,
                "tenant": self.tenant,
                "series": self.series,
                "warnings": self.warnings,
            }),
        }
    }
}

impl From<RunRecord> for RunInfo {
    fn from(r: RunRecord) -> RunInfo {
        let s = &r.summary;
        let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
        RunInfo {
            run_hash: text("runHash"),
            target: text("target"),
            template_id: text("templateId"),
            template_version: text("templateVersion"),
            tenant: s["tenant"].as_str().map(str::to_string),
            series: s["series"].as_u64().unwrap_or(0) as u32,
            warnings: s["warnings"].as_u64().unwrap_or(0) as u32,
            id: r.id,
            dir: r.dir,
        }
    }
}

impl Host {
    /// Records a run written by [`RunMaterial::write`]. (A run is made in three steps —
    /// [`View::run_material`] on a snapshot, `write` with no lock held, then this — so only the
    /// record is written under the host lock.)
    pub fn record_run(&mut self, run: &RunInfo) -> Result<(), HostError> {
        self.store.write(|w| w.put_run(&run.record()))?;
        Ok(())
    }

    pub fn runs(&self) -> Result<Vec<RunInfo>, HostError> {
        Ok(self.store.read()?.runs()?.into_iter().map(RunInfo::from).collect())
    }

    pub fn run(&self, id: &str) -> Result<RunInfo, HostError> {
        self.store.read()?.run(id)?.map(RunInfo::from).ok_or_else(|| HostError::not_found(format!("run `{id}`")))
    }
}

impl View<'_> {
    /// Everything a run directory is written from, evaluated on this snapshot.
    pub fn run_material(&self, t: &Target) -> Result<RunMaterial, HostError> {
        let mut ev = self.evaluate_target(t, None)?;
        // Per-class series are written with the totals (§6.1, §8).
        let all: Vec<u32> = ev.series.keys().copied().collect();
        self.evaluate_mixes(t, &mut ev, &all)?;
        let warnings = self.warnings(t, &ev)?;
        let (sc, _) = self.scenario(t)?;
        let inputs: BTreeMap<String, InputSeries> =
            sc.inputs(self.db).iter().map(|(k, c)| (k.clone(), c.data(self.db).clone())).collect();
        let state = self.state(&t.session)?;
        let params = match &t.variant {
            None => state.params.clone(),
            Some(v) => {
                state.variants.get(v).ok_or_else(|| HostError::not_found(format!("variant `{t}`")))?.params.clone()
            }
        };
        Ok(RunMaterial {
            target: t.to_string(),
            template_id: state.record.template_id.clone(),
            template_version: state.record.template_version.clone(),
            tenant: state.record.tenant.clone(),
            params,
            inputs,
            ev,
            warnings,
        })
    }
}
