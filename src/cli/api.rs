//! How database commands reach the API: a [`Client`] over the server's router in this process
//! (on the `--db` file, opened here) or over a connection to `--server`; the runtime they run on;
//! the mapping of gRPC statuses to exit codes; and the request pieces every command builds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use prost::Message as _;
use tonic::Code;

use crate::cli::output::emit;
use crate::cli::{DbCommand, Failure, parse_params};
use crate::client::{Client, ConnectOptions, InProcess};
use crate::diag::{Diagnostic, Diagnostics, ExprSpan, Severity};
use crate::host::{Host, SharedHost, data_root_for};
use crate::model::template::Supplied;
use crate::server::{ServerOptions, pb};
use crate::sys;

/// A handle on the API for one or more commands.
pub(crate) struct Api {
    client: Client,
    /// Keeps the in-process router, and the database behind it, alive.
    _local: Option<InProcess>,
    /// The server's address, when commands go to a server.
    server: Option<String>,
    /// The in-process host's data root (where `file:` references and local loads resolve).
    data_root: Option<PathBuf>,
}

impl Api {
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The server's address, or `None` when the commands go to a file in this process.
    pub(crate) fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The data root of the database opened in this process.
    pub(crate) fn local_data_root(&self) -> Option<&Path> {
        self.data_root.as_deref()
    }

    /// Connects to a running server.
    pub(crate) async fn connect(url: &str) -> Result<Api, Failure> {
        let client = connect(url).await?;
        Ok(Api { client, _local: None, server: Some(url.to_string()), data_root: None })
    }

    /// Opens the database file in this process and serves its API to this process only.
    ///
    /// A command that only reads needs the file to exist (a mistyped `--db` is an error naming
    /// the path, not an empty database); one that writes creates it and says so on stderr.
    pub(crate) async fn open(db: &Path, data_root: &Path, writes: bool, runs_dir: &Path) -> Result<Api, Failure> {
        let existed = sys::exists(db);
        if !existed && !writes {
            return Err(missing_database(db));
        }
        let role = format!("`flowtime` (cli, pid {})", sys::process_id());
        let host = Host::open_with_cache(db, &role, data_root, crate::cli::cache_for(db).as_ref())?;
        if !existed {
            eprintln!("created {}", db.display());
        }
        let root = sys::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
        let local = Client::in_process(Arc::new(SharedHost::new(host)), local_options(runs_dir)).await;
        Ok(Api { client: local.client.clone(), _local: Some(local), server: None, data_root: Some(root) })
    }
}

static CONNECT: std::sync::OnceLock<ConnectOptions> = std::sync::OnceLock::new();

/// The token and CA every connection of this process uses (the CLI's global options, set once).
pub(crate) fn set_connect_options(o: ConnectOptions) {
    let _ = CONNECT.set(o);
}

/// The CLI's token and CA (`serve` requires that token of its clients).
pub(crate) fn connect_options() -> ConnectOptions {
    CONNECT.get().cloned().unwrap_or_default()
}

/// A client of the server at `url`, with the CLI's token and CA.
pub(crate) async fn connect(url: &str) -> Result<Client, Failure> {
    Client::connect_with(url, &connect_options())
        .await
        .map_err(|e| Failure::Runtime(e.context(format!("cannot reach the server at {url}"))))
}

/// The limits of the in-process API. The command line is its only client, so the limits that
/// keep one request from starving others on a shared server (the evaluation budget, the message
/// size) are lifted: a query that worked on a file before it went through the API still works.
fn local_options(runs_dir: &Path) -> ServerOptions {
    ServerOptions {
        eval_budget: u64::MAX,
        max_message_bytes: u32::MAX as usize,
        runs_dir: runs_dir.to_path_buf(),
        ..ServerOptions::default()
    }
}

/// "FILE does not exist", with the nearest database file next to it.
pub(crate) fn missing_database(db: &Path) -> Failure {
    let dir = db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let names: Vec<String> = sys::list_dir(dir)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "redb"))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let asked = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let hint = match crate::model::doc::closest(&asked, &refs) {
        Some(n) => format!("did you mean `--db {}`? ", dir.join(n).display()),
        None => String::new(),
    };
    Diagnostic::error("no_database", format!("the database file {} does not exist", db.display()))
        .with_help(format!(
            "{hint}commands that only read need an existing database; `flowtime session open FILE`, \
             `flowtime template put FILE`, `flowtime telemetry load FILE` and `flowtime serve` create one"
        ))
        .into()
}

/// A runtime for the API's calls (the in-process router runs its work on blocking threads).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Failure::Runtime(e.into()))
}

/// Opens the API where the command line points: `--server`, else the `--db` file with
/// `data_root` (`--data-root`, else the current directory).
pub(crate) async fn open(
    db: &Path,
    server: Option<&str>,
    data_root: &Path,
    writes: bool,
    runs_dir: &Path,
) -> Result<Api, Failure> {
    match server {
        Some(url) => Api::connect(url).await,
        None => Api::open(db, data_root, writes, runs_dir).await,
    }
}

/// `--data-root`, else the current directory.
pub(crate) fn default_data_root(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    match explicit {
        Some(r) => Ok(r.to_path_buf()),
        None => sys::current_dir().map_err(|e| Failure::Runtime(e.into())),
    }
}

/// Runs one database command and prints its reply.
pub(crate) fn run_one(
    db: &Path,
    server: Option<&str>,
    data_root: Option<&Path>,
    cmd: DbCommand,
    json: bool,
) -> Result<ExitCode, Failure> {
    let root = match (data_root, cmd.data_root()) {
        (Some(r), _) => r.to_path_buf(),
        (None, Some(r)) => r,
        (None, None) => default_data_root(None)?,
    };
    let runs_dir = cmd.runs_dir().unwrap_or_else(|| PathBuf::from("runs"));
    let reply = runtime()?.block_on(async move {
        let api = open(db, server, &root, cmd.writes(), &runs_dir).await?;
        cmd.exec(&api).await
    })?;
    emit(&reply, json)?;
    Ok(ExitCode::SUCCESS)
}

impl DbCommand {
    /// Where this command wants `file:` references and local files to resolve when no
    /// `--data-root` is given: for a template file, as `run` resolves it (the parent of its
    /// `templates/` directory, else its directory); for a Gold file, its directory (so the load
    /// streams the file from there); else the current directory.
    fn data_root(&self) -> Option<PathBuf> {
        match self {
            DbCommand::Session(s) => s.document().filter(|p| sys::exists(p)).map(|p| data_root_for(&p, None)),
            DbCommand::Load(a) => sys::canonicalize(&a.file).ok().and_then(|p| p.parent().map(Path::to_path_buf)),
            _ => None,
        }
    }

    fn runs_dir(&self) -> Option<PathBuf> {
        match self {
            DbCommand::Runs(r) => r.out(),
            _ => None,
        }
    }
}

/// The failure a status stands for: the located diagnostics of an INVALID_ARGUMENT, the other
/// client-side codes as bad input (exit 2), the rest as runtime errors (exit 1).
pub(crate) fn status(s: tonic::Status) -> Failure {
    let code = match s.code() {
        Code::InvalidArgument => {
            return Failure::BadInput(
                diagnostics(&s).unwrap_or_else(|| Diagnostic::error("invalid_argument", s.message()).into()),
            );
        }
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::FailedPrecondition => "failed_precondition",
        Code::OutOfRange => "out_of_range",
        Code::ResourceExhausted => "resource_exhausted",
        other => return Failure::Runtime(anyhow::anyhow!("{}: {}", crate::client::code_name(other), s.message())),
    };
    Failure::bad(code, s.message())
}

/// The located diagnostics an INVALID_ARGUMENT status carries (`flowtime.v1.Diagnostics`).
fn diagnostics(s: &tonic::Status) -> Option<Diagnostics> {
    let details = tonic_types::Status::decode(s.details()).ok()?;
    let any = details.details.iter().find(|a| a.type_url == crate::server::DIAGNOSTICS_TYPE_URL)?;
    let items = pb::Diagnostics::decode(any.value.as_slice()).ok()?.items;
    let list: Vec<Diagnostic> = items
        .into_iter()
        .map(|d| {
            let text = |s: String| (!s.is_empty()).then_some(s);
            Diagnostic {
                severity: match d.severity.as_str() {
                    "warning" => Severity::Warning,
                    "info" => Severity::Info,
                    _ => Severity::Error,
                },
                code: d.code,
                message: d.message,
                file: text(d.file),
                path: text(d.path),
                line: d.line,
                column: d.column,
                expr: d.expr.map(|e| ExprSpan { text: e.text, offset: e.offset as usize, len: e.len as usize }),
                help: text(d.help),
            }
        })
        .collect();
    (!list.is_empty()).then_some(Diagnostics(list))
}

/// `session` or `session/variant` as a request target.
pub(crate) fn target(s: &str) -> pb::Target {
    match s.split_once('/') {
        Some((a, b)) => pb::Target { session: a.to_string(), variant: b.to_string() },
        None => pb::Target { session: s.to_string(), variant: String::new() },
    }
}

/// Command-line `name=value` pairs as request parameters: text, which the API reads by each
/// parameter's declared type (as `-p` always has).
pub(crate) fn params(raw: &[String]) -> Result<std::collections::HashMap<String, pb::ParamValue>, Failure> {
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

/// `--series node=file.csv` as bindings: the CSV text travels, and the API reads it against the
/// target's grid (errors name the file and line).
pub(crate) fn bindings(raw: &[String]) -> Result<Vec<pb::SeriesBinding>, Failure> {
    let mut out = Vec::new();
    for s in raw {
        let Some((node, file)) = s.split_once('=') else {
            return Err(Failure::bad("bad_argument", format!("`--series {s}` must be `node=file.csv`")));
        };
        let text = sys::read_to_string(Path::new(file)).map_err(|e| {
            Failure::from(
                Diagnostic::error("io", format!("cannot read {file}: {e}"))
                    .at_path(format!("--series {s}"))
                    .with_help("the CSV is read from the current directory"),
            )
        })?;
        out.push(pb::SeriesBinding {
            target: node.trim().to_string(),
            values: Vec::new(),
            csv: text,
            source: file.to_string(),
        });
    }
    Ok(out)
}
