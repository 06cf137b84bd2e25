//! `flowtime template put|list|show|instantiate`: stored templates, through the TemplateService.

use std::path::PathBuf;

use serde_json::json;

use crate::cli::api::{params, status};
use crate::cli::{Api, Failure, Reply};
use crate::diag::Diagnostic;
use crate::server::pb;
use crate::sys;

#[derive(clap::Subcommand, Debug)]
pub enum TemplateCmd {
    /// Validate and store a template file (identical text again is a no-op).
    Put { file: PathBuf },
    /// List stored templates.
    List,
    /// Print a stored template's text (`ID`, `ID VERSION` or `ID@VERSION`; the highest version
    /// by default).
    Show { id: String, version: Option<String> },
    /// Print a stored template instantiated with parameter values.
    Instantiate {
        id: String,
        version: Option<String>,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

impl TemplateCmd {
    pub(crate) fn writes(&self) -> bool {
        matches!(self, TemplateCmd::Put { .. })
    }
}

/// Reads a template file for storing: a missing file says so, with the nearest existing name.
pub(crate) fn read_document(file: &std::path::Path) -> Result<String, Failure> {
    if !sys::exists(file) {
        return Err(missing_file(file));
    }
    sys::read_to_string(file).map_err(|e| Failure::bad("io", format!("cannot read {}: {e}", file.display())))
}

/// "FILE does not exist", with the nearest name in its directory.
pub(crate) fn missing_file(file: &std::path::Path) -> Failure {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let names: Vec<String> = sys::list_dir(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let asked = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let d = Diagnostic::error("no_such_file", format!("{} does not exist", file.display()));
    let d = match crate::model::doc::closest(&asked, &refs) {
        Some(n) => d.with_help(format!("did you mean {}?", dir.join(n).display())),
        None if sys::is_dir(dir) => d.with_help(format!("no file in {} has a similar name", dir.display())),
        None => d.with_help(format!("the directory {} does not exist either", dir.display())),
    };
    d.into()
}

/// `ID@VERSION` or `ID` (with an optional separate version).
pub(crate) fn split_ref(id: &str, version: Option<String>) -> (String, String) {
    match (id.split_once('@'), version) {
        (_, Some(v)) => (id.to_string(), v),
        (Some((i, v)), None) => (i.to_string(), v.to_string()),
        (None, None) => (id.to_string(), String::new()),
    }
}

pub(crate) async fn exec(api: &Api, cmd: TemplateCmd) -> Result<Reply, Failure> {
    let mut c = api.client().templates();
    match cmd {
        TemplateCmd::Put { file } => {
            let text = read_document(&file)?;
            let source = file.display().to_string();
            let r = c.put_template(pb::PutTemplateRequest { text, source }).await.map_err(status)?.into_inner();
            let verb = if r.created { "stored" } else { "already stored (identical)" };
            let text = format!("template {}@{} {verb}\n", r.id, r.version);
            Ok(Reply { json: json!({"id": r.id, "version": r.version, "created": r.created}), text })
        }
        TemplateCmd::List => {
            let ts = c.list_templates(pb::ListTemplatesRequest {}).await.map_err(status)?.into_inner().templates;
            let text = ts.iter().map(|t| format!("{}@{}  {}\n", t.id, t.version, t.title)).collect();
            let json = ts
                .iter()
                .map(|t| json!({"id": t.id, "version": t.version, "title": t.title, "sha256": t.sha256}))
                .collect::<Vec<_>>();
            Ok(Reply { json: json.into(), text })
        }
        TemplateCmd::Show { id, version } => {
            let (id, version) = split_ref(&id, version);
            let t = c.get_template(pb::GetTemplateRequest { id, version }).await.map_err(status)?.into_inner();
            Ok(Reply {
                json: json!({"id": t.id, "version": t.version, "text": t.text, "sha256": t.sha256}),
                text: t.text,
            })
        }
        TemplateCmd::Instantiate { id, version, params: raw } => {
            let (id, version) = split_ref(&id, version);
            let r = c
                .instantiate_template(pb::InstantiateTemplateRequest { id, version, parameters: params(&raw)? })
                .await
                .map_err(status)?
                .into_inner();
            Ok(Reply {
                json: json!({"model": r.model_yaml, "instantiationHash": r.instantiation_hash}),
                text: r.model_yaml,
            })
        }
    }
}
