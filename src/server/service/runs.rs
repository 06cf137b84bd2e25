//! The RunService: creating a run (evaluated on a snapshot, written with no lock held, recorded
//! under the lock), listing and reading runs.

use tonic::{Request, Response, Status};

use crate::server::convert;
use crate::server::pb;
use crate::server::status::from_host;

use super::{Api, Reply, check_budget};

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
                check_budget(&*v.compiled_target(&t)?, None, budget)?;
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
        let s = &created.record.summary;
        Ok(Response::new(pb::Run {
            id: created.output.run_id.clone(),
            run_hash: created.output.run_hash.clone(),
            dir: created.output.dir.display().to_string(),
            reused: created.output.reused,
            template_id: s["templateId"].as_str().unwrap_or_default().to_string(),
            template_version: s["templateVersion"].as_str().unwrap_or_default().to_string(),
            tenant: s["tenant"].as_str().unwrap_or_default().to_string(),
            series: s["series"].as_u64().unwrap_or(0) as u32,
            warnings: created.warnings.iter().map(convert::warning).collect(),
            accounting: Some(convert::accounting(&created.accounting)),
            grid: Some(convert::grid(&created.grid)),
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

fn run_msg(r: &crate::store::RunRecord) -> pb::Run {
    let s = &r.summary;
    pb::Run {
        id: r.id.clone(),
        run_hash: s["runHash"].as_str().unwrap_or_default().to_string(),
        dir: r.dir.clone(),
        reused: true,
        template_id: s["templateId"].as_str().unwrap_or_default().to_string(),
        template_version: s["templateVersion"].as_str().unwrap_or_default().to_string(),
        tenant: s["tenant"].as_str().unwrap_or_default().to_string(),
        series: s["series"].as_u64().unwrap_or(0) as u32,
        warnings: Vec::new(),
        accounting: None,
        grid: None,
    }
}
