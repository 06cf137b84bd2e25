//! `flowtime serve`: the gRPC server on a database file. On every start, the templates compiled
//! into the binary that the database lacks are stored, with one session per template whose
//! parameters all have defaults (see `host::seed`), so a newcomer can query at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::Failure;
use crate::host::{Host, SharedHost};
use crate::server::{ServerOptions, bind, serve, shutdown_signal};
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Where runs are written.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
}

pub(crate) fn run(db: &Path, data_root: Option<&Path>, args: &ServeArgs) -> Result<(), Failure> {
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
        let mut host = Host::open(db, &role, &root)?;
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
        let opts = ServerOptions { runs_dir: args.runs.clone(), ..ServerOptions::default() };
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
