//! `flowtime serve`: the gRPC server on a database file. On every start, the templates compiled
//! into the binary that the database lacks are stored, with one session per template whose
//! parameters all have defaults (see `host::seed`), so a newcomer can query at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::Failure;
use crate::host::{Host, SharedHost};
use crate::server::{ServerOptions, TlsIdentity, bind, serve, shutdown_signal};
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Where runs are written: a directory, or an object-store URL (`s3://bucket/prefix/`,
    /// `file:///dir/`, …).
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// The server's TLS certificate chain (PEM); with `--tls-key`, clients connect with TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen on an address other machines can reach without a token (`--token-file` or
    /// FLOWTIME_TOKEN): anyone who reaches it can read and change every model. Warns.
    #[arg(long)]
    pub insecure: bool,
    /// What to log on stderr: a level (`info`: one line per request; `warn`: slow or failed
    /// requests only) or a tracing filter (default: RUST_LOG, else `info`).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// The longest a request may run, in seconds (a client's shorter deadline wins; watch
    /// streams are not limited).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub max_request_seconds: u64,
}

/// Logs go to stderr (stdout keeps `listening on …` and `stopped`, which scripts read).
fn init_log(filter: Option<&str>) -> Result<(), Failure> {
    let filter = filter.map(str::to_string).or_else(|| sys::env_var("RUST_LOG")).unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| Failure::bad("bad_argument", format!("`--log {filter}` is not a log filter: {e}")))?;
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    Ok(())
}

/// Refuses to listen where other machines reach the server without a token, unless told to.
fn check_exposure(addr: SocketAddr, token: bool, insecure: bool) -> Result<(), Failure> {
    if addr.ip().is_loopback() || token {
        return Ok(());
    }
    if insecure {
        tracing::warn!(
            "listening on {addr} without a token (--insecure): anyone who can reach it can read and change every model"
        );
        return Ok(());
    }
    Err(crate::diag::Diagnostic::error(
        "insecure_listen",
        format!("refusing to listen on {addr} without a token: anyone who can reach it could read and change every model"),
    )
    .with_help("give a token with --token-file FILE or FLOWTIME_TOKEN (and TLS with --tls-cert/--tls-key), listen on 127.0.0.1, or pass --insecure")
    .into())
}

fn tls_identity(args: &ServeArgs) -> Result<Option<TlsIdentity>, Failure> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else { return Ok(None) };
    let read =
        |p: &Path| sys::read(p).map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot read {}: {e}", p.display())));
    Ok(Some(TlsIdentity { cert_pem: read(cert)?, key_pem: read(key)? }))
}

pub(crate) fn run(db: &Path, data_root: Option<&Path>, args: &ServeArgs) -> Result<(), Failure> {
    init_log(args.log.as_deref())?;
    let token = crate::cli::api::connect_options().token;
    check_exposure(args.listen, token.is_some(), args.insecure)?;
    let tls = tls_identity(args)?;
    let fresh = !sys::exists(db);
    let root = match data_root {
        Some(r) => r.to_path_buf(),
        None => sys::current_dir().map_err(|e| Failure::Runtime(e.into()))?,
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Failure::Runtime(e.into()))?;
    rt.block_on(async move {
        let (listener, addr) = bind(args.listen)
            .await
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
        let role =
            format!("`flowtime serve` (pid {}, listening on {addr}); use `--server http://{addr}`", sys::process_id());
        let mut host = Host::open_with_cache(db, &role, &root, crate::cli::cache_for(db).as_ref())?;
        let seeded = host.seed_bundled()?;
        let sessions = if seeded.sessions.is_empty() { "none".to_string() } else { seeded.sessions.join(", ") };
        if fresh {
            say(&format!("created {} with the bundled templates; sessions: {sessions}", db.display()));
        } else if !seeded.templates.is_empty() || !seeded.sessions.is_empty() {
            let templates = if seeded.templates.is_empty() { "none".to_string() } else { seeded.templates.join(", ") };
            say(&format!("added the bundled templates {} lacked: {templates}; sessions: {sessions}", db.display()));
        }
        for s in &seeded.skipped {
            eprintln!("note: a bundled template was not stored: {s}");
        }
        let shared = Arc::new(SharedHost::new(host));
        let opts = ServerOptions {
            runs_dir: args.runs.clone(),
            token,
            tls,
            max_request_duration: Some(std::time::Duration::from_secs(args.max_request_seconds.max(1))),
            ..ServerOptions::default()
        };
        let stop = shutdown_signal();
        say(&format!("listening on {addr}"));
        serve(listener, shared.clone(), opts, stop).await.map_err(|e| Failure::Runtime(e.into()))?;
        // In-flight calls have finished; dropping the host closes the store cleanly.
        drop(shared);
        say("stopped");
        Ok(())
    })
}

/// A line on stdout, flushed; a reader that went away (a closed pipe) is not an error.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
