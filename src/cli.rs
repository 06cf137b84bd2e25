//! The command line (§13): argument parsing, one module per subcommand, human and `--json`
//! output, and exit codes (0 ok, 1 evaluation or runtime error, 2 bad input).

mod output;
mod run;

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Evaluate a model or template and write a run directory.
    Run(RunArgs),
    /// Check a model or template: located errors (exit 2) or warnings (exit 0).
    Validate(ValidateArgs),
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
    /// Directory `file:` references resolve against (default: see §4).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    pub file: PathBuf,
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[arg(long)]
    pub data_root: Option<PathBuf>,
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
    let res = match cli.command {
        Command::Run(a) => run::run(&a, json),
        Command::Validate(a) => run::validate(&a, json),
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
