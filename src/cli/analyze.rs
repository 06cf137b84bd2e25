//! `flowtime analyze sweep|sensitivity|goal-seek|optimize|monte-carlo|fit`: argument parsing,
//! one call of the AnalysisService through [`Client`], a progress bar on a terminal, a table or
//! `--json`. No analysis logic lives here.
//!
//! The target is a session or variant (in process on `--db`, or on `--server`), or a model file:
//! then a throwaway in-memory database holds the document as a template and a session opened
//! with the `-p` values, and the same RPC runs on it in process (one implementation).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::artifacts::num;
use crate::cli::output::{accounting, accounting_json, accounting_text, emit, short, values_json};
use crate::cli::template::read_document;
use crate::cli::{Api, Failure, Reply, api, parse_params};
use crate::client::{Client, InProcess};
use crate::diag::Diagnostic;
use crate::host::{Host, OpenRequest, SharedHost, data_root_for};
use crate::server::{ServerOptions, pb};
use crate::sys;

/// What every analysis takes.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// A model or template file (analysed in a throwaway in-memory database), or a session or
    /// `session/variant` of the database (`--db`, or `--server`).
    #[arg(value_name = "MODEL-OR-TARGET")]
    pub subject: String,
    /// A parameter value for every point, `name=value` (repeatable).
    #[arg(short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Keep every point as variant `PREFIX-<i>` of the target's session.
    #[arg(long, value_name = "PREFIX")]
    pub keep: Option<String>,
    /// Workers for independent points (default: every core). Results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
}

#[derive(clap::Subcommand, Debug)]
pub enum AnalyzeCmd {
    /// Metrics (and series) at every point of a grid of parameter values.
    Sweep {
        #[command(flatten)]
        common: Common,
        /// `NAME=V1,V2,…` or `NAME=LO..HI/STEPS` (STEPS + 1 values); several = the grid.
        #[arg(long, value_name = "NAME=VALUES", required = true)]
        vary: Vec<String>,
        /// A metric such as `max(orders_backlog)` or `p95(latency_min[96..144])` (repeatable).
        #[arg(long)]
        metric: Vec<String>,
        /// A series to return with every point (repeatable; JSON only).
        #[arg(long)]
        series: Vec<String>,
    },
    /// Gradients and elasticities of a metric at the target's values, ranked.
    Sensitivity {
        #[command(flatten)]
        common: Common,
        /// A parameter (repeatable).
        #[arg(long = "param", value_name = "NAME", required = true)]
        names: Vec<String>,
        #[arg(long)]
        metric: String,
        /// Step as a fraction of the value.
        #[arg(long, default_value_t = 0.01)]
        relative_step: f64,
        /// Step where the value is 0.
        #[arg(long, default_value_t = 0.01)]
        absolute_step: f64,
    },
    /// The value of one parameter at which a metric reaches a target.
    GoalSeek {
        #[command(flatten)]
        common: Common,
        #[arg(long = "param", value_name = "NAME")]
        name: String,
        #[arg(long, allow_hyphen_values = true)]
        lo: f64,
        #[arg(long, allow_hyphen_values = true)]
        hi: f64,
        #[arg(long)]
        metric: String,
        #[arg(long, allow_hyphen_values = true)]
        target: f64,
        /// |metric − target| that counts as reached (default 1e-6 × max(1, |target|)).
        #[arg(long)]
        tolerance: Option<f64>,
        #[arg(long, default_value_t = 100)]
        max_iterations: u32,
    },
    /// Minimise or maximise a metric over bounded parameters, subject to bounds on others.
    Optimize {
        #[command(flatten)]
        common: Common,
        /// `NAME=LO..HI` (repeatable).
        #[arg(long = "param", value_name = "NAME=LO..HI", required = true)]
        bounds: Vec<String>,
        /// The metric (or parameter) to minimise.
        #[arg(long, visible_alias = "minimise", value_name = "METRIC", conflicts_with = "maximize")]
        minimize: Option<String>,
        /// The metric (or parameter) to maximise.
        #[arg(long, visible_alias = "maximise", value_name = "METRIC")]
        maximize: Option<String>,
        /// `METRIC <= X` or `METRIC >= X` (repeatable).
        #[arg(long, value_name = "CONSTRAINT")]
        subject_to: Vec<String>,
        #[arg(long, default_value_t = 500)]
        max_iterations: u32,
        #[arg(long)]
        tolerance: Option<f64>,
    },
    /// Bands and metric distributions over random samples.
    MonteCarlo {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        samples: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A series to band (repeatable).
        #[arg(long, num_args = 1..)]
        series: Vec<String>,
        #[arg(long)]
        metric: Vec<String>,
        /// `NAME=uniform(LO,HI)`, `normal(MEAN,SD)`, `lognormal(MU,SIGMA)`,
        /// `triangular(MIN,MODE,MAX)` or `discrete(V:P,V:P,…)` (repeatable).
        #[arg(long, value_name = "NAME=DIST")]
        dist: Vec<String>,
    },
    /// Parameters that make a modelled series match an observed one.
    Fit {
        #[command(flatten)]
        common: Common,
        /// `NAME=LO..HI` (repeatable).
        #[arg(long = "param", value_name = "NAME=LO..HI", required = true)]
        bounds: Vec<String>,
        #[arg(long)]
        modelled: String,
        /// A series id of the target, `series:NAME`, `file:PATH.csv`, or `@PATH.csv` (a local CSV,
        /// uploaded).
        #[arg(long, value_name = "REF")]
        observed: String,
        /// Half-open bin window `a..b`.
        #[arg(long)]
        bins: Option<String>,
        #[arg(long, default_value = "sse", value_parser = ["sse", "mae", "mape"])]
        loss: String,
        #[arg(long, default_value_t = 500)]
        max_iterations: u32,
        #[arg(long)]
        tolerance: Option<f64>,
    },
}

fn bad(code: &str, message: impl Into<String>, help: &str) -> Failure {
    Failure::BadInput(Diagnostic::error(code, message).with_help(help).into())
}

/// `NAME=LO..HI`.
fn bound(s: &str) -> Result<pb::ParamBound, Failure> {
    let parsed = s.split_once('=').and_then(|(n, r)| {
        let (lo, hi) = r.split_once("..")?;
        Some((n.trim(), lo.trim().parse::<f64>().ok()?, hi.trim().parse::<f64>().ok()?))
    });
    match parsed {
        Some((name, lo, hi)) if !name.is_empty() => Ok(pb::ParamBound { name: name.to_string(), lo, hi }),
        _ => Err(bad(
            "bad_argument",
            format!("`--param {s}` must be `NAME=LO..HI`"),
            "e.g. --param order_capacity=50..200",
        )),
    }
}

/// `NAME=V1,V2,…` or `NAME=LO..HI/STEPS`.
fn vary(s: &str) -> Result<pb::Vary, Failure> {
    let err = || {
        bad(
            "bad_argument",
            format!("`--vary {s}` must be `NAME=V1,V2,…` or `NAME=LO..HI/STEPS`"),
            "e.g. --vary capacity=100..200/10",
        )
    };
    let (name, rest) = s.split_once('=').ok_or_else(err)?;
    let name = name.trim().to_string();
    if let Some((range, steps)) = rest.split_once('/') {
        let (lo, hi) = range.split_once("..").ok_or_else(err)?;
        let (lo, hi, steps) = (
            lo.trim().parse().map_err(|_| err())?,
            hi.trim().parse().map_err(|_| err())?,
            steps.trim().parse().map_err(|_| err())?,
        );
        return Ok(pb::Vary { name, values: Vec::new(), range: Some(pb::ValueRange { lo, hi, steps }) });
    }
    let values = rest.split(',').map(|v| v.trim().parse::<f64>()).collect::<Result<Vec<_>, _>>().map_err(|_| err())?;
    Ok(pb::Vary { name, values, range: None })
}

/// `METRIC <= X` / `METRIC >= X`.
fn constraint(s: &str) -> Result<pb::MetricConstraint, Failure> {
    for op in ["<=", ">="] {
        if let Some((m, b)) = s.rsplit_once(op)
            && let Ok(bound) = b.trim().parse::<f64>()
        {
            return Ok(pb::MetricConstraint { metric: m.trim().to_string(), op: op.to_string(), bound });
        }
    }
    Err(bad(
        "bad_argument",
        format!("`--subject-to {s}` must be `METRIC <= X` or `METRIC >= X`"),
        "e.g. --subject-to 'p95(order_latency_min) <= 10'",
    ))
}

/// `NAME=kind(args)`.
fn distribution(s: &str) -> Result<pb::ParamDistribution, Failure> {
    use pb::param_distribution::Kind;
    let err = |why: &str| {
        bad(
            "bad_argument",
            format!("`--dist {s}`: {why}"),
            "write NAME=uniform(LO,HI), normal(MEAN,SD), lognormal(MU,SIGMA), triangular(MIN,MODE,MAX) or discrete(V:P,V:P,…)",
        )
    };
    let (name, spec) = s.split_once('=').ok_or_else(|| err("missing `=`"))?;
    let (kind, args) =
        spec.trim().strip_suffix(')').and_then(|x| x.split_once('(')).ok_or_else(|| err("expected kind(args)"))?;
    let nums = |n: usize| -> Result<Vec<f64>, Failure> {
        let v = args
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| err("arguments must be numbers"))?;
        if v.len() != n {
            return Err(err(&format!("{kind} takes {n} numbers")));
        }
        Ok(v)
    };
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "uniform" => nums(2).map(|v| Kind::Uniform(pb::Uniform { lo: v[0], hi: v[1] }))?,
        "normal" => nums(2).map(|v| Kind::Normal(pb::Normal { mean: v[0], sd: v[1] }))?,
        "lognormal" => nums(2).map(|v| Kind::Lognormal(pb::LogNormal { mu: v[0], sigma: v[1] }))?,
        "triangular" => nums(3).map(|v| Kind::Triangular(pb::Triangular { min: v[0], mode: v[1], max: v[2] }))?,
        "discrete" => {
            let mut d = pb::Discrete::default();
            for pair in args.split(',') {
                let (v, p) = pair.split_once(':').ok_or_else(|| err("discrete takes V:P pairs"))?;
                d.values.push(v.trim().parse().map_err(|_| err("values must be numbers"))?);
                d.weights.push(p.trim().parse().map_err(|_| err("probabilities must be numbers"))?);
            }
            Kind::Discrete(d)
        }
        other => return Err(err(&format!("unknown distribution `{other}`"))),
    };
    Ok(pb::ParamDistribution { name: name.trim().to_string(), kind: Some(kind) })
}

fn window(s: &str) -> Result<pb::BinWindow, Failure> {
    let parsed = s.split_once("..").and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((start, end)) => Ok(pb::BinWindow { start, end }),
        None => Err(bad("bad_argument", format!("`--bins {s}` must be `a..b`"), "e.g. --bins 96..144")),
    }
}

/// Where the analysis runs: the API (in process on `--db`, or a server), or a throwaway
/// database in this process for a model file; and the request's options for the target.
struct Connection {
    client: Client,
    /// Keep the in-process router (and the database behind it) alive.
    _api: Option<Api>,
    _local: Option<InProcess>,
    options: pb::AnalysisOptions,
}

/// The document text stored as a template: a model without `id`/`version` gets them appended
/// at the end (line numbers of its own text are unchanged).
fn as_template(text: &str) -> Result<(String, String, String), Failure> {
    let doc = crate::model::yaml::parse(text).map_err(|d| Failure::BadInput(d.into()))?;
    let get = |k: &str| doc.root.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut out = text.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let id = match get("id") {
        Some(id) => id,
        None => {
            out.push_str("id: model\n");
            "model".to_string()
        }
    };
    let version = match get("version") {
        Some(v) => v,
        None => {
            out.push_str("version: \"0\"\n");
            "0".to_string()
        }
    };
    Ok((out, id, version))
}

/// A model file: it exists as a file, or is named like one (and then its absence is reported).
fn is_model(s: &str) -> bool {
    let p = Path::new(s);
    (sys::exists(p) && !sys::is_dir(p)) || s.ends_with(".yaml") || s.ends_with(".yml")
}

async fn connect(c: &Common, db: &Path, server: Option<&str>, data_root: Option<&Path>) -> Result<Connection, Failure> {
    let keep_prefix = c.keep.clone().unwrap_or_default();
    if is_model(&c.subject) {
        if server.is_some() {
            return Err(bad(
                "bad_argument",
                format!("`{}` is a model file; --server analyses a session or variant", c.subject),
                "drop --server to analyse the file in process, or open a session on the server first",
            ));
        }
        let path = Path::new(&c.subject);
        let (text, id, version) = as_template(&read_document(path)?)?;
        let mut host = Host::new();
        host.set_data_root(&data_root_for(path, data_root));
        host.put_template(&text, &c.subject)?;
        let info = host.open_session(OpenRequest {
            template_id: id,
            template_version: version,
            params: parse_params(&c.params)?,
            id: Some("analysis".into()),
            ..Default::default()
        })?;
        // The command line is this database's only client: no evaluation budget.
        let opts = ServerOptions { eval_budget: u64::MAX, ..ServerOptions::default() };
        let local = Client::in_process(Arc::new(SharedHost::new(host)), opts).await;
        let options = pb::AnalysisOptions {
            target: Some(pb::Target { session: info.id, variant: String::new() }),
            parameters: HashMap::new(),
            threads: c.threads,
            keep_prefix,
        };
        return Ok(Connection { client: local.client.clone(), _api: None, _local: Some(local), options });
    }
    let root = api::default_data_root(data_root)?;
    let api = api::open(db, server, &root, c.keep.is_some(), Path::new("runs")).await?;
    let options = pb::AnalysisOptions {
        target: Some(api::target(&c.subject)),
        parameters: api::params(&c.params)?,
        threads: c.threads,
        keep_prefix,
    };
    Ok(Connection { client: api.client().clone(), _api: Some(api), _local: None, options })
}

/// A progress bar on stderr when it is a terminal and the output is not JSON.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(json: bool) -> Bar {
        if json || !sys::stderr_is_terminal() {
            return Bar(None);
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} points {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Bar(Some(bar))
    }

    fn update(&self, p: &pb::AnalysisProgress) {
        if let Some(bar) = &self.0 {
            bar.set_length(p.points_total);
            bar.set_position(p.points_done);
            if let Some(b) = &p.best {
                bar.set_message(format!("best {} at {}", short(b.value), params_text(&b.params)));
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Reads a server stream to its result, updating the bar with each progress event.
macro_rules! drain {
    ($stream:expr, $module:ident, $bar:expr) => {{
        let mut stream = $stream.map_err(api::status)?.into_inner();
        let mut result = None;
        while let Some(ev) = stream.message().await.map_err(api::status)? {
            match ev.event {
                Some(pb::$module::Event::Progress(p)) => $bar.update(&p),
                Some(pb::$module::Event::Result(r)) => result = Some(r),
                None => {}
            }
        }
        result.ok_or_else(|| Failure::Runtime(anyhow::anyhow!("the server ended the analysis without a result")))?
    }};
}

pub(crate) fn run(
    cmd: AnalyzeCmd,
    db: &Path,
    server: Option<&str>,
    data_root: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let reply = api::runtime()?.block_on(analyse(cmd, db, server, data_root, json))?;
    emit(&reply, json)
}

async fn analyse(
    cmd: AnalyzeCmd,
    db: &Path,
    server: Option<&str>,
    data_root: Option<&Path>,
    json: bool,
) -> Result<Reply, Failure> {
    let common = match &cmd {
        AnalyzeCmd::Sweep { common, .. }
        | AnalyzeCmd::Sensitivity { common, .. }
        | AnalyzeCmd::GoalSeek { common, .. }
        | AnalyzeCmd::Optimize { common, .. }
        | AnalyzeCmd::MonteCarlo { common, .. }
        | AnalyzeCmd::Fit { common, .. } => common,
    };
    let conn = connect(common, db, server, data_root).await?;
    let options = Some(conn.options.clone());
    let mut a = conn.client.analysis();
    let bar = Bar::new(json);
    let reply = match cmd {
        AnalyzeCmd::Sweep { vary: v, metric, series, .. } => {
            let vary = v.iter().map(|s| vary(s)).collect::<Result<Vec<_>, _>>()?;
            let r =
                drain!(a.sweep(pb::SweepRequest { options, vary, metrics: metric, series }).await, sweep_event, bar);
            drop(bar);
            Reply { json: sweep_json(&r), text: sweep_text(&r) }
        }
        AnalyzeCmd::Sensitivity { names, metric, relative_step, absolute_step, .. } => {
            let req = pb::SensitivityRequest { options, params: names, metric, relative_step, absolute_step };
            let r = drain!(a.sensitivity(req).await, sensitivity_event, bar);
            drop(bar);
            Reply { json: sensitivity_json(&r), text: sensitivity_text(&r) }
        }
        AnalyzeCmd::GoalSeek { name, lo, hi, metric, target, tolerance, max_iterations, .. } => {
            let req = pb::GoalSeekRequest { options, param: name, lo, hi, metric, target, tolerance, max_iterations };
            let r = drain!(a.goal_seek(req).await, goal_seek_event, bar);
            drop(bar);
            Reply { json: goal_seek_json(&r, target), text: goal_seek_text(&r, target) }
        }
        AnalyzeCmd::Optimize { bounds, minimize, maximize, subject_to, max_iterations, tolerance, .. } => {
            let params = bounds.iter().map(|b| bound(b)).collect::<Result<Vec<_>, _>>()?;
            let constraints = subject_to.iter().map(|c| constraint(c)).collect::<Result<Vec<_>, _>>()?;
            let (objective, max) = match (minimize, maximize) {
                (Some(m), None) => (m, false),
                (None, Some(m)) => (m, true),
                _ => {
                    return Err(bad(
                        "bad_argument",
                        "give --minimize METRIC or --maximize METRIC",
                        "e.g. --minimize order_capacity",
                    ));
                }
            };
            let req = pb::OptimizeRequest {
                options,
                params,
                objective,
                maximize: max,
                constraints,
                max_iterations,
                tolerance,
            };
            let r = drain!(a.optimize(req).await, optimize_event, bar);
            drop(bar);
            Reply { json: optimize_json(&r), text: optimize_text(&r) }
        }
        AnalyzeCmd::MonteCarlo { samples, seed, series, metric, dist, .. } => {
            let distributions = dist.iter().map(|d| distribution(d)).collect::<Result<Vec<_>, _>>()?;
            let req = pb::MonteCarloRequest { options, samples, seed, series, metrics: metric, distributions };
            let r = drain!(a.monte_carlo(req).await, monte_carlo_event, bar);
            drop(bar);
            Reply { json: monte_carlo_json(&r), text: monte_carlo_text(&r) }
        }
        AnalyzeCmd::Fit { bounds, modelled, observed, bins, loss, max_iterations, tolerance, .. } => {
            let params = bounds.iter().map(|b| bound(b)).collect::<Result<Vec<_>, _>>()?;
            let observed = match observed.strip_prefix('@') {
                Some(file) => {
                    // The CSV travels as text; the API reads it against the target's grid.
                    let csv = sys::read_to_string(Path::new(file)).map_err(|e| {
                        bad("io", format!("cannot read {file}: {e}"), "the CSV is read from the current directory")
                    })?;
                    let values = pb::ObservedValues { values: Vec::new(), csv, source: file.to_string() };
                    pb::fit_request::Observed::ObservedValues(values)
                }
                None => pb::fit_request::Observed::ObservedRef(observed),
            };
            let loss = match loss.as_str() {
                "mae" => pb::FitLoss::Mae,
                "mape" => pb::FitLoss::Mape,
                _ => pb::FitLoss::Sse,
            };
            let req = pb::FitRequest {
                options,
                params,
                modelled,
                observed: Some(observed),
                window: bins.as_deref().map(window).transpose()?,
                loss: loss as i32,
                max_iterations,
                tolerance,
            };
            let r = drain!(a.fit(req).await, fit_event, bar);
            drop(bar);
            Reply { json: fit_json(&r), text: fit_text(&r) }
        }
    };
    Ok(reply)
}

// ---- rendering ----

fn acc_json(a: Option<&pb::Accounting>) -> Value {
    accounting_json(&accounting(a))
}

fn params_json(p: &[pb::ParamSetting]) -> Value {
    Value::Object(p.iter().map(|s| (s.name.clone(), num(s.value))).collect())
}

fn metrics_json(m: &[pb::MetricValue]) -> Value {
    Value::Object(m.iter().map(|x| (x.metric.clone(), num(x.value))).collect())
}

fn summary_json(out: &mut Map<String, Value>, s: Option<&pb::AnalysisSummary>) {
    if let Some(s) = s {
        out.insert("accounting".into(), acc_json(s.accounting.as_ref()));
        out.insert("preparation".into(), acc_json(s.preparation.as_ref()));
        if !s.kept.is_empty() {
            out.insert("kept".into(), json!(s.kept));
        }
    }
}

fn trace_json(t: &[pb::TraceStep], key: &str) -> Value {
    Value::Array(
        t.iter()
            .map(|s| {
                json!({"params": params_json(&s.params), key: num(s.value), "metrics": metrics_json(&s.metrics), "accounting": acc_json(s.accounting.as_ref())})
            })
            .collect(),
    )
}

fn params_text(p: &[pb::ParamSetting]) -> String {
    p.iter().map(|s| format!("{}={}", s.name, short(s.value))).collect::<Vec<_>>().join(", ")
}

/// Aligned columns: the header, then the rows.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |r: &[String]| {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(x, w)| format!("{x:>w$}")).collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn totals_text(s: Option<&pb::AnalysisSummary>) -> String {
    let Some(s) = s else { return String::new() };
    let mut out = format!("total: {}\n", accounting_text(&accounting(s.accounting.as_ref())));
    if !s.kept.is_empty() {
        out.push_str(&format!("kept as variants: {}\n", s.kept.join(", ")));
    }
    out
}

fn sweep_json(r: &pb::SweepResult) -> Value {
    let points: Vec<Value> = r
        .points
        .iter()
        .map(|p| {
            let mut o = Map::new();
            o.insert("index".into(), json!(p.index));
            o.insert("params".into(), params_json(&p.params));
            o.insert("metrics".into(), metrics_json(&p.metrics));
            o.insert(
                "nan_bins".into(),
                Value::Object(p.metrics.iter().map(|m| (m.metric.clone(), json!(m.nan_bins))).collect()),
            );
            if !p.series.is_empty() {
                o.insert(
                    "series".into(),
                    Value::Object(p.series.iter().map(|s| (s.id.clone(), values_json(&s.values))).collect()),
                );
            }
            o.insert("structural".into(), json!(p.structural));
            o.insert("accounting".into(), acc_json(p.accounting.as_ref()));
            Value::Object(o)
        })
        .collect();
    let mut out = Map::new();
    out.insert("mode".into(), json!("sweep"));
    out.insert("points".into(), Value::Array(points));
    summary_json(&mut out, r.summary.as_ref());
    Value::Object(out)
}

fn sweep_text(r: &pb::SweepResult) -> String {
    let Some(first) = r.points.first() else { return "no points\n".into() };
    let mut header: Vec<String> = first.params.iter().map(|p| p.name.clone()).collect();
    header.extend(first.metrics.iter().map(|m| m.metric.clone()));
    header.push("evaluated".into());
    let rows: Vec<Vec<String>> = r
        .points
        .iter()
        .map(|p| {
            let mut row: Vec<String> = p.params.iter().map(|x| short(x.value)).collect();
            row.extend(p.metrics.iter().map(|m| {
                if m.nan_bins > 0 { format!("{} ({} NaN bins)", short(m.value), m.nan_bins) } else { short(m.value) }
            }));
            let a = accounting(p.accounting.as_ref());
            row.push(format!(
                "{}/{}{}",
                a.nodes_evaluated,
                a.nodes_total,
                if p.structural { " structural" } else { "" }
            ));
            row
        })
        .collect();
    format!("{}{}", table(&header, &rows), totals_text(r.summary.as_ref()))
}

fn sensitivity_json(r: &pb::SensitivityResult) -> Value {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|x| {
            json!({"rank": x.rank, "param": x.param, "value": num(x.value), "step": num(x.step), "absolute_step": x.absolute,
                   "scheme": x.scheme, "low": num(x.low), "high": num(x.high), "metric_low": num(x.metric_low),
                   "metric_high": num(x.metric_high), "gradient": num(x.gradient), "elasticity": num(x.elasticity)})
        })
        .collect();
    let mut out = Map::new();
    out.insert("mode".into(), json!("sensitivity"));
    if let Some(m) = &r.metric {
        out.insert("metric".into(), json!(m.metric));
        out.insert("value".into(), num(m.value));
    }
    out.insert("params".into(), Value::Array(rows));
    summary_json(&mut out, r.summary.as_ref());
    Value::Object(out)
}

fn sensitivity_text(r: &pb::SensitivityResult) -> String {
    let mut out = match &r.metric {
        Some(m) => format!("{} = {} at the target's values\n", m.metric, short(m.value)),
        None => String::new(),
    };
    let header: Vec<String> =
        ["rank", "param", "value", "step", "gradient", "elasticity", "scheme"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|x| {
            vec![
                x.rank.to_string(),
                x.param.clone(),
                short(x.value),
                format!("{}{}", short(x.step), if x.absolute { " (absolute: value is 0)" } else { "" }),
                short(x.gradient),
                short(x.elasticity),
                x.scheme.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&header, &rows));
    out.push_str(&totals_text(r.summary.as_ref()));
    out
}

fn goal_seek_json(r: &pb::GoalSeekResult, target: f64) -> Value {
    let mut out = Map::new();
    out.insert("mode".into(), json!("goal-seek"));
    out.insert("value".into(), num(r.value));
    out.insert("achieved".into(), num(r.achieved));
    out.insert("converged".into(), json!(r.converged));
    out.insert("iterations".into(), json!(r.iterations));
    out.insert("trace".into(), trace_json(&r.trace, "metric"));
    out.insert("target".into(), num(target));
    out.insert("tolerance".into(), num(r.tolerance));
    out.insert("bracketed".into(), json!(r.bracketed));
    out.insert("message".into(), json!(r.message));
    summary_json(&mut out, r.summary.as_ref());
    Value::Object(out)
}

fn goal_seek_text(r: &pb::GoalSeekResult, target: f64) -> String {
    let name = r.trace.first().and_then(|s| s.params.first()).map_or("value", |p| p.name.as_str()).to_string();
    let mut out = format!(
        "{name} = {} gives {} (target {}, tolerance {}): {}\n{}\n",
        short(r.value),
        short(r.achieved),
        short(target),
        short(r.tolerance),
        if r.converged { "converged" } else { "NOT converged" },
        r.message
    );
    let rows: Vec<Vec<String>> =
        r.trace.iter().enumerate().map(|(i, s)| vec![i.to_string(), params_text(&s.params), short(s.value)]).collect();
    out.push_str(&table(&["step".into(), "point".into(), "metric".into()], &rows));
    out.push_str(&format!("{} iterations\n", r.iterations));
    out.push_str(&totals_text(r.summary.as_ref()));
    out
}

fn optimize_json(r: &pb::OptimizeResult) -> Value {
    let mut out = Map::new();
    out.insert("mode".into(), json!("optimize"));
    out.insert("params".into(), params_json(&r.params));
    out.insert("objective".into(), num(r.objective));
    out.insert("constraints".into(), metrics_json(&r.constraints));
    out.insert("feasible".into(), json!(r.feasible));
    out.insert("converged".into(), json!(r.converged));
    out.insert("iterations".into(), json!(r.iterations));
    out.insert("trace".into(), trace_json(&r.trace, "objective"));
    out.insert("message".into(), json!(r.message));
    summary_json(&mut out, r.summary.as_ref());
    Value::Object(out)
}

fn optimize_text(r: &pb::OptimizeResult) -> String {
    let mut out = format!("best: {} → objective {}\n", params_text(&r.params), short(r.objective));
    for c in &r.constraints {
        out.push_str(&format!("  {} = {}\n", c.metric, short(c.value)));
    }
    out.push_str(&format!(
        "{}, {} after {} iterations ({} points): {}\n",
        if r.feasible { "feasible" } else { "INFEASIBLE" },
        if r.converged { "converged" } else { "not converged" },
        r.iterations,
        r.trace.len(),
        r.message
    ));
    out.push_str(&totals_text(r.summary.as_ref()));
    out
}

fn monte_carlo_json(r: &pb::MonteCarloResult) -> Value {
    // No accounting here: the same seed gives the same bytes (elapsed time would differ).
    let bands: Map<String, Value> = r
        .bands
        .iter()
        .map(|b| {
            (b.series.clone(), json!({"p5": values_json(&b.p5), "p50": values_json(&b.p50), "p95": values_json(&b.p95), "mean": values_json(&b.mean)}))
        })
        .collect();
    let metrics: Map<String, Value> = r
        .metrics
        .iter()
        .map(|m| {
            (m.metric.clone(), json!({"mean": num(m.mean), "p5": num(m.p5), "p50": num(m.p50), "p95": num(m.p95), "nan_samples": m.nan_samples}))
        })
        .collect();
    json!({"mode": "monte-carlo", "samples": r.samples, "seed": r.seed, "drawn": r.drawn, "bands": bands, "metrics": metrics})
}

fn monte_carlo_text(r: &pb::MonteCarloResult) -> String {
    let mut out = format!("{} samples, seed {}", r.samples, r.seed);
    if !r.drawn.is_empty() {
        out.push_str(&format!("; pmf nodes drawn per bin: {}", r.drawn.join(", ")));
    }
    out.push('\n');
    if !r.metrics.is_empty() {
        let rows: Vec<Vec<String>> = r
            .metrics
            .iter()
            .map(|m| vec![m.metric.clone(), short(m.mean), short(m.p5), short(m.p50), short(m.p95)])
            .collect();
        out.push_str(&table(&["metric".into(), "mean".into(), "p5".into(), "p50".into(), "p95".into()], &rows));
    }
    const SHOWN: usize = 12;
    for b in &r.bands {
        out.push_str(&format!("\n{}:\n", b.series));
        let rows: Vec<Vec<String>> = (0..b.mean.len().min(SHOWN))
            .map(|t| vec![t.to_string(), short(b.p5[t]), short(b.p50[t]), short(b.p95[t]), short(b.mean[t])])
            .collect();
        out.push_str(&table(&["bin".into(), "p5".into(), "p50".into(), "p95".into(), "mean".into()], &rows));
        if b.mean.len() > SHOWN {
            out.push_str(&format!("… bins {SHOWN}..{} not shown (--json has every bin)\n", b.mean.len()));
        }
    }
    out.push_str(&totals_text(r.summary.as_ref()));
    out
}

fn fit_json(r: &pb::FitResult) -> Value {
    let mut out = Map::new();
    out.insert("mode".into(), json!("fit"));
    out.insert("params".into(), params_json(&r.params));
    out.insert("loss".into(), num(r.loss));
    out.insert("r2".into(), num(r.r2));
    out.insert("iterations".into(), json!(r.iterations));
    out.insert("loss_kind".into(), json!(r.loss_kind));
    out.insert("converged".into(), json!(r.converged));
    if let Some(w) = &r.window {
        out.insert("bins".into(), json!([w.start, w.end]));
    }
    out.insert("bins_used".into(), json!(r.bins_used));
    out.insert("bins_skipped".into(), json!(r.bins_skipped));
    out.insert("residuals".into(), values_json(&r.residuals));
    let flat: BTreeMap<String, Value> = r
        .flatness
        .iter()
        .map(|f| (f.param.clone(), json!({"low": num(f.low), "low_loss": num(f.low_loss), "high": num(f.high), "high_loss": num(f.high_loss)})))
        .collect();
    out.insert("flatness".into(), json!(flat));
    out.insert("message".into(), json!(r.message));
    summary_json(&mut out, r.summary.as_ref());
    Value::Object(out)
}

fn fit_text(r: &pb::FitResult) -> String {
    let mut out = format!(
        "fitted: {}\n{} = {}, R² = {} over {} bins ({} skipped), {} after {} iterations\n",
        params_text(&r.params),
        r.loss_kind,
        short(r.loss),
        short(r.r2),
        r.bins_used,
        r.bins_skipped,
        if r.converged { "converged" } else { "not converged" },
        r.iterations
    );
    let rows: Vec<Vec<String>> = r
        .flatness
        .iter()
        .map(|f| vec![f.param.clone(), short(f.low), short(f.low_loss), short(f.high), short(f.high_loss)])
        .collect();
    out.push_str("how flat the optimum is (the loss with one value moved by ±5%):\n");
    out.push_str(&table(&["param".into(), "-5%".into(), "loss".into(), "+5%".into(), "loss".into()], &rows));
    out.push_str(&totals_text(r.summary.as_ref()));
    out
}
