//! The TemplateService: storing, listing and reading templates, and instantiating one on a
//! private in-memory host.

use tonic::{Request, Response, Status};

use crate::artifacts;
use crate::host::{Host, HostError, PreparedTemplate, TemplateInfo};
use crate::server::convert;
use crate::server::pb;
use crate::server::status::{from_host, invalid_field};

use super::{Api, Reply};

#[tonic::async_trait]
impl pb::template_service_server::TemplateService for Api {
    async fn put_template(&self, req: Request<pb::PutTemplateRequest>) -> Reply<pb::PutTemplateResponse> {
        let r = req.into_inner();
        if r.text.trim().is_empty() {
            return Err(invalid_field("text", "the template text is empty"));
        }
        let source = if r.source.is_empty() { "request".to_string() } else { r.source };
        // Parsed, validated and compiled off the host lock, a few at a time; the lock only for
        // storing it.
        let limits = self.opts.documents;
        let permit = self.documents.acquire().await.map_err(|_| Status::unavailable("the server is stopping"))?;
        let prepared = super::on_blocking_thread(move || PreparedTemplate::new(&r.text, &source, &limits))
            .await?
            .map_err(|e| from_host("text", e))?;
        drop(permit);
        let (id, version, created) = self.write("text", move |h| h.store_template(prepared)).await?;
        Ok(Response::new(pb::PutTemplateResponse { id, version, created }))
    }

    async fn get_template(&self, req: Request<pb::GetTemplateRequest>) -> Reply<pb::Template> {
        let r = req.into_inner();
        let t = self.with_host("id", move |h| h.find_template(&r.id, &r.version)).await?;
        Ok(Response::new(template_msg(&t, true)))
    }

    async fn list_templates(&self, _: Request<pb::ListTemplatesRequest>) -> Reply<pb::ListTemplatesResponse> {
        let ts = self.with_host("", |h| h.templates()).await?;
        Ok(Response::new(pb::ListTemplatesResponse { templates: ts.iter().map(|t| template_msg(t, false)).collect() }))
    }

    async fn instantiate_template(
        &self,
        req: Request<pb::InstantiateTemplateRequest>,
    ) -> Reply<pb::InstantiateTemplateResponse> {
        let r = req.into_inner();
        let supplied = convert::supplied_map("parameters", &r.parameters)?;
        let (id, version) = (r.id.clone(), r.version.clone());
        let rec = self.with_host("id", move |h| h.find_template(&id, &version)).await?;
        let root = self.data_root.to_path_buf();
        let budget = self.opts.eval_budget;
        let out = super::on_blocking_thread(move || -> Result<pb::InstantiateTemplateResponse, HostError> {
            // A one-shot model on its own in-memory host: instantiation changes nothing stored,
            // and everything it evaluated goes when the host does.
            let mut host = Host::new();
            let m = host.load_text(&rec.text, &format!("{}@{}", rec.id, rec.version), &supplied, &root)?;
            // Like every evaluating request: refused before any work when over the budget.
            // Warnings read every mix of a model with classes (§6.1): counted too.
            let c = host.compiled(&m)?;
            super::check_budget(&c, None, &super::every_series(&c), budget)?;
            let ev = host.evaluate(&m, None)?;
            let warnings = host.warnings(&m, &ev)?;
            let yaml = artifacts::instantiated_yaml(&m.source, &m.params)?;
            Ok(pb::InstantiateTemplateResponse {
                model_yaml: yaml,
                instantiation_hash: crate::model::params::instantiation_hash(&m.text, &m.params),
                warnings: warnings.iter().map(convert::warning).collect(),
                grid: Some(convert::grid(&ev.compiled.grid)),
            })
        })
        .await?
        .map_err(|e| from_host("parameters", e))?;
        Ok(Response::new(out))
    }
}

fn template_msg(t: &TemplateInfo, with_text: bool) -> pb::Template {
    let decls = t.parameters();
    pb::Template {
        id: t.id.clone(),
        version: t.version.clone(),
        text: if with_text { t.text.clone() } else { String::new() },
        sha256: t.sha256.clone(),
        title: t.title.clone().unwrap_or_default(),
        description: t.description.clone().unwrap_or_default(),
        parameters: decls.iter().map(convert::decl).collect(),
    }
}
