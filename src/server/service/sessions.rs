//! The SessionService: opening, listing, reading, changing and closing sessions, and their
//! variants.

use tonic::{Request, Response};

use crate::host::{HostError, OpenRequest, Target};
use crate::server::convert;
use crate::server::pb;

use super::{Api, Reply};

#[tonic::async_trait]
impl pb::session_service_server::SessionService for Api {
    async fn open_session(&self, req: Request<pb::OpenSessionRequest>) -> Reply<pb::Session> {
        let r = req.into_inner();
        convert::check_name("session_id", &r.session_id)?;
        convert::check_name("template_id", &r.template_id)?;
        convert::check_name("template_version", &r.template_version)?;
        let mut params = convert::supplied_map("parameters", &r.parameters)?;
        let series = convert::bindings("series", &r.series)?;
        let s = self
            .write("parameters", move |h| {
                let version = h.find_template(&r.template_id, &r.template_version)?.version;
                let bound = match r.stored_telemetry {
                    true => h.stored_telemetry_bindings(&r.template_id, &version, &params)?,
                    false => Vec::new(),
                };
                for (name, reference) in &bound {
                    params.insert(name.clone(), crate::model::template::Supplied::Text(reference.clone()));
                }
                let grid = match series.needs_grid() {
                    true => Some(h.template_grid(&r.template_id, &version, &params)?),
                    false => None,
                };
                let series = series.resolve(grid.as_ref())?;
                let info = h.open_session(OpenRequest {
                    template_id: r.template_id.clone(),
                    template_version: version,
                    params,
                    series,
                    id: (!r.session_id.is_empty()).then(|| r.session_id.clone()),
                    tenant: (!r.tenant.is_empty()).then(|| r.tenant.clone()),
                })?;
                let grid = h.compiled_target(&Target { session: info.id.clone(), variant: None })?.grid;
                let mut s = convert::session(&info, Some(&grid));
                s.bound_to_stored = bound.into_iter().map(|(name, _)| name).collect();
                Ok(s)
            })
            .await?;
        Ok(Response::new(s))
    }

    async fn list_sessions(&self, _: Request<pb::ListSessionsRequest>) -> Reply<pb::ListSessionsResponse> {
        let sessions = self
            .read("", |v| {
                v.session_ids()
                    .iter()
                    .map(|id| {
                        let grid = v.compiled_target(&Target { session: id.clone(), variant: None })?.grid;
                        Ok(convert::session(&v.session_info(id)?, Some(&grid)))
                    })
                    .collect::<Result<Vec<_>, HostError>>()
            })
            .await?;
        Ok(Response::new(pb::ListSessionsResponse { sessions }))
    }

    async fn get_session(&self, req: Request<pb::GetSessionRequest>) -> Reply<pb::Session> {
        let id = req.into_inner().session_id;
        let s = self
            .read("session_id", move |v| {
                let grid = v.compiled_target(&Target { session: id.clone(), variant: None })?.grid;
                Ok(convert::session(&v.session_info(&id)?, Some(&grid)))
            })
            .await?;
        Ok(Response::new(s))
    }

    async fn close_session(&self, req: Request<pb::CloseSessionRequest>) -> Reply<pb::CloseSessionResponse> {
        let id = req.into_inner().session_id;
        self.write("session_id", move |h| h.close_session(&id)).await?;
        Ok(Response::new(pb::CloseSessionResponse {}))
    }

    async fn set_session_parameters(&self, req: Request<pb::SetSessionParametersRequest>) -> Reply<pb::Session> {
        let r = req.into_inner();
        let params = convert::supplied_map("parameters", &r.parameters)?;
        let s = self
            .write("parameters", move |h| {
                h.set_session_params(&r.session_id, &params)?;
                let grid = h.compiled_target(&Target { session: r.session_id.clone(), variant: None })?.grid;
                Ok(convert::session(&h.session_info(&r.session_id)?, Some(&grid)))
            })
            .await?;
        Ok(Response::new(s))
    }

    async fn create_variant(&self, req: Request<pb::CreateVariantRequest>) -> Reply<pb::Variant> {
        let r = req.into_inner();
        convert::check_name("name", &r.name)?;
        crate::server::edge::Call::note_target(&format!("{}/{}", r.session_id, r.name));
        let params = convert::supplied_map("parameters", &r.parameters)?;
        let series = convert::bindings("series", &r.series)?;
        let v = self
            .write("parameters", move |h| {
                let grid = match series.needs_grid() {
                    true => Some(grid_of(h, &r.session_id, None)?),
                    false => None,
                };
                let series = series.resolve(grid.as_ref())?;
                h.create_variant(&r.session_id, &r.name, &params, &series)
            })
            .await?;
        Ok(Response::new(convert::variant(&v)))
    }

    async fn update_variant(&self, req: Request<pb::UpdateVariantRequest>) -> Reply<pb::Variant> {
        let r = req.into_inner();
        let params = convert::supplied_map("parameters", &r.parameters)?;
        let series = convert::bindings("series", &r.series)?;
        let v = self
            .write("parameters", move |h| {
                let grid = match series.needs_grid() {
                    true => Some(grid_of(h, &r.session_id, Some(&r.name))?),
                    false => None,
                };
                let series = series.resolve(grid.as_ref())?;
                h.update_variant(&r.session_id, &r.name, &params, &series)
            })
            .await?;
        Ok(Response::new(convert::variant(&v)))
    }

    async fn list_variants(&self, req: Request<pb::ListVariantsRequest>) -> Reply<pb::ListVariantsResponse> {
        let id = req.into_inner().session_id;
        let variants = self
            .read("session_id", move |v| {
                v.session_info(&id)?
                    .variants
                    .iter()
                    .map(|n| Ok(convert::variant(&v.variant_info(&id, n)?)))
                    .collect::<Result<Vec<_>, HostError>>()
            })
            .await?;
        Ok(Response::new(pb::ListVariantsResponse { variants }))
    }

    async fn get_variant(&self, req: Request<pb::GetVariantRequest>) -> Reply<pb::Variant> {
        let r = req.into_inner();
        let v = self.read("name", move |v| v.variant_info(&r.session_id, &r.name)).await?;
        Ok(Response::new(convert::variant(&v)))
    }

    async fn delete_variant(&self, req: Request<pb::DeleteVariantRequest>) -> Reply<pb::DeleteVariantResponse> {
        let r = req.into_inner();
        self.write("name", move |h| h.delete_variant(&r.session_id, &r.name)).await?;
        Ok(Response::new(pb::DeleteVariantResponse {}))
    }
}

/// The grid of a session (or one of its variants), for reading CSV bindings.
fn grid_of(h: &crate::host::Host, session: &str, variant: Option<&str>) -> Result<crate::model::grid::Grid, HostError> {
    let t = Target { session: session.to_string(), variant: variant.map(str::to_string) };
    Ok(h.compiled_target(&t)?.grid)
}
