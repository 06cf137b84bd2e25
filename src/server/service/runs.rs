//! The RunService: creating a run (evaluated on a snapshot, written with no lock held, recorded
//! under the lock), listing and reading runs.

use tonic::{Request, Response, Status};

use crate::host::RunInfo;
use crate::server::convert;
use crate::server::pb;
use crate::server::status::from_host;

use super::{Api, Reply, check_budget, every_series};

#[tonic::async_trait]
impl pb::run_service_server::RunService for Api {
    async fn create_run(&self, req: Request<pb::CreateRunRequest>) -> Reply<pb::Run> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let runs = self.opts.runs_dir.clone();
        let budget = self.opts.eval_budget;
        // Evaluated on a snapshot and written without the lock; only the record is a write.
        let material = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                check_budget(&c, None, &every_series(&c), budget)?;
                v.run_material(&t)
            })
            .await?;
        let (id, version) = (material.template_id.clone(), material.template_version.clone());
        let text = self.with_host("target", move |h| h.template(&id, &version)).await?.text;
        let created = tokio::task::spawn_blocking(move || material.write(&text, &runs))
            .await
            .map_err(|e| Status::internal(format!("run task failed: {e}")))?
            .map_err(|e| from_host("target", e))?;
        let record = created.record.clone();
        self.write("target", move |h| h.record_run(&record)).await?;
        Ok(Response::new(pb::Run {
            reused: created.output.reused,
            warnings: created.warnings.iter().map(convert::warning).collect(),
            accounting: Some(convert::accounting(&created.accounting)),
            grid: Some(convert::grid(&created.grid)),
            ..run_msg(&created.record)
        }))
    }

    async fn list_runs(&self, _: Request<pb::ListRunsRequest>) -> Reply<pb::ListRunsResponse> {
        let runs = self.with_host("", |h| h.runs()).await?;
        Ok(Response::new(pb::ListRunsResponse { runs: runs.iter().map(run_msg).collect() }))
    }

    async fn get_run(&self, req: Request<pb::GetRunRequest>) -> Reply<pb::Run> {
        let id = req.into_inner().run_id;
        let rec = self.with_host("run_id", move |h| h.run(&id)).await?;
        Ok(Response::new(run_msg(&rec)))
    }
}

/// A recorded run; what only its creation knows (warnings, accounting, grid) is left empty.
fn run_msg(r: &RunInfo) -> pb::Run {
    pb::Run {
        id: r.id.clone(),
        run_hash: r.run_hash.clone(),
        dir: r.dir.clone(),
        reused: true,
        template_id: r.template_id.clone(),
        template_version: r.template_version.clone(),
        tenant: r.tenant.clone().unwrap_or_default(),
        series: r.series,
        warnings: Vec::new(),
        accounting: None,
        grid: None,
    }
}
