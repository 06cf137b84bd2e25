//! Runs (§8) as the host sees them: `RunMaterial` evaluated on a snapshot, written by `artifacts`
//! with no lock held, then recorded under the host lock (`record_run`), listed and looked up.

use std::collections::BTreeMap;

use crate::engine::{Evaluation, InputSeries};
use crate::host::{Host, HostError};
use crate::model::grid::Grid;
use crate::model::params::ParamValue;

use super::view::{Target, View};

/// A run written by [`RunMaterial::write`].
#[derive(Clone, Debug)]
/// A target evaluated for a run, not yet written (see [`View::run_material`]).
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
        let out = crate::artifacts::write_run(
            runs,
            &crate::artifacts::RunInput {
                text,
                params: &self.params,
                inputs: &self.inputs,
                evaluation: &self.ev,
                warnings: &self.warnings,
                tenant: self.tenant.as_deref(),
            },
        )?;
        let record = crate::store::RunRecord {
            id: out.run_id.clone(),
            dir: out.dir.display().to_string(),
            summary: serde_json::json!({
                "runHash": out.run_hash,
                "target": self.target,
                "templateId": self.ev.compiled.document.meta.id,
                "templateVersion": self.ev.compiled.document.meta.version,
                "tenant": self.tenant,
                "series": self.ev.compiled.outputs.len(),
                "warnings": self.warnings.len(),
            }),
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

pub struct RunCreated {
    pub output: crate::artifacts::RunOutput,
    pub record: crate::store::RunRecord,
    pub warnings: Vec<crate::engine::warnings::Warning>,
    pub accounting: crate::engine::Accounting,
    pub grid: Grid,
}

impl Host {
    /// Records a run written by [`RunMaterial::write`]. (A run is made in three steps —
    /// [`View::run_material`] on a snapshot, `write` with no lock held, then this — so only the
    /// record is written under the host lock.)
    pub fn record_run(&mut self, record: &crate::store::RunRecord) -> Result<(), HostError> {
        self.store.write(|w| w.put_run(record))?;
        Ok(())
    }

    pub fn runs(&self) -> Result<Vec<crate::store::RunRecord>, HostError> {
        Ok(self.store.read()?.runs()?)
    }

    pub fn run(&self, id: &str) -> Result<crate::store::RunRecord, HostError> {
        self.store.read()?.run(id)?.ok_or_else(|| HostError::NotFound(format!("run `{id}`")))
    }
}

impl View<'_> {
    /// Everything a run directory is written from, evaluated on this snapshot.
    pub fn run_material(&self, t: &Target) -> Result<RunMaterial, HostError> {
        let ev = self.evaluate_target(t, None)?;
        let warnings = self.warnings(t, &ev)?;
        let (sc, _) = self.scenario(t)?;
        let inputs: BTreeMap<String, InputSeries> =
            sc.inputs(self.db).iter().map(|(k, c)| (k.clone(), c.data(self.db).clone())).collect();
        let state = self.state(&t.session)?;
        let params = match &t.variant {
            None => state.params.clone(),
            Some(v) => {
                state.variants.get(v).ok_or_else(|| HostError::NotFound(format!("variant `{t}`")))?.params.clone()
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
