//! The command line (§13): argument parsing, one module per subcommand, human and `--json`
//! output, and exit codes (0 ok, 1 evaluation or runtime error, 2 bad input).

mod db;
mod output;
mod remote;
mod run;
mod serve;
mod telemetry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::Diagnostics;
use crate::model::template::Supplied;

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
    /// The database file for template, session, variant, query, compare and batch commands.
    #[arg(long, global = true, default_value = "flowtime.redb", value_name = "FILE")]
    pub db: PathBuf,
    /// A running server (e.g. http://127.0.0.1:50051): database commands go over its gRPC API
    /// instead of opening a file.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Directory `file:` references resolve against (default: the parent of a `templates/`
    /// directory holding the document, else the document's directory; for a database, the
    /// current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Evaluate a model or template and write a run directory.
    Run(RunArgs),
    /// Check a model or template: located errors (exit 2) or warnings (exit 0).
    Validate(ValidateArgs),
    /// Stored templates.
    #[command(subcommand)]
    Template(db::TemplateCmd),
    /// Sessions: a template version bound to parameters and inputs, kept in the database.
    #[command(subcommand)]
    Session(db::SessionCmd),
    /// Named what-if variants of a session.
    #[command(subcommand)]
    Variant(db::VariantCmd),
    /// Series of a session or variant: `flowtime query s1/faster 'order_*' --bins 96..132`.
    Query {
        /// `session` or `session/variant`.
        target: String,
        /// A series id, or a pattern with `*`.
        pattern: String,
        /// Half-open bin window `a..b`.
        #[arg(long)]
        bins: Option<String>,
    },
    /// Compare two sessions/variants series by series.
    Compare {
        a: String,
        b: String,
        /// Also list identical series.
        #[arg(long)]
        all: bool,
    },
    /// Run database commands from stdin, one per line, against one open database.
    Batch,
    /// Serve the gRPC API on the database.
    Serve(serve::ServeArgs),
    /// Gold telemetry: load exports, print the KQL that exports a window.
    #[command(subcommand)]
    Telemetry(telemetry::TelemetryCmd),
}

impl Command {
    /// The database command this is, if it is one.
    pub(crate) fn into_db(self) -> Option<db::DbCommand> {
        Some(match self {
            Command::Template(t) => db::DbCommand::Template(t),
            Command::Session(s) => db::DbCommand::Session(s),
            Command::Variant(v) => db::DbCommand::Variant(v),
            Command::Query { target, pattern, bins } => db::DbCommand::Query { target, pattern, bins },
            Command::Compare { a, b, all } => db::DbCommand::Compare { a, b, all },
            Command::Batch => db::DbCommand::Batch,
            Command::Run(_) | Command::Validate(_) | Command::Serve(_) | Command::Telemetry(_) => return None,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The model or template YAML.
    pub file: PathBuf,
    /// A parameter value, `name=value` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Where run directories go.
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

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Failure {
        Failure::BadInput(d)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Runtime(e)
    }
}

/// Parses `name=value` pairs.
pub fn parse_params(raw: &[String]) -> Result<BTreeMap<String, Supplied>, Failure> {
    let mut out = BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Failure::BadInput(
                crate::diag::Diagnostic::error("bad_argument", format!("`-p {p}` must be `name=value`")).into(),
            ));
        };
        out.insert(k.trim().to_string(), Supplied::Text(v.to_string()));
    }
    Ok(out)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let root = cli.data_root.clone();
    let res = match cli.command {
        Command::Run(a) => run::run(&a, root.as_deref(), json),
        Command::Validate(a) => run::validate(&a, root.as_deref(), json),
        Command::Serve(a) => serve::run(&cli.db, root.as_deref(), &a).map(|()| ExitCode::SUCCESS),
        Command::Telemetry(t) => telemetry::run(t, &cli.db, cli.server.as_deref(), json).map(|()| ExitCode::SUCCESS),
        other => match other.into_db() {
            Some(cmd) => match &cli.server {
                Some(url) => remote::run(url, cmd, json).map(|()| ExitCode::SUCCESS),
                None => db::run(&cli.db, root.as_deref(), cmd, json).map(|()| ExitCode::SUCCESS),
            },
            None => Ok(ExitCode::SUCCESS),
        },
    };
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
