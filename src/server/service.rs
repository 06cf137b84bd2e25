//! The tonic services' shared part: `Api` (the state every service shares), how an RPC runs host
//! work on a blocking thread (reads on snapshots, writes under the host lock), and the evaluation
//! budget check. Each RPC validates its request, runs host work that way, and converts the result;
//! the services themselves live in one submodule each.

mod admin;
mod analysis;
mod compare;
mod queries;
mod runs;
mod series;
mod sessions;
mod templates;

use std::sync::Arc;

use tonic::{Response, Status};

use crate::engine::plan::Compiled;
use crate::host::{Host, HostError, SharedHost, View};
use crate::server::ServerOptions;
use crate::server::edge::Call;
use crate::server::status::{from_host, from_read};

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
    /// Permits to parse and compile a document off the host lock (`opts.document_workers`).
    pub(crate) documents: Arc<tokio::sync::Semaphore>,
}

type Reply<T> = Result<Response<T>, Status>;

impl Api {
    pub(crate) fn new(host: Arc<SharedHost>, opts: ServerOptions, stopping: tokio::sync::watch::Receiver<bool>) -> Api {
        let (changes, _) = tokio::sync::watch::channel(0);
        let data_root = Arc::new(host.lock().data_root().to_path_buf());
        let documents = Arc::new(tokio::sync::Semaphore::new(opts.document_workers.max(1)));
        Api { host, changes, opts: Arc::new(opts), stopping, data_root, documents }
    }

    /// Runs `f` on a snapshot on a blocking thread, retrying cancelled reads.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl Fn(View<'_>) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let host = self.host.clone();
        let retries = self.opts.read_retries;
        on_blocking_thread(move || host.read(retries, f)).await?.map_err(|e| from_read(field, e))
    }

    /// Runs a change under the host lock on a blocking thread; notifies watchers.
    async fn write<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl FnOnce(&mut Host) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let (host, changes) = (self.host.clone(), self.changes.clone());
        // Watchers are told on the thread that wrote: a write that commits after the request's
        // deadline dropped this future still wakes them.
        let res = on_blocking_thread(move || {
            let res = host.write(f);
            if res.is_ok() {
                changes.send_modify(|g| *g += 1);
            }
            res
        })
        .await?;
        res.map_err(|e| from_host(field, e))
    }

    /// Store reads that need no evaluation, under the lock briefly.
    async fn with_host<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl FnOnce(&Host) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let host = self.host.clone();
        on_blocking_thread(move || f(&host.lock())).await?.map_err(|e| from_host(field, e))
    }
}

/// Runs `f` on a blocking thread under the current request's stop flag (evaluations stop at its
/// deadline), counting the series definitions it evaluates into the request's log line.
pub(crate) async fn on_blocking_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    let call = Call::current();
    let stop = call.as_ref().map(|c| c.stop.clone());
    let (out, units) = tokio::task::spawn_blocking(move || crate::engine::db::interruptible(stop, f))
        .await
        .map_err(|e| Status::internal(format!("the request's task failed: {e}")))?;
    if let Some(c) = call {
        c.add_units(units);
    }
    Ok(out)
}

/// Rejects evaluations larger than the `bins × units` budget: `targets` (every series when
/// None) and the mixes (§6.1) of `mix_targets`, measured by [`Compiled::work`].
pub(crate) fn check_budget(
    c: &Compiled,
    targets: Option<&[u32]>,
    mix_targets: &[u32],
    budget: u64,
) -> Result<(), HostError> {
    check_budget_all(&[(c, targets, mix_targets)], budget)
}

/// Every series of `c`: the mixes to count when a request evaluates every per-class series
/// (§6.1) too, as a full state, a run and a comparison do.
pub(crate) fn every_series(c: &Compiled) -> Vec<u32> {
    (0..c.series.len() as u32).collect()
}

/// One plan's part of a request's work: the plan, the series it evaluates (every one when None)
/// and the series whose mixes it computes.
type Work<'a> = (&'a Compiled, Option<&'a [u32]>, &'a [u32]);

/// [`check_budget`] for a request that evaluates several plans.
fn check_budget_all(plans: &[Work<'_>], budget: u64) -> Result<(), HostError> {
    let (mut parts, mut cost) = (Vec::new(), 0u64);
    for (c, targets, mix_targets) in plans {
        let u = c.work(*targets, mix_targets);
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

fn to_host(s: Status) -> HostError {
    HostError::BadInput(crate::diag::Diagnostic::error("out_of_range", s.message().to_string()).into())
}
