//! The command line (§13): argument parsing, one module per subcommand, human and `--json`
//! output, and exit codes (0 ok, 1 evaluation or runtime error, 2 bad input).
//!
//! Database commands build API requests and send them through [`crate::client::Client`]: to the
//! server's own router in this process over `--db`, or to a running server with `--server`. So
//! each operation has one implementation (in `server/`), and each command one rendering (from the
//! API's replies). `run` and `validate` evaluate a model file without a database (see
//! ARCHITECTURE.md, "Decisions").

mod admin;
mod analyze;
mod api;
mod batch;
mod compare;
mod output;
mod plot;
mod query;
mod run;
mod runs;
mod series;
mod serve;
mod session;
mod telemetry;
mod template;
mod variant;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::{Diagnostic, Diagnostics};
use crate::host::HostError;
use crate::model::template::Supplied;

pub(crate) use api::Api;
pub(crate) use output::Reply;

#[derive(Parser, Debug)]
#[command(
    name = "flowtime",
    version,
    about = "Time-travel flow modelling: replay telemetry, ask what-if, compare scenarios"
)]
pub struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// The database file for template, session, variant, query, state, compare, series, runs and
    /// batch commands. Commands that only read it need it to exist.
    #[arg(long, global = true, default_value = "flowtime.redb", value_name = "FILE")]
    pub db: PathBuf,
    /// A running server (`127.0.0.1:50051` or `http://127.0.0.1:50051`): database commands go to
    /// its gRPC API instead of a file.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Directory `file:` references resolve against (default: the parent of a `templates/`
    /// directory holding the document, else the document's directory; for a database, the
    /// current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// A file holding the bearer token: sent to `--server`, and required of every client by
    /// `serve` (default: the FLOWTIME_TOKEN environment variable).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM certificate of the CA that signed `--server`'s TLS certificate: connect with TLS.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Where a database keeps its result cache (unit results by content, shared by every
    /// session, restart and server pointed at it): an object-store URL (`file:///dir/`,
    /// `s3://bucket/prefix/`, `gs://…`, `az://…`) or `off`. Default: the directory
    /// `<db>.results` next to the database file.
    #[arg(long, global = true, value_name = "URL")]
    pub cache: Option<String>,
    /// The result cache's bound in bytes; the least recently used entries go first.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = crate::host::cache::DEFAULT_MAX_BYTES)]
    pub cache_bytes: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// `--cache` and `--cache-bytes`, set once by [`main`].
static CACHE: std::sync::OnceLock<(Option<String>, u64)> = std::sync::OnceLock::new();

/// The result cache of database `db` as the command line chose it (None: `--cache off`).
pub(crate) fn cache_for(db: &std::path::Path) -> Option<crate::host::cache::CacheConfig> {
    let (url, max_bytes) = CACHE.get().cloned().unwrap_or((None, crate::host::cache::DEFAULT_MAX_BYTES));
    match url.as_deref() {
        Some("off") => None,
        Some(u) => Some(crate::host::cache::CacheConfig { url: u.to_string(), max_bytes }),
        None => crate::host::cache::CacheConfig::beside(db).map(|c| crate::host::cache::CacheConfig { max_bytes, ..c }),
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Evaluate a model or template file and write a run directory (no database).
    Run(RunArgs),
    /// Check a model or template file: located errors (exit 2) or warnings (exit 0).
    Validate(ValidateArgs),
    /// Stored templates.
    #[command(subcommand)]
    Template(template::TemplateCmd),
    /// Sessions: a template version bound to parameters and inputs, kept in the database.
    #[command(subcommand)]
    Session(session::SessionCmd),
    /// Named what-if variants of a session.
    #[command(subcommand)]
    Variant(variant::VariantCmd),
    /// Series of a session or variant, bin by bin: `flowtime query s1/faster 'order_*' --bins 96..132`.
    Query(query::QueryArgs),
    /// Everything at one bin of a session or variant (time travel): `flowtime state s1 --at 2025-10-07T10:25:00Z`.
    State(query::StateArgs),
    /// Compare two sessions, variants or runs series by series.
    Compare(compare::CompareArgs),
    /// Stored telemetry series.
    #[command(subcommand)]
    Series(series::SeriesCmd),
    /// Run directories made from sessions and variants.
    #[command(subcommand)]
    Runs(runs::RunsCmd),
    /// Run database commands from stdin, one per line, against one open database.
    Batch,
    /// Serve the gRPC API on the database.
    Serve(serve::ServeArgs),
    /// Draw series of a session, a variant or a run directory as a PNG or SVG chart.
    Plot(plot::PlotArgs),
    /// Gold telemetry: load exports, print the KQL that exports a window.
    #[command(subcommand)]
    Telemetry(telemetry::TelemetryCmd),
    /// Analyses on the incremental cache: sweep, sensitivity, goal seek, optimize, Monte Carlo,
    /// fit, each over a model file or a session/variant.
    #[command(subcommand)]
    Analyze(analyze::AnalyzeCmd),
    /// Look after the database file: check it, compact it, collect unreferenced blobs.
    #[command(subcommand)]
    Db(admin::DbCmd),
}

/// A command that goes through the API (to the database file or the server).
#[derive(Debug)]
pub(crate) enum DbCommand {
    Template(template::TemplateCmd),
    Session(session::SessionCmd),
    Variant(variant::VariantCmd),
    Query(query::QueryArgs),
    State(query::StateArgs),
    Compare(compare::CompareArgs),
    Series(series::SeriesCmd),
    Runs(runs::RunsCmd),
    Load(telemetry::LoadArgs),
    Plot(plot::PlotArgs),
}

/// A command that runs in this process without the API.
#[derive(Debug)]
pub(crate) enum Local {
    Run(RunArgs),
    Validate(ValidateArgs),
    Serve(serve::ServeArgs),
    Batch,
    Telemetry(telemetry::TelemetryCmd),
    Analyze(analyze::AnalyzeCmd),
    Db(admin::DbCmd),
    Plot(plot::PlotArgs),
}

impl Command {
    /// The database command this is (`telemetry load` without `--out` is one), or the local one.
    pub(crate) fn into_db(self) -> Result<DbCommand, Local> {
        Ok(match self {
            Command::Template(t) => DbCommand::Template(t),
            Command::Session(s) => DbCommand::Session(s),
            Command::Variant(v) => DbCommand::Variant(v),
            Command::Query(q) => DbCommand::Query(q),
            Command::State(s) => DbCommand::State(s),
            Command::Compare(c) => DbCommand::Compare(c),
            Command::Series(s) => DbCommand::Series(s),
            Command::Runs(r) => DbCommand::Runs(r),
            Command::Telemetry(telemetry::TelemetryCmd::Load(a)) if a.out.is_none() => DbCommand::Load(a),
            Command::Telemetry(t) => return Err(Local::Telemetry(t)),
            Command::Run(a) => return Err(Local::Run(a)),
            Command::Validate(a) => return Err(Local::Validate(a)),
            Command::Serve(a) => return Err(Local::Serve(a)),
            // A run directory is read from its files; anything else names a target.
            Command::Plot(a) if crate::sys::is_dir(std::path::Path::new(&a.target)) => return Err(Local::Plot(a)),
            Command::Plot(a) => DbCommand::Plot(a),
            Command::Batch => return Err(Local::Batch),
            Command::Analyze(a) => return Err(Local::Analyze(a)),
            Command::Db(c) => return Err(Local::Db(c)),
        })
    }
}

impl DbCommand {
    /// Whether the command changes the database (and so may create its file).
    pub(crate) fn writes(&self) -> bool {
        match self {
            DbCommand::Template(t) => t.writes(),
            DbCommand::Session(s) => s.writes(),
            DbCommand::Variant(v) => v.writes(),
            DbCommand::Runs(r) => r.writes(),
            DbCommand::Load(_) => true,
            DbCommand::Query(_)
            | DbCommand::State(_)
            | DbCommand::Compare(_)
            | DbCommand::Series(_)
            | DbCommand::Plot(_) => false,
        }
    }

    /// Runs the command through the API.
    pub(crate) async fn exec(self, api: &Api) -> Result<Reply, Failure> {
        match self {
            DbCommand::Template(t) => template::exec(api, t).await,
            DbCommand::Session(s) => session::exec(api, s).await,
            DbCommand::Variant(v) => variant::exec(api, v).await,
            DbCommand::Query(q) => query::query(api, q).await,
            DbCommand::State(s) => query::state(api, s).await,
            DbCommand::Compare(c) => compare::exec(api, c).await,
            DbCommand::Series(s) => series::exec(api, s).await,
            DbCommand::Runs(r) => runs::exec(api, r).await,
            DbCommand::Load(a) => telemetry::load_into(api, &a).await,
            DbCommand::Plot(a) => plot::plot(api, a).await,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The model or template YAML.
    pub file: PathBuf,
    /// A parameter value, `name=value` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Where run directories go (a local directory).
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    pub file: PathBuf,
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

/// An error that maps to an exit code: bad input (2) or a runtime failure (1).
#[derive(Debug)]
pub enum Failure {
    BadInput(Diagnostics),
    Runtime(anyhow::Error),
}

impl Failure {
    /// Bad input described by one diagnostic.
    pub(crate) fn bad(code: &str, message: impl Into<String>) -> Failure {
        Failure::BadInput(Diagnostic::error(code, message).into())
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Failure {
        Failure::BadInput(d)
    }
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Failure {
        Failure::BadInput(d.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Runtime(e)
    }
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Failure {
        match e {
            HostError::BadInput(d) => Failure::BadInput(d),
            HostError::NotFound(m) => Failure::bad("not_found", m),
            HostError::AlreadyExists(w) => Failure::bad("already_exists", format!("{w} already exists")),
            HostError::FailedPrecondition(w) => Failure::bad("failed_precondition", w),
            e @ (HostError::InUse { .. } | HostError::Storage(_) | HostError::DataLoss(_)) => {
                Failure::Runtime(anyhow::anyhow!("{e}"))
            }
        }
    }
}

/// Parses `name=value` pairs.
pub fn parse_params(raw: &[String]) -> Result<BTreeMap<String, Supplied>, Failure> {
    let mut out = BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Failure::bad("bad_argument", format!("`-p {p}` must be `name=value`")));
        };
        out.insert(k.trim().to_string(), Supplied::Text(v.to_string()));
    }
    Ok(out)
}

/// The token (`--token-file`, else FLOWTIME_TOKEN) and the CA (`--tls-ca`) for reaching a
/// server; `serve` requires the same token of its clients.
fn connect_options(cli: &Cli) -> Result<crate::client::ConnectOptions, Failure> {
    let token = match &cli.token_file {
        Some(f) => {
            let t = crate::sys::read_to_string(f)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot read the token file {}: {e}", f.display())))?;
            Some(t.trim().to_string())
        }
        // Read before every command: an empty variable means "no token", not an error that
        // would stop `run` or `validate`, which never use one.
        None => crate::sys::env_var("FLOWTIME_TOKEN").map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
    };
    if token.as_ref().is_some_and(|t| t.is_empty()) {
        return Err(Failure::bad("bad_argument", "the token file is empty (--token-file)"));
    }
    let ca_pem = match &cli.tls_ca {
        Some(f) => Some(
            crate::sys::read(f)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot read the CA file {}: {e}", f.display())))?,
        ),
        None => None,
    };
    Ok(crate::client::ConnectOptions { token, ca_pem })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = CACHE.set((cli.cache.clone(), cli.cache_bytes));
    let json = cli.json;
    let res = match connect_options(&cli) {
        Ok(c) => {
            api::set_connect_options(c);
            run_command(cli)
        }
        Err(e) => Err(e),
    };
    finish(res, json)
}

fn run_command(cli: Cli) -> Result<ExitCode, Failure> {
    let json = cli.json;
    match cli.command.into_db() {
        Ok(cmd) => api::run_one(&cli.db, cli.server.as_deref(), cli.data_root.as_deref(), cmd, json),
        Err(Local::Run(a)) => run::run(&a, cli.data_root.as_deref(), json),
        Err(Local::Validate(a)) => run::validate(&a, cli.data_root.as_deref(), json),
        Err(Local::Serve(a)) => serve::run(&cli.db, cli.data_root.as_deref(), &a).map(|()| ExitCode::SUCCESS),
        Err(Local::Telemetry(t)) => telemetry::run_local(t, json),
        Err(Local::Plot(a)) => plot::plot_run(&a).and_then(|r| output::emit(&r, json)).map(|()| ExitCode::SUCCESS),
        Err(Local::Batch) => batch::run(&cli.db, cli.server.as_deref(), cli.data_root.as_deref(), json),
        Err(Local::Analyze(a)) => {
            analyze::run(a, &cli.db, cli.server.as_deref(), cli.data_root.as_deref(), json).map(|()| ExitCode::SUCCESS)
        }
        Err(Local::Db(c)) => admin::run(c, &cli.db, cli.server.as_deref(), cli.data_root.as_deref(), json),
    }
}

fn finish(res: Result<ExitCode, Failure>, json: bool) -> ExitCode {
    match res {
        Ok(code) => code,
        Err(Failure::BadInput(d)) => {
            output::print_diagnostics(&d, json);
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            if json {
                println!("{}", serde_json::json!({"ok": false, "error": format!("{e:#}")}));
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (unique names, valid defaults) for every subcommand.
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
