//! Database commands against a running server (`--server URL`): the same subcommands and the
//! same output as on an embedded file, over the gRPC API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

use crate::cli::db::{
    CompareRow, DbCommand, Reply, SessionCmd, TemplateCmd, VariantCmd, emit, parse_window, render_compare,
    render_query, session_reply, variant_reply,
};
use crate::cli::{Failure, parse_params};
use crate::diag::Diagnostic;
use crate::engine::Accounting;
use crate::host::{SessionInfo, VariantInfo};
use crate::model::grid::Grid;
use crate::model::params::ParamValue;
use crate::model::template::Supplied;
use crate::server::pb;
use crate::sys;

fn status(s: tonic::Status) -> Failure {
    match s.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::ResourceExhausted => {
            let code = match s.code() {
                Code::InvalidArgument => "invalid_argument",
                Code::NotFound => "not_found",
                Code::AlreadyExists => "already_exists",
                Code::FailedPrecondition => "failed_precondition",
                Code::OutOfRange => "out_of_range",
                _ => "resource_exhausted",
            };
            Failure::BadInput(Diagnostic::error(code, s.message().to_string()).into())
        }
        _ => Failure::Runtime(anyhow::anyhow!("server: {:?}: {}", s.code(), s.message())),
    }
}

fn param_from_pb(v: &pb::ParamValue) -> Option<ParamValue> {
    use pb::param_value::Kind;
    Some(match v.kind.as_ref()? {
        Kind::Number(x) => ParamValue::Number(*x),
        Kind::Integer(x) => ParamValue::Integer(*x),
        Kind::Boolean(b) => ParamValue::Boolean(*b),
        Kind::Text(s) => ParamValue::Text(s.clone()),
        Kind::Series(s) => ParamValue::Series(s.clone()),
    })
}

/// Command-line `name=value` text travels as text: the server reads it by the declared type.
fn params_to_pb(raw: &[String]) -> Result<HashMap<String, pb::ParamValue>, Failure> {
    Ok(parse_params(raw)?
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Supplied::Text(t) => t,
                Supplied::Yaml(y) => y.as_str().unwrap_or_default().to_string(),
            };
            (k, pb::ParamValue { kind: Some(pb::param_value::Kind::Text(text)) })
        })
        .collect())
}

fn session_info(s: &pb::Session) -> SessionInfo {
    SessionInfo {
        id: s.id.clone(),
        template_id: s.template_id.clone(),
        template_version: s.template_version.clone(),
        params: s.parameters.iter().filter_map(|(k, v)| Some((k.clone(), param_from_pb(v)?))).collect(),
        inputs: s.inputs.clone(),
        overrides: s.series_bindings.clone(),
        tenant: (!s.tenant.is_empty()).then(|| s.tenant.clone()),
        revision: s.revision,
        variants: s.variants.clone(),
        created_utc: s.created_utc.clone(),
    }
}

fn variant_info(v: &pb::Variant) -> VariantInfo {
    VariantInfo {
        session: v.session_id.clone(),
        name: v.name.clone(),
        params: v.parameters.iter().filter_map(|(k, x)| Some((k.clone(), param_from_pb(x)?))).collect(),
        series: v.series_bindings.clone(),
        revision: v.revision,
        created_utc: v.created_utc.clone(),
    }
}

fn grid_from_pb(g: Option<&pb::Grid>) -> Result<Grid, Failure> {
    let g = g.ok_or_else(|| Failure::Runtime(anyhow::anyhow!("the server sent no grid")))?;
    let unit = crate::model::grid::BinUnit::parse(&g.bin_unit)
        .ok_or_else(|| Failure::Runtime(anyhow::anyhow!("unknown bin unit {}", g.bin_unit)))?;
    Grid::new(g.bins as i64, g.bin_size as i64, unit, (!g.start.is_empty()).then_some(g.start.as_str()))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))
}

fn bindings(raw: &[String], grid: &Grid) -> Result<Vec<pb::SeriesBinding>, Failure> {
    let mut out = Vec::new();
    for s in raw {
        let Some((target, file)) = s.split_once('=') else {
            return Err(Failure::BadInput(
                Diagnostic::error("bad_argument", format!("`--series {s}` must be `node=file.csv`")).into(),
            ));
        };
        let bytes = sys::read(&PathBuf::from(file))
            .map_err(|e| Failure::BadInput(Diagnostic::error("io", format!("cannot read {file}: {e}")).into()))?;
        let parsed = crate::model::series::parse_series_csv(&bytes, grid, file)?;
        out.push(pb::SeriesBinding { target: target.trim().to_string(), values: parsed.values });
    }
    Ok(out)
}

fn target(s: &str) -> Option<pb::Target> {
    let t = crate::host::Target::parse(s);
    Some(pb::Target { session: t.session, variant: t.variant.unwrap_or_default() })
}

fn accounting(a: Option<&pb::Accounting>) -> Accounting {
    a.map_or_else(Accounting::default, |a| Accounting {
        nodes_total: a.nodes_total,
        nodes_evaluated: a.nodes_evaluated,
        nodes_reused: a.nodes_reused,
        elapsed_us: a.elapsed_us,
    })
}

pub(crate) fn run(url: &str, cmd: DbCommand, json: bool) -> Result<(), Failure> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Failure::Runtime(e.into()))?;
    let reply = rt.block_on(async move {
        let ch = Channel::from_shared(url.to_string())
            .map_err(|e| Failure::BadInput(Diagnostic::error("bad_argument", format!("`--server {url}`: {e}")).into()))?
            .connect()
            .await
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot reach {url}: {e}")))?;
        exec(ch, cmd).await
    })?;
    emit(&mut std::io::stdout().lock(), &reply, json)
}

async fn exec(ch: Channel, cmd: DbCommand) -> Result<Reply, Failure> {
    use pb::query_service_client::QueryServiceClient as Q;
    use pb::session_service_client::SessionServiceClient as S;
    use pb::template_service_client::TemplateServiceClient as T;
    let mut tpl = T::new(ch.clone());
    let mut sess = S::new(ch.clone());
    let sess_channel = ch.clone();
    let mut q = Q::new(ch);
    match cmd {
        DbCommand::Template(t) => match t {
            TemplateCmd::Put { file } => {
                let text = sys::read_to_string(&file).map_err(|e| {
                    Failure::BadInput(Diagnostic::error("io", format!("cannot read {}: {e}", file.display())).into())
                })?;
                let r = tpl.put_template(pb::PutTemplateRequest { text }).await.map_err(status)?.into_inner();
                let text = format!(
                    "template {}@{} {}\n",
                    r.id,
                    r.version,
                    if r.created { "stored" } else { "already stored (identical)" }
                );
                Ok(Reply { json: json!({"id": r.id, "version": r.version, "created": r.created}), text })
            }
            TemplateCmd::List => {
                let ts = tpl.list_templates(pb::ListTemplatesRequest {}).await.map_err(status)?.into_inner().templates;
                let text = ts.iter().map(|t| format!("{}@{}  {}\n", t.id, t.version, t.title)).collect();
                Ok(Reply {
                    json: json!(
                        ts.iter()
                            .map(|t| json!({"id": t.id, "version": t.version, "title": t.title, "sha256": t.sha256}))
                            .collect::<Vec<_>>()
                    ),
                    text,
                })
            }
            TemplateCmd::Show { id, version } => {
                let t = tpl
                    .get_template(pb::GetTemplateRequest { id, version: version.unwrap_or_default() })
                    .await
                    .map_err(status)?
                    .into_inner();
                Ok(Reply {
                    json: json!({"id": t.id, "version": t.version, "text": t.text, "sha256": t.sha256}),
                    text: t.text,
                })
            }
            TemplateCmd::Instantiate { id, version, params } => {
                let r = tpl
                    .instantiate_template(pb::InstantiateTemplateRequest {
                        id,
                        version: version.unwrap_or_default(),
                        parameters: params_to_pb(&params)?,
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                Ok(Reply {
                    json: json!({"model": r.model_yaml, "instantiationHash": r.instantiation_hash}),
                    text: r.model_yaml,
                })
            }
        },
        DbCommand::Session(s) => match s {
            SessionCmd::Open { template, params, series, name, tenant, stored_telemetry } => {
                let path = Path::new(&template);
                let (id, version) = if sys::exists(path) {
                    let text = sys::read_to_string(path).map_err(|e| {
                        Failure::BadInput(Diagnostic::error("io", format!("cannot read {template}: {e}")).into())
                    })?;
                    let r = tpl.put_template(pb::PutTemplateRequest { text }).await.map_err(status)?.into_inner();
                    (r.id, r.version)
                } else {
                    match template.split_once('@') {
                        Some((i, v)) => (i.to_string(), v.to_string()),
                        None => (template.clone(), String::new()),
                    }
                };
                let mut parameters = params_to_pb(&params)?;
                let mut bound = Vec::new();
                if stored_telemetry {
                    let t = tpl
                        .get_template(pb::GetTemplateRequest { id: id.clone(), version: version.clone() })
                        .await
                        .map_err(status)?
                        .into_inner();
                    let mut series_client = pb::series_service_client::SeriesServiceClient::new(sess_channel.clone());
                    let stored: Vec<String> = series_client
                        .list_series(pb::ListSeriesRequest {})
                        .await
                        .map_err(status)?
                        .into_inner()
                        .series
                        .into_iter()
                        .map(|s| s.name)
                        .collect();
                    for (p, name) in crate::cli::db::stored_bindings(&t.text, &stored)? {
                        if let std::collections::hash_map::Entry::Vacant(e) = parameters.entry(p.clone()) {
                            bound.push(format!("{p} = series:{name}"));
                            e.insert(pb::ParamValue {
                                kind: Some(pb::param_value::Kind::Series(format!("series:{name}"))),
                            });
                        }
                    }
                }
                let series = if series.is_empty() {
                    Vec::new()
                } else {
                    let r = tpl
                        .instantiate_template(pb::InstantiateTemplateRequest {
                            id: id.clone(),
                            version: version.clone(),
                            parameters: parameters.clone(),
                        })
                        .await
                        .map_err(status)?
                        .into_inner();
                    bindings(&series, &grid_from_pb(r.grid.as_ref())?)?
                };
                let s = sess
                    .open_session(pb::OpenSessionRequest {
                        template_id: id,
                        template_version: version,
                        parameters,
                        series,
                        session_id: name.unwrap_or_default(),
                        tenant: tenant.unwrap_or_default(),
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                Ok(super::db::opened_reply(&session_info(&s), stored_telemetry.then_some(&bound[..])))
            }
            SessionCmd::List => {
                let list = sess.list_sessions(pb::ListSessionsRequest {}).await.map_err(status)?.into_inner().sessions;
                let text = list
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  {}@{}  revision {}  variants {}\n",
                            s.id,
                            s.template_id,
                            s.template_version,
                            s.revision,
                            s.variants.len()
                        )
                    })
                    .collect();
                Ok(Reply {
                    json: json!(list.iter().map(|s| session_reply(&session_info(s)).json).collect::<Vec<_>>()),
                    text,
                })
            }
            SessionCmd::Show { id } => Ok(session_reply(&session_info(
                &sess.get_session(pb::GetSessionRequest { session_id: id }).await.map_err(status)?.into_inner(),
            ))),
            SessionCmd::Set { id, params } => {
                let s = sess
                    .set_session_parameters(pb::SetSessionParametersRequest {
                        session_id: id,
                        parameters: params_to_pb(&params)?,
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                Ok(session_reply(&session_info(&s)))
            }
            SessionCmd::Close { id } => {
                sess.close_session(pb::CloseSessionRequest { session_id: id.clone() }).await.map_err(status)?;
                Ok(Reply { json: json!({"closed": id}), text: format!("closed session {id}\n") })
            }
        },
        DbCommand::Variant(v) => match v {
            VariantCmd::Create { session, name, params, series } => {
                let series = if series.is_empty() {
                    Vec::new()
                } else {
                    let s = sess
                        .get_session(pb::GetSessionRequest { session_id: session.clone() })
                        .await
                        .map_err(status)?
                        .into_inner();
                    bindings(&series, &grid_from_pb(s.grid.as_ref())?)?
                };
                let v = sess
                    .create_variant(pb::CreateVariantRequest {
                        session_id: session,
                        name,
                        parameters: params_to_pb(&params)?,
                        series,
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                let mut r = variant_reply(&variant_info(&v));
                r.text = format!("created {}", r.text);
                Ok(r)
            }
            VariantCmd::Set { target: t, params, series } => {
                let t = crate::host::Target::parse(&t);
                let series = if series.is_empty() {
                    Vec::new()
                } else {
                    let s = sess
                        .get_session(pb::GetSessionRequest { session_id: t.session.clone() })
                        .await
                        .map_err(status)?
                        .into_inner();
                    bindings(&series, &grid_from_pb(s.grid.as_ref())?)?
                };
                let v = sess
                    .update_variant(pb::UpdateVariantRequest {
                        session_id: t.session,
                        name: t.variant.unwrap_or_default(),
                        parameters: params_to_pb(&params)?,
                        series,
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                Ok(variant_reply(&variant_info(&v)))
            }
            VariantCmd::List { session } => {
                let vs = sess
                    .list_variants(pb::ListVariantsRequest { session_id: session.clone() })
                    .await
                    .map_err(status)?
                    .into_inner()
                    .variants;
                let text = vs.iter().map(|v| format!("{}/{}\n", session, v.name)).collect();
                Ok(Reply {
                    json: json!(vs.iter().map(|v| variant_reply(&variant_info(v)).json).collect::<Vec<_>>()),
                    text,
                })
            }
            VariantCmd::Show { target: t } => {
                let t = crate::host::Target::parse(&t);
                let v = sess
                    .get_variant(pb::GetVariantRequest { session_id: t.session, name: t.variant.unwrap_or_default() })
                    .await
                    .map_err(status)?
                    .into_inner();
                Ok(variant_reply(&variant_info(&v)))
            }
            VariantCmd::Delete { target: t } => {
                let tt = crate::host::Target::parse(&t);
                sess.delete_variant(pb::DeleteVariantRequest {
                    session_id: tt.session,
                    name: tt.variant.unwrap_or_default(),
                })
                .await
                .map_err(status)?;
                Ok(Reply { json: json!({"deleted": t}), text: format!("deleted variant {t}\n") })
            }
        },
        DbCommand::Query { target: t, pattern, bins } => {
            let graph = q.get_graph(pb::GetGraphRequest { target: target(&t) }).await.map_err(status)?.into_inner();
            let grid = grid_from_pb(graph.grid.as_ref())?;
            let (a, b) = parse_window(bins.as_deref(), grid.len())?;
            let r = q
                .get_series(pb::GetSeriesRequest {
                    target: target(&t),
                    pattern,
                    window: Some(pb::BinWindow { start: a as u32, end: b as u32 }),
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner();
            let info = r.info.unwrap_or_default();
            let series = r.series.into_iter().map(|s| (s.id, s.values)).collect();
            Ok(render_query(&t, info.revision, grid.to_json(), (a, b), series, &accounting(info.accounting.as_ref())))
        }
        DbCommand::Compare { a, b, all } => {
            let op = |s: &str| {
                Some(pb::Operand {
                    kind: Some(if s.starts_with("run_") {
                        pb::operand::Kind::RunId(s.to_string())
                    } else {
                        pb::operand::Kind::Target(target(s).unwrap_or_default())
                    }),
                })
            };
            let r = q
                .compare(pb::CompareRequest { a: op(&a), b: op(&b), ..Default::default() })
                .await
                .map_err(status)?
                .into_inner();
            let rows = r
                .series
                .iter()
                .map(|s| CompareRow {
                    id: s.id.clone(),
                    differs: !s.identical,
                    by_construction: s.not_downstream_of_any_difference,
                    max_abs_diff: if s.not_downstream_of_any_difference { 0.0 } else { s.max_abs_diff },
                    bins_differ: s.first_bins.clone(),
                    n_differ: s.bins_differ as usize,
                    total_a: if s.not_downstream_of_any_difference { f64::NAN } else { s.total_a },
                    total_b: if s.not_downstream_of_any_difference { f64::NAN } else { s.total_b },
                })
                .collect();
            Ok(render_compare(&a, &b, rows, &accounting(r.accounting.as_ref()), all))
        }
        DbCommand::Batch => Err(Failure::BadInput(
            Diagnostic::error("bad_argument", "batch runs against a database file, not a server").into(),
        )),
    }
}

/// `telemetry load --server`: uploads the file in chunks over LoadGold.
pub(crate) fn load_gold(
    url: &str,
    a: &crate::cli::telemetry::LoadArgs,
    _opts: &crate::telemetry::LoadOptions,
) -> Result<Reply, Failure> {
    let bytes = sys::read(&a.file).map_err(|e| {
        Failure::BadInput(Diagnostic::error("io", format!("cannot read {}: {e}", a.file.display())).into())
    })?;
    let format = match a.file.extension().and_then(|e| e.to_str()) {
        Some("ndjson") | Some("jsonl") => "ndjson",
        Some("csv") => "csv",
        _ => "",
    };
    let extraction_ts = match &a.extraction_ts {
        Some(t) => t.clone(),
        None => sys::modified_secs(&a.file)
            .map(|s| crate::model::grid::format_minutes(s.div_euclid(60)))
            .unwrap_or_default(),
    };
    let options = pb::LoadGoldOptions {
        format: format.into(),
        start: a.start.clone().unwrap_or_default(),
        bins: a.bins.unwrap_or(0),
        bin_size: a.bin_size.clone().unwrap_or_default(),
        align_floor: a.align.is_some(),
        source: a.file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        extraction_ts,
        path: String::new(),
    };
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Failure::Runtime(e.into()))?;
    let r = rt.block_on(async move {
        let mut c = pb::series_service_client::SeriesServiceClient::connect(url.to_string())
            .await
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot reach {url}: {e}")))?;
        let mut chunks: Vec<pb::LoadGoldChunk> =
            bytes.chunks(1 << 20).map(|d| pb::LoadGoldChunk { options: None, data: d.to_vec() }).collect();
        if chunks.is_empty() {
            chunks.push(pb::LoadGoldChunk::default());
        }
        chunks[0].options = Some(options);
        c.load_gold(tokio_stream::iter(chunks)).await.map_err(status).map(|r| r.into_inner())
    })?;
    let warnings: Vec<crate::engine::warnings::Warning> = r
        .warnings
        .iter()
        .map(|w| {
            let sev = if w.severity == "info" { crate::diag::Severity::Info } else { crate::diag::Severity::Warning };
            crate::engine::warnings::Warning::new(&w.code, sev, &w.node_id, w.message.clone())
                .with_bins(&w.bins, w.value)
        })
        .collect();
    let g = r.grid.clone().unwrap_or_default();
    let mut text = format!(
        "loaded {} rows: {} series, window {} + {} bins of {} min{}{}\n  → {url} (`series:<node>_<metric>`, {} changed)\n",
        r.rows,
        r.series.len(),
        g.start,
        g.bins,
        g.bin_minutes,
        if r.bin_size_inferred { ", inferred from the timestamps" } else { "" },
        if r.rows_outside_window > 0 {
            format!("; {} rows outside the window skipped", r.rows_outside_window)
        } else {
            String::new()
        },
        r.changed.len()
    );
    text.push_str(&crate::cli::output::warnings_text(&warnings));
    let json = json!({
        "grid": {"bins": g.bins, "binSize": g.bin_size, "binUnit": g.bin_unit, "binMinutes": g.bin_minutes, "start": g.start},
        "binSizeInferred": r.bin_size_inferred, "rows": r.rows, "rowsOutsideWindow": r.rows_outside_window,
        "series": r.series, "changed": r.changed,
        "warnings": warnings.iter().map(crate::artifacts::warning_json).collect::<Vec<_>>(),
        "provenance": serde_json::from_str::<serde_json::Value>(&r.provenance_json).unwrap_or_default(),
    });
    Ok(Reply { json, text })
}
