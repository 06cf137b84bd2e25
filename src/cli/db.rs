//! Database commands on an embedded file (§10, §13): `template`, `session`, `variant`, `query`,
//! `compare`, `series`, and `batch` (many commands against one open database).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::artifacts::num;
use crate::cli::output::{accounting_json, accounting_text, bins_text};
use crate::cli::{Failure, parse_params};
use crate::diag::Diagnostic;
use crate::host::{Host, HostError, OpenRequest, SessionInfo, Target, VariantInfo, data_root_for};
use crate::model::params::ParamValue;
use crate::model::series::parse_series_csv;
use crate::sys;

#[derive(clap::Subcommand, Debug)]
pub enum TemplateCmd {
    /// Validate and store a template file (identical text again is a no-op).
    Put { file: PathBuf },
    /// List stored templates.
    List,
    /// Print a stored template's text.
    Show { id: String, version: Option<String> },
    /// Print a stored template instantiated with parameter values.
    Instantiate {
        id: String,
        version: Option<String>,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum SessionCmd {
    /// Open a session on a template file (stored first) or a stored `id[@version]`.
    Open {
        template: String,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Bind a const node to a CSV series: `node=file.csv` (repeatable).
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
    List,
    Show {
        id: String,
    },
    /// Change session parameters in place (variants that do not override them follow).
    Set {
        id: String,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    Close {
        id: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum VariantCmd {
    /// Create a named variant of a session with parameter and series overrides.
    Create {
        session: String,
        name: String,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long = "series", value_name = "NODE=FILE")]
        series: Vec<String>,
    },
    /// Add or change overrides of a variant.
    Set {
        target: String,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long = "series", value_name = "NODE=FILE")]
        series: Vec<String>,
    },
    List {
        session: String,
    },
    Show {
        target: String,
    },
    Delete {
        target: String,
    },
}

/// A command that needs the database file.
#[derive(Debug)]
pub(crate) enum DbCommand {
    Template(TemplateCmd),
    Session(SessionCmd),
    Variant(VariantCmd),
    Query { target: String, pattern: String, bins: Option<String> },
    Compare { a: String, b: String, all: bool },
    Batch,
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Failure {
        match e {
            HostError::BadInput(d) => Failure::BadInput(d),
            HostError::NotFound(w) => {
                Failure::BadInput(Diagnostic::error("not_found", format!("{w} not found")).into())
            }
            HostError::AlreadyExists(w) => {
                Failure::BadInput(Diagnostic::error("already_exists", format!("{w} already exists")).into())
            }
            HostError::FailedPrecondition(w) => Failure::BadInput(Diagnostic::error("failed_precondition", w).into()),
            HostError::Store(e) => Failure::Runtime(anyhow::anyhow!("{e}")),
        }
    }
}

pub(crate) fn open_host(db: &Path, data_root: Option<&Path>) -> Result<Host, Failure> {
    let root = match data_root {
        Some(r) => r.to_path_buf(),
        None => sys::current_dir().map_err(|e| Failure::Runtime(e.into()))?,
    };
    let role = format!("`flowtime` (cli, pid {})", sys::process_id());
    Ok(Host::open(db, &role, &root)?)
}

pub(crate) fn run(db: &Path, data_root: Option<&Path>, cmd: DbCommand, json: bool) -> Result<(), Failure> {
    let mut host = open_host(db, data_root)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        DbCommand::Batch => batch(&mut host, data_root, json),
        cmd => {
            let v = exec(&mut host, data_root, cmd)?;
            emit(&mut out, &v, json)
        }
    }
}

/// One command's result: JSON, plus its human rendering.
pub(crate) struct Reply {
    pub(crate) json: Value,
    pub(crate) text: String,
}

pub(crate) fn emit(out: &mut impl Write, r: &Reply, json: bool) -> Result<(), Failure> {
    let res = if json {
        writeln!(out, "{}", serde_json::to_string(&r.json).unwrap_or_default())
    } else {
        write!(out, "{}", r.text)
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(e.into())),
    }
}

fn read_series_args(
    host: &Host,
    raw: &[String],
    grid: &crate::model::grid::Grid,
) -> Result<BTreeMap<String, Vec<f64>>, Failure> {
    let mut out = BTreeMap::new();
    for s in raw {
        let Some((node, file)) = s.split_once('=') else {
            return Err(Failure::BadInput(
                Diagnostic::error("bad_argument", format!("`--series {s}` must be `node=file.csv`")).into(),
            ));
        };
        let path = PathBuf::from(file);
        let path = if path.is_absolute() { path } else { host.data_root().join(path) };
        let bytes = sys::read(&path).map_err(|e| {
            Failure::BadInput(Diagnostic::error("io", format!("cannot read {}: {e}", path.display())).into())
        })?;
        let parsed = parse_series_csv(&bytes, grid, file)?;
        out.insert(node.trim().to_string(), parsed.values);
    }
    Ok(out)
}

fn param_json(params: &BTreeMap<String, ParamValue>) -> Value {
    Value::Object(params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// The reply to `session open`: the session, and with `--stored-telemetry` what was bound.
pub(crate) fn opened_reply(s: &SessionInfo, bound: Option<&[String]>) -> Reply {
    let mut r = session_reply(s);
    r.text = format!("opened {}", r.text);
    if let Some(bound) = bound {
        let what = if bound.is_empty() { "nothing (no matching stored series)".to_string() } else { bound.join(", ") };
        r.text.push_str(&format!("  bound to stored telemetry: {what}\n"));
    }
    r
}

pub(crate) fn session_reply(s: &SessionInfo) -> Reply {
    let json = json!({
        "id": s.id, "template": {"id": s.template_id, "version": s.template_version},
        "parameters": param_json(&s.params), "inputs": s.inputs, "series": s.overrides,
        "tenant": s.tenant, "revision": s.revision, "variants": s.variants, "createdUtc": s.created_utc,
    });
    let mut text = format!("session {} on {}@{} (revision {})\n", s.id, s.template_id, s.template_version, s.revision);
    for (k, v) in &s.params {
        text.push_str(&format!("  {k} = {v}\n"));
    }
    if !s.variants.is_empty() {
        text.push_str(&format!("  variants: {}\n", s.variants.join(", ")));
    }
    Reply { json, text }
}

pub(crate) fn variant_reply(v: &VariantInfo) -> Reply {
    let json = json!({"session": v.session, "name": v.name, "parameters": param_json(&v.params), "series": v.series, "revision": v.revision, "createdUtc": v.created_utc});
    let mut text = format!("variant {}/{}\n", v.session, v.name);
    for (k, x) in &v.params {
        text.push_str(&format!("  {k} = {x}\n"));
    }
    for s in &v.series {
        text.push_str(&format!("  series {s} overridden\n"));
    }
    Reply { json, text }
}

/// `series` parameters whose default is `file:…/<stem>.csv` with a stored series `<stem>`:
/// (parameter, stored name).
pub(crate) fn stored_bindings(template_text: &str, stored: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let doc = crate::model::yaml::parse(template_text).map_err(|d| Failure::BadInput(d.into()))?;
    let decls = crate::model::doc::read_parameters(&doc)?;
    Ok(decls
        .iter()
        .filter_map(|d| {
            let Some(ParamValue::Series(default)) = &d.default else { return None };
            let rel = default.strip_prefix("file:")?;
            let stem = rel.rsplit('/').next()?.strip_suffix(".csv")?;
            stored.iter().any(|s| s == stem).then(|| (d.name.clone(), stem.to_string()))
        })
        .collect())
}

/// `id[@version]`; without a version, the only stored one (or the newest by text order).
fn template_ref(host: &Host, s: &str) -> Result<(String, String), Failure> {
    if let Some((id, v)) = s.split_once('@') {
        return Ok((id.to_string(), v.to_string()));
    }
    match host.latest_template(s)? {
        Some(t) => Ok((s.to_string(), t.version)),
        None => Err(Failure::BadInput(
            Diagnostic::error("not_found", format!("template `{s}` is not stored"))
                .with_help("store it with `flowtime template put <file>` or pass the file path")
                .into(),
        )),
    }
}

pub(crate) fn exec(host: &mut Host, data_root: Option<&Path>, cmd: DbCommand) -> Result<Reply, Failure> {
    match cmd {
        DbCommand::Template(t) => match t {
            TemplateCmd::Put { file } => {
                let text = sys::read_to_string(&file).map_err(|e| {
                    Failure::BadInput(Diagnostic::error("io", format!("cannot read {}: {e}", file.display())).into())
                })?;
                let (id, version, created) = host.put_template(&text, &file.display().to_string())?;
                let text = format!(
                    "template {id}@{version} {}\n",
                    if created { "stored" } else { "already stored (identical)" }
                );
                Ok(Reply { json: json!({"id": id, "version": version, "created": created}), text })
            }
            TemplateCmd::List => {
                let ts = host.templates()?;
                let text = ts
                    .iter()
                    .map(|t| format!("{}@{}  {}\n", t.id, t.version, t.title.clone().unwrap_or_default()))
                    .collect();
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
                let (id, v) = match version {
                    Some(v) => (id, v),
                    None => template_ref(host, &id)?,
                };
                let t = host.template(&id, &v)?;
                Ok(Reply {
                    json: json!({"id": t.id, "version": t.version, "text": t.text, "sha256": t.sha256}),
                    text: t.text,
                })
            }
            TemplateCmd::Instantiate { id, version, params } => {
                let (id, v) = match version {
                    Some(v) => (id, v),
                    None => template_ref(host, &id)?,
                };
                let t = host.template(&id, &v)?;
                let supplied = parse_params(&params)?;
                let doc = crate::model::yaml::parse(&t.text).map_err(|d| Failure::BadInput(d.into()))?;
                let decls = crate::model::doc::read_parameters(&doc)?;
                let values = crate::model::template::bind(&decls, &supplied)?;
                let yaml = crate::artifacts::instantiated_yaml(&t.text, &values)?;
                let hash = crate::model::params::instantiation_hash(&t.text, &values);
                Ok(Reply { json: json!({"model": yaml, "instantiationHash": hash}), text: yaml })
            }
        },
        DbCommand::Session(s) => match s {
            SessionCmd::Open { template, params, series, name, tenant, stored_telemetry } => {
                let path = PathBuf::from(&template);
                let (id, version) = if sys::exists(&path) {
                    if data_root.is_none() {
                        host.set_data_root(&data_root_for(&path, None));
                    }
                    let text = sys::read_to_string(&path).map_err(|e| {
                        Failure::BadInput(Diagnostic::error("io", format!("cannot read {template}: {e}")).into())
                    })?;
                    let (id, v, _) = host.put_template(&text, &template)?;
                    (id, v)
                } else {
                    template_ref(host, &template)?
                };
                let mut supplied = parse_params(&params)?;
                let mut bound = Vec::new();
                if stored_telemetry {
                    let text = host.template(&id, &version)?.text;
                    let stored: Vec<String> = host.stored_series()?.into_iter().map(|r| r.name).collect();
                    for (p, name) in stored_bindings(&text, &stored)? {
                        if let std::collections::btree_map::Entry::Vacant(e) = supplied.entry(p.clone()) {
                            bound.push(format!("{p} = series:{name}"));
                            e.insert(crate::model::template::Supplied::Text(format!("series:{name}")));
                        }
                    }
                }
                let grid = host.template_grid(&id, &version, &supplied)?;
                let series = read_series_args(host, &series, &grid)?;
                let info = host.open_session(OpenRequest {
                    template_id: id,
                    template_version: version,
                    params: supplied,
                    series,
                    id: name,
                    tenant,
                })?;
                Ok(opened_reply(&info, stored_telemetry.then_some(&bound[..])))
            }
            SessionCmd::List => {
                let mut json_list = Vec::new();
                let mut text = String::new();
                for id in host.session_ids() {
                    let s = host.session_info(&id)?;
                    text.push_str(&format!(
                        "{}  {}@{}  revision {}  variants {}\n",
                        s.id,
                        s.template_id,
                        s.template_version,
                        s.revision,
                        s.variants.len()
                    ));
                    json_list.push(session_reply(&s).json);
                }
                Ok(Reply { json: Value::Array(json_list), text })
            }
            SessionCmd::Show { id } => Ok(session_reply(&host.session_info(&id)?)),
            SessionCmd::Set { id, params } => {
                let supplied = parse_params(&params)?;
                host.set_session_params(&id, &supplied)?;
                Ok(session_reply(&host.session_info(&id)?))
            }
            SessionCmd::Close { id } => {
                host.close_session(&id)?;
                Ok(Reply { json: json!({"closed": id}), text: format!("closed session {id}\n") })
            }
        },
        DbCommand::Variant(v) => match v {
            VariantCmd::Create { session, name, params, series } => {
                let supplied = parse_params(&params)?;
                let grid = host.compiled_target(&Target { session: session.clone(), variant: None })?.grid;
                let series = read_series_args(host, &series, &grid)?;
                let info = host.create_variant(&session, &name, &supplied, &series)?;
                let mut r = variant_reply(&info);
                r.text = format!("created {}", r.text);
                Ok(r)
            }
            VariantCmd::Set { target, params, series } => {
                let t = Target::parse(&target);
                let Some(name) = t.variant.clone() else {
                    return Err(Failure::BadInput(
                        Diagnostic::error("bad_argument", format!("`{target}` must be session/variant")).into(),
                    ));
                };
                let supplied = parse_params(&params)?;
                let grid = host.compiled_target(&t)?.grid;
                let series = read_series_args(host, &series, &grid)?;
                Ok(variant_reply(&host.update_variant(&t.session, &name, &supplied, &series)?))
            }
            VariantCmd::List { session } => {
                let s = host.session_info(&session)?;
                let mut text = String::new();
                let mut list = Vec::new();
                for n in &s.variants {
                    let v = host.variant_info(&session, n)?;
                    text.push_str(&format!(
                        "{}/{}  {}\n",
                        session,
                        n,
                        v.params
                            .iter()
                            .map(|(k, x)| format!("{k}={x}"))
                            .chain(v.series.iter().map(|s| format!("series:{s}")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ));
                    list.push(variant_reply(&v).json);
                }
                Ok(Reply { json: Value::Array(list), text })
            }
            VariantCmd::Show { target } | VariantCmd::Delete { target } if !target.contains('/') => {
                Err(Failure::BadInput(
                    Diagnostic::error("bad_argument", format!("`{target}` must be session/variant")).into(),
                ))
            }
            VariantCmd::Show { target } => {
                let t = Target::parse(&target);
                Ok(variant_reply(&host.variant_info(&t.session, t.variant.as_deref().unwrap_or(""))?))
            }
            VariantCmd::Delete { target } => {
                let t = Target::parse(&target);
                host.delete_variant(&t.session, t.variant.as_deref().unwrap_or(""))?;
                Ok(Reply { json: json!({"deleted": target}), text: format!("deleted variant {target}\n") })
            }
        },
        DbCommand::Query { target, pattern, bins } => query(host, &target, &pattern, bins.as_deref()),
        DbCommand::Compare { a, b, all } => compare(host, &a, &b, all),
        DbCommand::Batch => Err(Failure::BadInput(Diagnostic::error("bad_argument", "batch cannot be nested").into())),
    }
}

/// `a..b` (half-open) within `bins`.
pub(crate) fn parse_window(s: Option<&str>, bins: usize) -> Result<(usize, usize), Failure> {
    let Some(s) = s else { return Ok((0, bins)) };
    let bad = |m: String| {
        Failure::BadInput(
            Diagnostic::error("bins_window", m).with_help(format!("use a..b with 0 ≤ a < b ≤ {bins}")).into(),
        )
    };
    let (a, b) = s.split_once("..").ok_or_else(|| bad(format!("`{s}` is not a window a..b")))?;
    let a: usize =
        if a.is_empty() { 0 } else { a.trim().parse().map_err(|_| bad(format!("`{a}` is not a bin index")))? };
    let b: usize =
        if b.is_empty() { bins } else { b.trim().parse().map_err(|_| bad(format!("`{b}` is not a bin index")))? };
    if a >= b || b > bins {
        return Err(bad(format!("window {a}..{b} is outside the grid of {bins} bins")));
    }
    Ok((a, b))
}

fn query(host: &Host, target: &str, pattern: &str, bins: Option<&str>) -> Result<Reply, Failure> {
    let t = Target::parse(target);
    let c = host.compiled_target(&t)?;
    let ids: Vec<u32> =
        c.by_id.iter().filter(|(id, _)| crate::model::series::glob(pattern, id)).map(|(_, s)| *s).collect();
    if ids.is_empty() {
        return Err(Failure::BadInput(
            Diagnostic::error("not_found", format!("no series of {target} matches `{pattern}`")).into(),
        ));
    }
    let (a, b) = parse_window(bins, c.grid.len())?;
    let ev = host.evaluate_target(&t, Some(&ids))?;
    let (_, revision) = host.scenario(&t)?;
    let series = ids.iter().map(|s| (c.series_id(*s).to_string(), ev.series[s][a..b].to_vec())).collect();
    Ok(render_query(target, revision, c.grid.to_json(), (a, b), series, &ev.accounting))
}

/// The reply of `query`, local or remote.
pub(crate) fn render_query(
    target: &str,
    revision: u64,
    grid: Value,
    (a, b): (usize, usize),
    series: Vec<(String, Vec<f64>)>,
    accounting: &crate::engine::Accounting,
) -> Reply {
    let mut out = Vec::new();
    let mut text = format!("{target} (revision {revision}), bins {a}..{b}\n");
    for (id, v) in &series {
        out.push(json!({"id": id, "values": v.iter().map(|x| num(*x)).collect::<Vec<_>>()}));
        let shown: Vec<String> = v.iter().take(12).map(|x| crate::artifacts::fmt_value(*x)).collect();
        text.push_str(&format!(
            "{id}: {}{}\n",
            shown.join(", "),
            if v.len() > 12 { format!(", … ({} values)", v.len()) } else { String::new() }
        ));
    }
    text.push_str(&accounting_text(accounting));
    text.push('\n');
    let json = json!({"target": target, "revision": revision, "grid": grid, "window": [a, b], "series": out, "accounting": accounting_json(accounting)});
    Reply { json, text }
}

/// One compared series, local or remote.
pub(crate) struct CompareRow {
    pub(crate) id: String,
    pub(crate) differs: bool,
    pub(crate) by_construction: bool,
    pub(crate) max_abs_diff: f64,
    pub(crate) bins_differ: Vec<u32>,
    pub(crate) n_differ: usize,
    pub(crate) total_a: f64,
    pub(crate) total_b: f64,
}

fn compare(host: &Host, a: &str, b: &str, all: bool) -> Result<Reply, Failure> {
    let cmp = host.compare(&Target::parse(a), &Target::parse(b))?;
    let rows = cmp
        .series
        .iter()
        .map(|d| CompareRow {
            id: d.id.clone(),
            differs: !d.bins_differ.is_empty() || d.a.is_none() != d.b.is_none(),
            by_construction: d.identical_by_construction,
            max_abs_diff: d.max_abs_diff,
            bins_differ: d.bins_differ.iter().take(100).copied().collect(),
            n_differ: d.bins_differ.len(),
            total_a: d.total_a,
            total_b: d.total_b,
        })
        .collect();
    Ok(render_compare(a, b, rows, &cmp.accounting, all))
}

/// The reply of `compare`, local or remote.
pub(crate) fn render_compare(
    a: &str,
    b: &str,
    rows: Vec<CompareRow>,
    accounting: &crate::engine::Accounting,
    all: bool,
) -> Reply {
    let mut out = Vec::new();
    let mut text = format!(
        "compare {a} → {b}\n{:<36} {:>14} {:>10} {:>16} {:>16}\n",
        "series", "max |b − a|", "bins", "total a", "total b"
    );
    let mut identical = 0;
    for d in &rows {
        out.push(json!({
            "id": d.id, "identical": !d.differs, "notDownstreamOfAnyDifference": d.by_construction,
            "maxAbsDiff": num(d.max_abs_diff), "binsDiffer": d.n_differ, "firstBins": d.bins_differ,
            "totalA": num(d.total_a), "totalB": num(d.total_b),
        }));
        if !d.differs {
            identical += 1;
            if !all {
                continue;
            }
        }
        let how = if d.by_construction {
            "identical (not downstream of any difference)".to_string()
        } else if d.differs {
            bins_text(&d.bins_differ)
        } else {
            "identical".into()
        };
        text.push_str(&format!(
            "{:<36} {:>14} {:>10} {:>16} {:>16}  {how}\n",
            d.id,
            short(d.max_abs_diff),
            d.n_differ,
            short(d.total_a),
            short(d.total_b)
        ));
    }
    text.push_str(&format!("{identical} of {} series identical\n{}\n", rows.len(), accounting_text(accounting)));
    Reply { json: json!({"a": a, "b": b, "series": out, "accounting": accounting_json(accounting)}), text }
}

fn short(v: f64) -> String {
    if v.is_nan() {
        return "—".into();
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Runs commands from stdin (one per line, shell-like words), against one open database.
/// Prints `ok <line>` or `error <line>: <message>` per command after it is committed.
fn batch(host: &mut Host, data_root: Option<&Path>, json: bool) -> Result<(), Failure> {
    use clap::Parser;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    let mut n = 0u64;
    loop {
        line.clear();
        match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(Failure::Runtime(e.into())),
        }
        n += 1;
        let words = split_words(line.trim());
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let argv = std::iter::once("flowtime".to_string()).chain(words);
        let result = match crate::cli::Cli::try_parse_from(argv) {
            Ok(cli) => match cli.command.into_db() {
                Some(cmd) => exec(host, data_root, cmd),
                None => Err(Failure::BadInput(
                    Diagnostic::error("bad_argument", "only database commands can run in a batch").into(),
                )),
            },
            Err(e) => Err(Failure::BadInput(
                Diagnostic::error("bad_argument", e.to_string().lines().next().unwrap_or("").to_string()).into(),
            )),
        };
        let res = match result {
            Ok(r) if json => writeln!(out, "{}", json!({"line": n, "ok": true, "result": r.json})),
            Ok(_) => writeln!(out, "ok {n}"),
            Err(Failure::BadInput(d)) if json => writeln!(out, "{}", json!({"line": n, "ok": false, "errors": d.0})),
            Err(Failure::BadInput(d)) => writeln!(out, "error {n}: {}", d.to_string().replace('\n', "; ")),
            Err(Failure::Runtime(e)) => writeln!(out, "error {n}: {e:#}"),
        };
        let _ = out.flush();
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(Failure::Runtime(e.into()));
        }
    }
}

/// Splits a command line into words: whitespace-separated, with '…' and "…" quoting.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(split_words("variant create s1 'a b' -p x=1"), vec!["variant", "create", "s1", "a b", "-p", "x=1"]);
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("a \"\" b"), vec!["a", "", "b"]);
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window(Some("2..5"), 10).ok(), Some((2, 5)));
        assert_eq!(parse_window(Some("..5"), 10).ok(), Some((0, 5)));
        assert_eq!(parse_window(None, 10).ok(), Some((0, 10)));
        assert!(parse_window(Some("5..11"), 10).is_err());
        assert!(parse_window(Some("5..5"), 10).is_err());
    }
}
