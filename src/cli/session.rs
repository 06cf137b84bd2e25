//! `flowtime session open|list|show|set|close`, through the SessionService (and the
//! TemplateService for a template given as a file).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::api::{bindings, params, status};
use crate::cli::output::{grid_json, params_json};
use crate::cli::template::{missing_file, read_document, split_ref};
use crate::cli::{Api, Failure, Reply};
use crate::server::pb;
use crate::sys;

#[derive(clap::Subcommand, Debug)]
pub enum SessionCmd {
    /// Open a session on a template file (stored first) or a stored `ID[@VERSION]`.
    Open {
        template: String,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Bind a const node (or a `series` parameter) to a CSV series: `node=file.csv`
        /// (repeatable).
        #[arg(long = "series", value_name = "NODE=FILE")]
        series: Vec<String>,
        /// Session id (default: s1, s2, …).
        #[arg(long)]
        name: Option<String>,
        /// Optional tenant label carried into runs.
        #[arg(long)]
        tenant: Option<String>,
        /// Bind every `series` parameter whose default is `file:…/<name>.csv` to the stored
        /// series `series:<name>` when the database has one (replay loaded telemetry).
        #[arg(long)]
        stored_telemetry: bool,
    },
    /// List open sessions.
    List,
    /// A session's template, parameters, inputs and variants.
    Show { id: String },
    /// Change session parameters in place (variants that do not override them follow).
    Set {
        id: String,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Close a session: it and its variants are removed.
    Close { id: String },
}

impl SessionCmd {
    pub(crate) fn writes(&self) -> bool {
        !matches!(self, SessionCmd::List | SessionCmd::Show { .. })
    }

    /// The template file `session open` names (whether or not it exists).
    pub(crate) fn document(&self) -> Option<PathBuf> {
        match self {
            SessionCmd::Open { template, .. } if looks_like_file(template) => Some(PathBuf::from(template)),
            _ => None,
        }
    }
}

/// A template argument that names a file rather than a stored `id[@version]`: it exists, or it
/// has a path separator or a YAML extension (ids have neither).
fn looks_like_file(s: &str) -> bool {
    sys::exists(Path::new(s)) || s.contains('/') || s.contains('\\') || s.ends_with(".yaml") || s.ends_with(".yml")
}

pub(crate) async fn exec(api: &Api, cmd: SessionCmd) -> Result<Reply, Failure> {
    let mut c = api.client().sessions();
    match cmd {
        SessionCmd::Open { template, params: raw, series, name, tenant, stored_telemetry } => {
            let (id, version) = if looks_like_file(&template) {
                let path = Path::new(&template);
                if !sys::exists(path) {
                    return Err(missing_file(path));
                }
                let text = read_document(path)?;
                let r = api
                    .client()
                    .templates()
                    .put_template(pb::PutTemplateRequest { text, source: template.clone() })
                    .await
                    .map_err(status)?
                    .into_inner();
                (r.id, r.version)
            } else {
                split_ref(&template, None)
            };
            let s = c
                .open_session(pb::OpenSessionRequest {
                    template_id: id,
                    template_version: version,
                    parameters: params(&raw)?,
                    series: bindings(&series)?,
                    session_id: name.unwrap_or_default(),
                    tenant: tenant.unwrap_or_default(),
                    stored_telemetry,
                })
                .await
                .map_err(status)?
                .into_inner();
            let mut r = session_reply(&s);
            r.text = format!("opened {}", r.text);
            if stored_telemetry {
                let bound = &s.bound_to_stored;
                let what = match bound.len() {
                    0 => "nothing (no stored series matches a parameter's default file)".to_string(),
                    n => format!("{} ({})", bound.join(", "), crate::cli::output::count(n as u64, "parameter")),
                };
                r.text.push_str(&format!("  bound to stored telemetry: {what}\n"));
            }
            Ok(r)
        }
        SessionCmd::List => {
            let list = c.list_sessions(pb::ListSessionsRequest {}).await.map_err(status)?.into_inner().sessions;
            let text = list
                .iter()
                .map(|s| {
                    let n = s.variants.len();
                    format!(
                        "{}  {}@{}  revision {}  {n} variant{}\n",
                        s.id,
                        s.template_id,
                        s.template_version,
                        s.revision,
                        if n == 1 { "" } else { "s" }
                    )
                })
                .collect::<String>();
            let text = if list.is_empty() { "no sessions are open\n".to_string() } else { text };
            Ok(Reply { json: Value::Array(list.iter().map(|s| session_reply(s).json).collect()), text })
        }
        SessionCmd::Show { id } => {
            let s = c.get_session(pb::GetSessionRequest { session_id: id }).await.map_err(status)?.into_inner();
            Ok(session_reply(&s))
        }
        SessionCmd::Set { id, params: raw } => {
            let s = c
                .set_session_parameters(pb::SetSessionParametersRequest { session_id: id, parameters: params(&raw)? })
                .await
                .map_err(status)?
                .into_inner();
            Ok(session_reply(&s))
        }
        SessionCmd::Close { id } => {
            c.close_session(pb::CloseSessionRequest { session_id: id.clone() }).await.map_err(status)?;
            Ok(Reply { json: json!({"closed": id}), text: format!("closed session {id}\n") })
        }
    }
}

pub(crate) fn session_reply(s: &pb::Session) -> Reply {
    let json = json!({
        "id": s.id, "template": {"id": s.template_id, "version": s.template_version},
        "parameters": params_json(&s.parameters), "inputs": s.inputs, "series": s.series_bindings,
        "tenant": (!s.tenant.is_empty()).then_some(&s.tenant), "revision": s.revision, "variants": s.variants,
        "createdUtc": s.created_utc, "grid": grid_json(s.grid.as_ref()),
    });
    let mut text = format!("session {} on {}@{} (revision {})\n", s.id, s.template_id, s.template_version, s.revision);
    for (k, v) in crate::cli::output::params(&s.parameters) {
        text.push_str(&format!("  {k} = {v}\n"));
    }
    if !s.series_bindings.is_empty() {
        text.push_str(&format!("  bound series: {}\n", s.series_bindings.join(", ")));
    }
    if !s.variants.is_empty() {
        text.push_str(&format!("  variants: {}\n", s.variants.join(", ")));
    }
    Reply { json, text }
}
