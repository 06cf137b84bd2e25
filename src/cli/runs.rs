//! `flowtime runs create|list|show`: run directories (§8) made from sessions and variants,
//! through the RunService.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cli::api::{status, target};
use crate::cli::output::{
    accounting, accounting_json, accounting_text, grid_json, warnings, warnings_json, warnings_text,
};
use crate::cli::{Api, Failure, Reply};
use crate::server::pb;

#[derive(clap::Subcommand, Debug)]
pub enum RunsCmd {
    /// Evaluate a session or variant and write its run directory (the same inputs reuse the same
    /// directory).
    Create {
        /// `session` or `session/variant`.
        target: String,
        /// Where run directories go, for a database opened by this command (a server writes
        /// under its own `--runs`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List recorded runs.
    List,
    /// One recorded run.
    Show { id: String },
}

impl RunsCmd {
    pub(crate) fn writes(&self) -> bool {
        matches!(self, RunsCmd::Create { .. })
    }

    pub(crate) fn out(&self) -> Option<PathBuf> {
        match self {
            RunsCmd::Create { out, .. } => out.clone(),
            _ => None,
        }
    }
}

fn run_json(r: &pb::Run) -> Value {
    json!({
        "runId": r.id, "runHash": r.run_hash, "dir": r.dir, "reused": r.reused,
        "templateId": r.template_id, "templateVersion": r.template_version,
        "tenant": (!r.tenant.is_empty()).then_some(&r.tenant), "series": r.series,
    })
}

fn run_line(r: &pb::Run) -> String {
    format!("{}  {}@{}  {} series  {}\n", r.id, r.template_id, r.template_version, r.series, r.dir)
}

pub(crate) async fn exec(api: &Api, cmd: RunsCmd) -> Result<Reply, Failure> {
    let mut c = api.client().runs();
    match cmd {
        RunsCmd::Create { target: t, out } => {
            if out.is_some() && api.server().is_some() {
                return Err(Failure::bad(
                    "bad_argument",
                    "--out names a local directory; a server writes runs under its own --runs",
                ));
            }
            let r = c.create_run(pb::CreateRunRequest { target: Some(target(&t)) }).await.map_err(status)?.into_inner();
            let ws = warnings(&r.warnings);
            let acc = accounting(r.accounting.as_ref());
            let text = format!(
                "run {}{}\n  {}\n{}{}\n",
                r.id,
                if r.reused { " (already on disk, verified)" } else { "" },
                r.dir,
                warnings_text(&ws),
                accounting_text(&acc)
            );
            let mut json = run_json(&r);
            json["grid"] = grid_json(r.grid.as_ref());
            json["warnings"] = warnings_json(&ws);
            json["accounting"] = accounting_json(&acc);
            Ok(Reply { json, text })
        }
        RunsCmd::List => {
            let runs = c.list_runs(pb::ListRunsRequest {}).await.map_err(status)?.into_inner().runs;
            let mut text: String = runs.iter().map(run_line).collect();
            if runs.is_empty() {
                text = "no runs are recorded (make one with `flowtime runs create SESSION`)\n".into();
            }
            Ok(Reply { json: runs.iter().map(run_json).collect::<Vec<_>>().into(), text })
        }
        RunsCmd::Show { id } => {
            let r = c.get_run(pb::GetRunRequest { run_id: id }).await.map_err(status)?.into_inner();
            Ok(Reply { json: run_json(&r), text: run_line(&r) })
        }
    }
}
