//! The tonic service implementations: each RPC validates its request, runs host work on a
//! blocking thread (reads on snapshots, writes under the host lock), and converts the result.

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::artifacts;
use crate::engine::Evaluation;
use crate::engine::plan::Compiled;
use crate::host::{Host, HostError, OpenRequest, SharedHost, Target, View};
use crate::model::doc::Role;
use crate::model::grid::{format_minutes, parse_utc_minutes};
use crate::server::ServerOptions;
use crate::server::convert;
use crate::server::pb;
use crate::server::status::{from_host, from_read, invalid_field};

/// The state every service shares.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) host: Arc<SharedHost>,
    /// Bumped after every committed change; watchers wait on it.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    pub(crate) opts: Arc<ServerOptions>,
    /// Becomes true when the server shuts down: open watch streams end then.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// Where `file:` references and LoadGold paths resolve (fixed for the host's life; read
    /// once so no async task ever waits on the host lock).
    pub(crate) data_root: Arc<std::path::PathBuf>,
}

type Reply<T> = Result<Response<T>, Status>;

impl Api {
    pub(crate) fn new(host: Arc<SharedHost>, opts: ServerOptions, stopping: tokio::sync::watch::Receiver<bool>) -> Api {
        let (changes, _) = tokio::sync::watch::channel(0);
        let data_root = Arc::new(host.lock().data_root().to_path_buf());
        Api { host, changes, opts: Arc::new(opts), stopping, data_root }
    }

    /// Runs `f` on a snapshot on a blocking thread, retrying cancelled reads.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl Fn(View<'_>) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let host = self.host.clone();
        let retries = self.opts.read_retries;
        tokio::task::spawn_blocking(move || host.read(retries, f))
            .await
            .map_err(|e| Status::internal(format!("read task failed: {e}")))?
            .map_err(|e| from_read(field, e))
    }

    /// Runs a change under the host lock on a blocking thread; notifies watchers.
    async fn write<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl FnOnce(&mut Host) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let host = self.host.clone();
        let res = tokio::task::spawn_blocking(move || host.write(f))
            .await
            .map_err(|e| Status::internal(format!("write task failed: {e}")))?;
        if res.is_ok() {
            self.changes.send_modify(|g| *g += 1);
        }
        res.map_err(|e| from_host(field, e))
    }

    /// Store reads that need no evaluation, under the lock briefly.
    async fn with_host<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl FnOnce(&Host) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || f(&host.lock()))
            .await
            .map_err(|e| Status::internal(format!("task failed: {e}")))?
            .map_err(|e| from_host(field, e))
    }
}

/// Rejects evaluations larger than the `bins × units` budget.
pub(crate) fn check_budget(c: &Compiled, targets: Option<&[u32]>, budget: u64) -> Result<(), HostError> {
    check_budget_all(&[(c, targets)], budget)
}

/// [`check_budget`] for a request that evaluates several plans.
fn check_budget_all(plans: &[(&Compiled, Option<&[u32]>)], budget: u64) -> Result<(), HostError> {
    let (mut parts, mut cost) = (Vec::new(), 0u64);
    for (c, targets) in plans {
        let u: u64 = c.closure(*targets).iter().map(|u| c.units[*u as usize].weight as u64).sum();
        parts.push(format!("{u} series definitions × {} bins", c.grid.bins));
        cost += u * c.grid.bins as u64;
    }
    if cost > budget {
        return Err(HostError::BadInput(
            crate::diag::Diagnostic::error(
                "resource_exhausted",
                format!("the request needs {} = {cost}, over the budget of {budget}", parts.join(" + ")),
            )
            .into(),
        ));
    }
    Ok(())
}

fn info(view: &View<'_>, t: &Target, ev: &Evaluation) -> Result<pb::EvaluationInfo, HostError> {
    let (_, revision) = view.scenario(t)?;
    let (params, bindings) = view.overrides(t)?;
    Ok(pb::EvaluationInfo {
        accounting: Some(convert::accounting(&ev.accounting)),
        revision,
        overrides: convert::params(&params),
        series_bindings: bindings,
    })
}

/// `[start, end)` within `bins`, or OUT_OF_RANGE.
fn window(w: Option<&pb::BinWindow>, bins: u32, field: &str) -> Result<(u32, u32), Status> {
    match w {
        None => Ok((0, bins)),
        Some(w) if w.start < w.end && w.end <= bins => Ok((w.start, w.end)),
        Some(w) => Err(Status::out_of_range(format!(
            "{field}: window [{}, {}) is outside the grid of {bins} bins or empty; use 0 ≤ start < end ≤ {bins}",
            w.start, w.end
        ))),
    }
}

fn matching(c: &Compiled, ids: &[String], pattern: &str) -> Result<Vec<u32>, HostError> {
    let mut out = std::collections::BTreeSet::new();
    for id in ids {
        match c.by_id.get(id) {
            Some(s) => {
                out.insert(*s);
            }
            None => {
                return Err(HostError::NotFound(format!("series `{id}`")));
            }
        }
    }
    if !pattern.is_empty() {
        out.extend(c.by_id.iter().filter(|(id, _)| crate::model::series::glob(pattern, id)).map(|(_, s)| *s));
    }
    Ok(out.into_iter().collect())
}

fn series_msg(ev: &Evaluation, s: u32, a: u32, b: u32, params: &BTreeMap<String, f64>) -> pb::Series {
    let c = &ev.compiled;
    pb::Series {
        id: c.series_id(s).to_string(),
        kind: artifacts::artifact_kind(c, s).to_string(),
        values: ev.series.get(&s).map_or_else(Vec::new, |v| v[a as usize..b as usize].to_vec()),
        inference: artifacts::inference_json(ev, s, params).map(|j| convert::inference(&j)),
    }
}

fn numeric_params(view: &View<'_>, t: &Target) -> Result<BTreeMap<String, f64>, HostError> {
    let (sc, _) = view.scenario(t)?;
    Ok(sc.params(view.db).iter().filter_map(|(k, c)| c.value(view.db).as_f64().map(|x| (k.clone(), x))).collect())
}

/// The state of one bin: topology roles and derived metrics, every series, touching warnings.
fn bin_state(
    ev: &Evaluation,
    warnings: &[crate::engine::warnings::Warning],
    params: &BTreeMap<String, f64>,
    t: u32,
) -> pb::BinState {
    let c = &ev.compiled;
    let at = |id: &str| ev.get(id).map(|v| v[t as usize]);
    let nodes = c
        .topology
        .nodes
        .iter()
        .map(|n| {
            let roles = n.roles.iter().filter_map(|(r, id)| Some((r.name().to_string(), at(id)?))).collect();
            let derived = n.derived.iter().filter_map(|(m, id)| Some((m.clone(), at(id)?))).collect();
            let inference = n
                .roles
                .get(&Role::Capacity)
                .and_then(|id| c.by_id.get(id))
                .and_then(|s| artifacts::inference_json(ev, *s, params))
                .map(|j| convert::inference(&j));
            pb::NodeState { id: n.id.clone(), kind: n.kind.name().to_string(), roles, derived, inference }
        })
        .collect();
    let bin = pb::Bin {
        index: t,
        start_utc: c.grid.bin_start(t as i64).map(format_minutes).unwrap_or_default(),
        end_utc: c.grid.bin_start(t as i64 + 1).map(format_minutes).unwrap_or_default(),
    };
    pb::BinState {
        bin: Some(bin),
        nodes,
        series: ev.series.iter().map(|(s, v)| (c.series_id(*s).to_string(), v[t as usize])).collect(),
        warnings: warnings.iter().filter(|w| w.bins.contains(&t)).map(convert::warning).collect(),
    }
}

/// Everything a whole-model reply needs: the plan, a full evaluation (within the budget), its
/// warnings and the numeric parameter values.
struct Full {
    c: Arc<Compiled>,
    ev: Evaluation,
    warnings: Vec<crate::engine::warnings::Warning>,
    params: BTreeMap<String, f64>,
}

fn full(v: &View<'_>, t: &Target, budget: u64) -> Result<Full, HostError> {
    let c = v.compiled_target(t)?;
    check_budget(&c, None, budget)?;
    let ev = v.evaluate_target(t, None)?;
    let warnings = v.warnings(t, &ev)?;
    let params = numeric_params(v, t)?;
    Ok(Full { c, ev, warnings, params })
}

fn stats(v: &[f64]) -> pb::Stats {
    let mut st = pb::Stats { min: f64::NAN, mean: f64::NAN, max: f64::NAN, sum: 0.0, bins: 0 };
    for x in v.iter().filter(|x| !x.is_nan()) {
        st.min = if st.bins == 0 { *x } else { st.min.min(*x) };
        st.max = if st.bins == 0 { *x } else { st.max.max(*x) };
        st.sum += x;
        st.bins += 1;
    }
    if st.bins > 0 {
        st.mean = st.sum / st.bins as f64;
    }
    st
}

#[tonic::async_trait]
impl pb::template_service_server::TemplateService for Api {
    async fn put_template(&self, req: Request<pb::PutTemplateRequest>) -> Reply<pb::PutTemplateResponse> {
        let text = req.into_inner().text;
        if text.trim().is_empty() {
            return Err(invalid_field("text", "the template text is empty"));
        }
        let (id, version, created) = self.write("text", move |h| h.put_template(&text, "request")).await?;
        Ok(Response::new(pb::PutTemplateResponse { id, version, created }))
    }

    async fn get_template(&self, req: Request<pb::GetTemplateRequest>) -> Reply<pb::Template> {
        let r = req.into_inner();
        let t = self.with_host("id", move |h| template_record(h, &r.id, &r.version)).await?;
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
        let rec = self.with_host("id", move |h| template_record(h, &id, &version)).await?;
        let root = self.data_root.to_path_buf();
        let out = tokio::task::spawn_blocking(move || -> Result<pb::InstantiateTemplateResponse, HostError> {
            // A one-shot model on its own in-memory host: instantiation changes nothing stored.
            let mut host = Host::new();
            let m = host.load_text(&rec.text, &format!("{}@{}", rec.id, rec.version), &supplied, &root)?;
            let ev = host.evaluate(&m, None)?;
            let warnings = host.warnings(&m, &ev);
            let yaml = artifacts::instantiated_yaml(&m.text, &m.params)?;
            Ok(pb::InstantiateTemplateResponse {
                model_yaml: yaml,
                instantiation_hash: crate::model::params::instantiation_hash(&m.text, &m.params),
                warnings: warnings.iter().map(convert::warning).collect(),
                grid: Some(convert::grid(&ev.compiled.grid)),
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| from_host("parameters", e))?;
        Ok(Response::new(out))
    }
}

fn template_record(h: &Host, id: &str, version: &str) -> Result<crate::store::TemplateRecord, HostError> {
    if !version.is_empty() {
        return h.template(id, version);
    }
    h.latest_template(id)?.ok_or_else(|| HostError::NotFound(format!("template `{id}`")))
}

fn template_msg(t: &crate::store::TemplateRecord, with_text: bool) -> pb::Template {
    let decls = crate::model::yaml::parse(&t.text)
        .ok()
        .and_then(|d| crate::model::doc::read_parameters(&d).ok())
        .unwrap_or_default();
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

#[tonic::async_trait]
impl pb::series_service_server::SeriesService for Api {
    async fn put_series(&self, req: Request<pb::PutSeriesRequest>) -> Reply<pb::PutSeriesResponse> {
        let r = req.into_inner();
        let start = if r.start.is_empty() {
            None
        } else {
            Some(parse_utc_minutes(&r.start).map_err(|e| invalid_field("start", e))?)
        };
        if r.bin_minutes == 0 {
            return Err(invalid_field("bin_minutes", "the bin width must be at least one minute"));
        }
        if let Some(s) = start
            && s.rem_euclid(r.bin_minutes as i64) != 0
        {
            return Err(invalid_field(
                "start",
                format!("`{}` is not aligned to {}-minute bins", r.start, r.bin_minutes),
            ));
        }
        if r.values.is_empty() {
            return Err(invalid_field("values", "a series needs at least one value"));
        }
        let provenance: serde_json::Value = if r.provenance_json.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&r.provenance_json)
                .map_err(|e| invalid_field("provenance_json", format!("not JSON: {e}")))?
        };
        let changed =
            self.write("name", move |h| h.put_series(&r.name, &r.values, start, r.bin_minutes, provenance)).await?;
        Ok(Response::new(pb::PutSeriesResponse { changed }))
    }

    async fn list_series(&self, _: Request<pb::ListSeriesRequest>) -> Reply<pb::ListSeriesResponse> {
        let list = self.with_host("", |h| h.stored_series()).await?;
        Ok(Response::new(pb::ListSeriesResponse { series: list.iter().map(stored_info).collect() }))
    }

    async fn get_stored_series(&self, req: Request<pb::GetStoredSeriesRequest>) -> Reply<pb::StoredSeries> {
        let name = req.into_inner().name;
        let (rec, values) = self.with_host("name", move |h| h.stored_series_values(&name)).await?;
        Ok(Response::new(pb::StoredSeries { info: Some(stored_info(&rec)), values }))
    }

    async fn load_gold(&self, req: Request<tonic::Streaming<pb::LoadGoldChunk>>) -> Reply<pb::LoadGoldResponse> {
        let mut stream = req.into_inner();
        let mut options: Option<pb::LoadGoldOptions> = None;
        let mut data = Vec::new();
        let limit = self.opts.max_upload_bytes;
        while let Some(chunk) = stream.message().await? {
            if options.is_none() {
                options = Some(chunk.options.unwrap_or_default());
            }
            if data.len() + chunk.data.len() > limit {
                return Err(Status::resource_exhausted(format!(
                    "the upload exceeds {limit} bytes; load a file under the server's data root with `options.path`"
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        let o = options.unwrap_or_default();
        let format = match o.format.as_str() {
            "" => None,
            "csv" => Some(crate::telemetry::Format::Csv),
            "ndjson" => Some(crate::telemetry::Format::Ndjson),
            other => return Err(invalid_field("options.format", format!("`{other}`: use csv or ndjson"))),
        };
        let bad = |f: &'static str| move |e: String| invalid_field(f, e);
        let lo = crate::telemetry::LoadOptions {
            start_minutes: (!o.start.is_empty())
                .then(|| parse_utc_minutes(&o.start))
                .transpose()
                .map_err(bad("options.start"))?,
            bins: (o.bins > 0).then_some(o.bins),
            bin_minutes: (!o.bin_size.is_empty())
                .then(|| crate::telemetry::parse_bin_size(&o.bin_size))
                .transpose()
                .map_err(bad("options.bin_size"))?,
            align_floor: o.align_floor,
            format,
        };
        if !o.extraction_ts.is_empty() {
            parse_utc_minutes(&o.extraction_ts).map_err(bad("options.extraction_ts"))?;
        }
        let root = self.data_root.to_path_buf();
        let (mut loaded, provenance) = tokio::task::spawn_blocking(move || -> Result<_, Status> {
            let (loaded, sha, source, extraction) = if o.path.is_empty() {
                let loaded = crate::telemetry::load(&mut crate::telemetry::Bytes(&data), &lo, &mut |_| {})
                    .map_err(|d| crate::server::status::invalid("data", &d))?;
                let sha = crate::model::params::hex(&<sha2::Sha256 as sha2::Digest>::digest(&data));
                (
                    loaded,
                    sha,
                    if o.source.is_empty() { "upload".to_string() } else { o.source.clone() },
                    o.extraction_ts.clone(),
                )
            } else {
                let rel =
                    crate::model::series::normalise_path(&o.path).map_err(|e| invalid_field("options.path", e))?;
                if !crate::sys::exists(&root.join(&rel)) {
                    return Err(Status::not_found(format!("{rel} is not under the server's data root")));
                }
                let path = crate::host::resolve_under_root(&rel, &root)
                    .map_err(|d| crate::server::status::invalid("options.path", &d.into()))?;
                let mut src = crate::telemetry::FileSource::new(&path);
                let loaded = crate::telemetry::load(&mut src, &lo, &mut |_| {})
                    .map_err(|d| crate::server::status::invalid("options.path", &d))?;
                let extraction = if o.extraction_ts.is_empty() {
                    crate::sys::modified_secs(&path).map(|s| format_minutes(s.div_euclid(60))).unwrap_or_default()
                } else {
                    o.extraction_ts.clone()
                };
                let source = if o.source.is_empty() {
                    rel.rsplit('/').next().unwrap_or(&rel).to_string()
                } else {
                    o.source.clone()
                };
                (loaded, src.sha.clone().unwrap_or_default(), source, extraction)
            };
            Ok((loaded, serde_json::json!({"source": source, "sha256": sha, "extraction_ts": extraction})))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        // The values move into the write (one copy of the output in memory, §12).
        let names: Vec<String> = loaded.series.iter().map(|s| s.name()).collect();
        let items: Vec<crate::host::StoredSeriesInput> = std::mem::take(&mut loaded.series)
            .into_iter()
            .map(|s| crate::host::StoredSeriesInput { name: s.name(), values: s.values, gaps: s.gaps })
            .collect();
        let w = loaded.window;
        let prov = provenance.clone();
        let changed =
            self.write("data", move |h| h.put_series_batch(&items, Some(w.start_minutes), w.bin_minutes, prov)).await?;
        let g = &w.grid_json();
        Ok(Response::new(pb::LoadGoldResponse {
            series: names,
            changed,
            grid: Some(pb::Grid {
                bins: w.bins,
                bin_size: g["binSize"].as_u64().unwrap_or(1) as u32,
                bin_unit: g["binUnit"].as_str().unwrap_or("minutes").to_string(),
                bin_minutes: w.bin_minutes,
                start: format_minutes(w.start_minutes),
            }),
            bin_size_inferred: loaded.bin_inferred,
            warnings: loaded.warnings.iter().map(convert::warning).collect(),
            rows: loaded.rows,
            rows_outside_window: loaded.rows_outside,
            provenance_json: provenance.to_string(),
        }))
    }
}

fn stored_info(r: &crate::store::SeriesRecord) -> pb::StoredSeriesInfo {
    pb::StoredSeriesInfo {
        name: r.name.clone(),
        start: r.start_minutes.map(format_minutes).unwrap_or_default(),
        bin_minutes: r.bin_minutes,
        bins: r.bins,
        sha256: r.blob.clone(),
        provenance_json: r.provenance.to_string(),
    }
}

#[tonic::async_trait]
impl pb::session_service_server::SessionService for Api {
    async fn open_session(&self, req: Request<pb::OpenSessionRequest>) -> Reply<pb::Session> {
        let r = req.into_inner();
        let params = convert::supplied_map("parameters", &r.parameters)?;
        let series = convert::bindings("series", &r.series)?;
        let s = self
            .write("parameters", move |h| {
                let version = if r.template_version.is_empty() {
                    template_record(h, &r.template_id, "")?.version
                } else {
                    r.template_version.clone()
                };
                let info = h.open_session(OpenRequest {
                    template_id: r.template_id.clone(),
                    template_version: version,
                    params,
                    series,
                    id: (!r.session_id.is_empty()).then(|| r.session_id.clone()),
                    tenant: (!r.tenant.is_empty()).then(|| r.tenant.clone()),
                })?;
                let grid = h.compiled_target(&Target { session: info.id.clone(), variant: None })?.grid;
                Ok(convert::session(&info, Some(&grid)))
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
        let params = convert::supplied_map("parameters", &r.parameters)?;
        let series = convert::bindings("series", &r.series)?;
        let v = self.write("parameters", move |h| h.create_variant(&r.session_id, &r.name, &params, &series)).await?;
        Ok(Response::new(convert::variant(&v)))
    }

    async fn update_variant(&self, req: Request<pb::UpdateVariantRequest>) -> Reply<pb::Variant> {
        let r = req.into_inner();
        let params = convert::supplied_map("parameters", &r.parameters)?;
        let series = convert::bindings("series", &r.series)?;
        let v = self.write("parameters", move |h| h.update_variant(&r.session_id, &r.name, &params, &series)).await?;
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

#[tonic::async_trait]
impl pb::query_service_server::QueryService for Api {
    async fn get_series(&self, req: Request<pb::GetSeriesRequest>) -> Reply<pb::GetSeriesResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let max_bytes = self.opts.max_message_bytes as u64;
        let out = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let ids = matching(&c, &r.ids, &r.pattern)?;
                if ids.is_empty() {
                    return Err(HostError::NotFound(format!("series matching {:?} / `{}`", r.ids, r.pattern)));
                }
                let (a, b) = window(r.window.as_ref(), c.grid.bins, "window").map_err(to_host)?;
                if ids.len() as u64 * (b - a) as u64 * 8 > max_bytes {
                    return Err(exhausted(format!("{} series × {} bins exceed the message size limit of {max_bytes} bytes; narrow the window or the pattern", ids.len(), b - a)));
                }
                check_budget(&c, Some(&ids), budget)?;
                let ev = v.evaluate_target(&t, Some(&ids))?;
                let params = numeric_params(&v, &t)?;
                Ok(pb::GetSeriesResponse {
                    grid: Some(convert::grid(&c.grid)),
                    window: Some(pb::BinWindow { start: a, end: b }),
                    series: ids.iter().map(|s| series_msg(&ev, *s, a, b, &params)).collect(),
                    info: Some(info(&v, &t, &ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_state(&self, req: Request<pb::GetStateRequest>) -> Reply<pb::GetStateResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let out = self
            .read("target", move |v| {
                let bin = resolve_bin(&*v.compiled_target(&t)?, r.at.as_ref())?;
                let f = full(&v, &t, budget)?;
                Ok(pb::GetStateResponse {
                    grid: Some(convert::grid(&f.c.grid)),
                    state: Some(bin_state(&f.ev, &f.warnings, &f.params, bin)),
                    info: Some(info(&v, &t, &f.ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_state_window(&self, req: Request<pb::GetStateWindowRequest>) -> Reply<pb::GetStateWindowResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let cap = self.opts.max_state_window;
        let out = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let (a, b) = window(r.window.as_ref(), c.grid.bins, "window").map_err(to_host)?;
                if b - a > cap {
                    return Err(exhausted(format!(
                        "a state window holds at most {cap} bins; [{a}, {b}) has {}",
                        b - a
                    )));
                }
                let f = full(&v, &t, budget)?;
                Ok(pb::GetStateWindowResponse {
                    grid: Some(convert::grid(&c.grid)),
                    states: (a..b).map(|bin| bin_state(&f.ev, &f.warnings, &f.params, bin)).collect(),
                    info: Some(info(&v, &t, &f.ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_metrics(&self, req: Request<pb::GetMetricsRequest>) -> Reply<pb::GetMetricsResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let out = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let (a, b) = window(r.window.as_ref(), c.grid.bins, "window").map_err(to_host)?;
                check_budget(&c, None, budget)?;
                let ev = v.evaluate_target(&t, None)?;
                let slice = |id: &str| ev.get(id).map(|s| &s[a as usize..b as usize]);
                let nodes = c
                    .topology
                    .nodes
                    .iter()
                    .map(|n| {
                        let roles = n
                            .roles
                            .iter()
                            .filter_map(|(r, id)| Some((r.name().to_string(), stats(slice(id)?))))
                            .collect();
                        let derived =
                            n.derived.iter().filter_map(|(m, id)| Some((m.clone(), stats(slice(id)?)))).collect();
                        let sla_share = match (n.sla_min, n.derived.get("latency_min").and_then(|id| slice(id))) {
                            (Some(sla), Some(lat)) => {
                                let defined: Vec<f64> = lat.iter().copied().filter(|x| !x.is_nan()).collect();
                                (!defined.is_empty()).then(|| {
                                    defined.iter().filter(|x| **x <= sla).count() as f64 / defined.len() as f64
                                })
                            }
                            _ => None,
                        };
                        pb::NodeMetrics {
                            id: n.id.clone(),
                            kind: n.kind.name().to_string(),
                            roles,
                            derived,
                            sla_share,
                            sla_min: n.sla_min,
                        }
                    })
                    .collect();
                Ok(pb::GetMetricsResponse { grid: Some(convert::grid(&c.grid)), nodes, info: Some(info(&v, &t, &ev)?) })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn get_graph(&self, req: Request<pb::GetGraphRequest>) -> Reply<pb::Graph> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let g = self
            .read("target", move |v| {
                let c = v.compiled_target(&t)?;
                let (_, revision) = v.scenario(&t)?;
                let nodes = c
                    .topology
                    .nodes
                    .iter()
                    .map(|n| pb::GraphNode {
                        id: n.id.clone(),
                        kind: n.kind.name().to_string(),
                        group: n.group.clone().unwrap_or_default(),
                        ui_x: n.ui.as_ref().and_then(|u| u["x"].as_f64()),
                        ui_y: n.ui.as_ref().and_then(|u| u["y"].as_f64()),
                        roles: n.roles.iter().map(|(r, id)| (r.name().to_string(), id.clone())).collect(),
                        derived: n.derived.iter().map(|(m, id)| (m.clone(), id.clone())).collect(),
                    })
                    .collect();
                let edges = c
                    .topology
                    .edges
                    .iter()
                    .map(|e| pb::GraphEdge {
                        from: e.from.clone(),
                        to: e.to.clone(),
                        weight: e.weight,
                        series: e.series.clone(),
                    })
                    .collect();
                let series = c
                    .by_id
                    .iter()
                    .map(|(id, s)| pb::SeriesInfo {
                        id: id.clone(),
                        kind: artifacts::artifact_kind(&c, *s).to_string(),
                        owner: c.series[*s as usize].owner.clone(),
                    })
                    .collect();
                Ok(pb::Graph { grid: Some(convert::grid(&c.grid)), nodes, edges, series, revision })
            })
            .await?;
        Ok(Response::new(g))
    }

    async fn get_warnings(&self, req: Request<pb::GetWarningsRequest>) -> Reply<pb::GetWarningsResponse> {
        let r = req.into_inner();
        let t = convert::target("target", r.target.as_ref())?;
        let budget = self.opts.eval_budget;
        let out = self
            .read("target", move |v| {
                let f = full(&v, &t, budget)?;
                Ok(pb::GetWarningsResponse {
                    warnings: f.warnings.iter().map(convert::warning).collect(),
                    info: Some(info(&v, &t, &f.ev)?),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn compare(&self, req: Request<pb::CompareRequest>) -> Reply<pb::CompareResponse> {
        let r = req.into_inner();
        let a = operand("a", r.a.as_ref())?;
        let b = operand("b", r.b.as_ref())?;
        // Runs are read from their directories first (no snapshot needed).
        let run_a = match &a {
            Op::Run(id) => Some(self.run_values(id).await?),
            Op::Target(_) => None,
        };
        let run_b = match &b {
            Op::Run(id) => Some(self.run_values(id).await?),
            Op::Target(_) => None,
        };
        let budget = self.opts.eval_budget;
        let out =
            self.read("a", move |v| compare_operands(&v, &a, &b, run_a.as_ref(), run_b.as_ref(), &r, budget)).await?;
        Ok(Response::new(out))
    }
}

fn to_host(s: Status) -> HostError {
    HostError::BadInput(crate::diag::Diagnostic::error("out_of_range", s.message().to_string()).into())
}

fn exhausted(msg: String) -> HostError {
    HostError::BadInput(crate::diag::Diagnostic::error("resource_exhausted", msg).into())
}

/// The bin a state request names: an index, or an aligned timestamp.
fn resolve_bin(c: &Compiled, at: Option<&pb::get_state_request::At>) -> Result<u32, HostError> {
    use pb::get_state_request::At;
    let g = &c.grid;
    let out_of_range = |m: String| HostError::BadInput(crate::diag::Diagnostic::error("out_of_range", m).into());
    match at {
        None => Err(HostError::BadInput(
            crate::diag::Diagnostic::error("missing", "give `bin` or `timestamp`").at_path("at").into(),
        )),
        Some(At::Bin(b)) if *b < g.bins => Ok(*b),
        Some(At::Bin(b)) => Err(out_of_range(format!("bin {b} is outside the grid of {} bins", g.bins))),
        Some(At::Timestamp(ts)) => {
            let Some(start) = g.start_minutes else {
                return Err(HostError::FailedPrecondition(
                    "the model has no grid.start, so timestamps cannot be resolved; query by bin index".into(),
                ));
            };
            // Seconds, so a timestamp inside a minute is still placed in its bin for the message.
            let (secs, nanos) = crate::model::grid::parse_utc_seconds(ts).map_err(|e| {
                HostError::BadInput(crate::diag::Diagnostic::error("timestamp", e).at_path("timestamp").into())
            })?;
            let bm = g.bin_minutes() as i64;
            let off_s = secs - start * 60;
            let bin = off_s.div_euclid(bm * 60);
            if bin < 0 || bin >= g.bins as i64 {
                return Err(out_of_range(format!(
                    "{ts} is outside the grid [{}, {})",
                    format_minutes(start),
                    format_minutes(start + bm * g.bins as i64)
                )));
            }
            if off_s.rem_euclid(bm * 60) != 0 || nanos != 0 {
                let s = start + bin * bm;
                return Err(HostError::BadInput(
                    crate::diag::Diagnostic::error(
                        "timestamp",
                        format!("{ts} is not aligned to a bin start: it falls in bin {bin}, which starts at {} (bins are {bm} minutes)", format_minutes(s)),
                    )
                    .at_path("timestamp")
                    .with_help(format!("use {} or {}", format_minutes(s), format_minutes(s + bm)))
                    .into(),
                ));
            }
            Ok(bin as u32)
        }
    }
}

enum Op {
    Target(Target),
    Run(String),
}

fn operand(field: &str, o: Option<&pb::Operand>) -> Result<Op, Status> {
    match o.and_then(|o| o.kind.as_ref()) {
        Some(pb::operand::Kind::Target(t)) => Ok(Op::Target(convert::target(field, Some(t))?)),
        Some(pb::operand::Kind::RunId(id)) if !id.is_empty() => Ok(Op::Run(id.clone())),
        _ => Err(invalid_field(field, "give a target {session, variant?} or a run_id")),
    }
}

type RunValues = (crate::model::grid::Grid, BTreeMap<String, Vec<f64>>);

impl Api {
    async fn run_values(&self, id: &str) -> Result<RunValues, Status> {
        let id = id.to_string();
        let rec = self.with_host("run_id", move |h| h.run(&id)).await?;
        tokio::task::spawn_blocking(move || -> Result<RunValues, Status> {
            let (grid, values) = artifacts::read_run_series(std::path::Path::new(&rec.dir))
                .map_err(|d| Status::failed_precondition(d.to_string()))?;
            let start = grid["start"].as_str().map(parse_utc_minutes).transpose().map_err(Status::internal)?;
            let unit = crate::model::grid::BinUnit::parse(grid["binUnit"].as_str().unwrap_or("minutes"))
                .unwrap_or(crate::model::grid::BinUnit::Minutes);
            let g = crate::model::grid::Grid {
                bins: grid["bins"].as_u64().unwrap_or(0) as u32,
                bin_size: grid["binSize"].as_u64().unwrap_or(1) as u32,
                bin_unit: unit,
                start_minutes: start,
            };
            Ok((g, values))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

/// Operands of a comparison must cover the same bins.
fn same_grids(ga: &crate::model::grid::Grid, gb: &crate::model::grid::Grid) -> Result<(), HostError> {
    if ga.same_window(gb) {
        return Ok(());
    }
    Err(HostError::FailedPrecondition(format!(
        "the operands have different grids ({} vs {})",
        ga.describe(),
        gb.describe()
    )))
}

fn compare_operands(
    v: &View<'_>,
    a: &Op,
    b: &Op,
    run_a: Option<&RunValues>,
    run_b: Option<&RunValues>,
    r: &pb::CompareRequest,
    budget: u64,
) -> Result<pb::CompareResponse, HostError> {
    let mut accounting = crate::engine::Accounting::default();
    let (ids_filter, pattern) = (&r.ids, &r.pattern);
    let keep = |id: &str| {
        (ids_filter.is_empty() && pattern.is_empty())
            || ids_filter.iter().any(|x| x == id)
            || (!pattern.is_empty() && crate::model::series::glob(pattern, id))
    };
    // (id, identical by construction, values in a, values in b)
    type Row = (String, bool, Option<Vec<f64>>, Option<Vec<f64>>);
    let mut rows: Vec<Row> = Vec::new();
    let grid;
    let (mut rev_a, mut rev_b) = (0, 0);
    match (a, b) {
        (Op::Target(ta), Op::Target(tb)) => {
            let ca = v.compiled_target(ta)?;
            let cb = v.compiled_target(tb)?;
            same_grids(&ca.grid, &cb.grid)?;
            // Both sides may evaluate: they share one budget.
            check_budget_all(&[(&ca, None), (&cb, None)], budget)?;
            let cmp = v.compare(ta, tb)?;
            accounting = cmp.accounting;
            grid = ca.grid;
            rev_a = v.scenario(ta)?.1;
            rev_b = v.scenario(tb)?.1;
            for d in cmp.series {
                if keep(&d.id) {
                    rows.push((d.id, d.identical_by_construction, d.a.map(|s| s.to_vec()), d.b.map(|s| s.to_vec())));
                }
            }
        }
        _ => {
            let side = |op: &Op,
                        run: Option<&RunValues>,
                        rev: &mut u64,
                        acc: &mut crate::engine::Accounting|
             -> Result<RunValues, HostError> {
                match (op, run) {
                    (Op::Run(_), Some(rv)) => Ok(rv.clone()),
                    (Op::Target(t), _) => {
                        let c = v.compiled_target(t)?;
                        check_budget(&c, None, budget)?;
                        let ev = v.evaluate_target(t, None)?;
                        acc.nodes_total += ev.accounting.nodes_total;
                        acc.nodes_evaluated += ev.accounting.nodes_evaluated;
                        acc.nodes_reused += ev.accounting.nodes_reused;
                        *rev = v.scenario(t)?.1;
                        Ok((
                            c.grid,
                            ev.compiled
                                .by_id
                                .keys()
                                .filter_map(|id| Some((id.clone(), ev.get(id)?.to_vec())))
                                .collect(),
                        ))
                    }
                    (Op::Run(id), None) => Err(HostError::NotFound(format!("run `{id}`"))),
                }
            };
            let (ga, va) = side(a, run_a, &mut rev_a, &mut accounting)?;
            let (gb, vb) = side(b, run_b, &mut rev_b, &mut accounting)?;
            same_grids(&ga, &gb)?;
            grid = ga;
            let ids: std::collections::BTreeSet<&String> = va.keys().chain(vb.keys()).collect();
            for id in ids {
                if keep(id) {
                    rows.push((id.clone(), false, va.get(id).cloned(), vb.get(id).cloned()));
                }
            }
        }
    }
    let (wa, wb) = match r.window.as_ref() {
        None => (0, grid.bins),
        Some(w) if w.start < w.end && w.end <= grid.bins => (w.start, w.end),
        Some(w) => {
            return Err(to_host(Status::out_of_range(format!(
                "window [{}, {}) is outside the grid of {} bins",
                w.start, w.end, grid.bins
            ))));
        }
    };
    let mut summary = pb::CompareSummary::default();
    let mut series = Vec::new();
    for (id, by_construction, xa, xb) in rows {
        summary.series += 1;
        let mut row =
            pb::SeriesComparison { id, not_downstream_of_any_difference: by_construction, ..Default::default() };
        if by_construction {
            row.identical = true;
            summary.identical += 1;
            summary.not_downstream += 1;
            series.push(row);
            continue;
        }
        let (Some(xa), Some(xb)) = (xa.clone(), xb.clone()) else {
            row.only_in_a = xa.is_some();
            row.only_in_b = xb.is_some();
            series.push(row);
            summary.differing += 1;
            continue;
        };
        let (xa, xb) = (&xa[wa as usize..wb as usize], &xb[wa as usize..wb as usize]);
        let (differ, max) = crate::host::diff_bins(xa, xb, wa);
        row.identical = differ.is_empty();
        row.bins_differ = differ.len() as u32;
        row.first_bins = differ.iter().take(100).copied().collect();
        row.max_abs_diff = max;
        row.total_a = xa.iter().fold(0.0, |s, x| s + x);
        row.total_b = xb.iter().fold(0.0, |s, x| s + x);
        if row.identical {
            summary.identical += 1;
        } else {
            summary.differing += 1;
            if r.include_values {
                row.a = xa.to_vec();
                row.b = xb.to_vec();
                row.diff = xa.iter().zip(xb).map(|(p, q)| q - p).collect();
                row.rel_diff =
                    xa.iter().zip(xb).map(|(p, q)| if *p == 0.0 { f64::NAN } else { (q - p) / p.abs() }).collect();
            }
        }
        series.push(row);
    }
    Ok(pb::CompareResponse {
        grid: Some(convert::grid(&grid)),
        series,
        summary: Some(summary),
        accounting: Some(convert::accounting(&accounting)),
        revision_a: rev_a,
        revision_b: rev_b,
    })
}

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
