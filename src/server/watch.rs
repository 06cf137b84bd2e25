//! Watch streams: after every change of an input of a session or variant, one event listing
//! every series in the change's downstream cone, with values for the ones that changed.
//!
//! The cone is found without evaluating: a unit is a root of it when its interned key changed
//! (its effective definition changed) or when a parameter or input cell it reads has a new value;
//! the cone is everything downstream of the roots. The series are then evaluated on a snapshot
//! (only the cone recomputes) and compared bit for bit with the previous event's values. The
//! snapshot is dropped before the event is sent.
//!
//! A stream runs while its client wants it; a deadline of its own (`grpc-timeout`) ends it with
//! DEADLINE_EXCEEDED. The edge exempts watch streams from the server's maximum request time.
//!
//! §6.1: a watcher that asks for classes (`WatchRequest.classes`, a glob over class ids) also
//! gets the per-class series `x@c` of every classed series; their mixes are evaluated on the
//! same snapshot (salsa re-executes only the mix units a change reaches) and compared bit for bit,
//! so a share change that leaves every total as it was still reports the parts it moved.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::engine::Series;
use crate::engine::db::UnitReads;
use crate::engine::plan::Compiled;
use crate::host::{HostError, Target, View};
use crate::server::convert;
use crate::server::edge::{Call, deadline_exceeded};
use crate::server::pb;
use crate::server::service::Api;

/// What a watcher remembers between events.
#[derive(Clone)]
struct Seen {
    revision: (u64, u64),
    /// Per series id: what its unit read (interned key, cell fingerprints). Compared per id, so
    /// a node that now reads what another node read before is still a root.
    reads: BTreeMap<String, Arc<UnitReads>>,
    values: BTreeMap<String, Series>,
    /// §6.1: per-class id `x@c` → (series index of `x`, values), for the classes asked for.
    class_values: BTreeMap<String, (u32, Series)>,
}

/// The per-class series `x@c` of every classed series of `ev`'s plan, for the classes matching
/// `classes` (a glob; empty asks for none), with the mixes they need added to `ev`.
fn class_values(
    v: &View<'_>,
    t: &Target,
    ev: &mut crate::engine::Evaluation,
    classes: &str,
) -> Result<BTreeMap<String, (u32, Series)>, HostError> {
    let c = ev.compiled.clone();
    let Some(cp) = c.classes.as_ref().filter(|_| !classes.is_empty()) else { return Ok(BTreeMap::new()) };
    let wanted = cp.matching(classes);
    let classed: Vec<u32> = (0..c.series.len() as u32).filter(|s| c.is_classed(*s)).collect();
    if wanted.is_empty() || classed.is_empty() {
        return Ok(BTreeMap::new());
    }
    v.evaluate_mixes(t, ev, &classed)?;
    let mut out = BTreeMap::new();
    for &s in &classed {
        for &class in &wanted {
            if let Some(values) = ev.class_series(s, class) {
                out.insert(ev.class_series_id(s, class), (s, Series::from(values)));
            }
        }
    }
    Ok(out)
}

/// The series whose mixes every event computes ([`class_values`]): all of them when `classes`
/// matches a class of a plan with classes, none otherwise.
fn watched_mixes(c: &Compiled, classes: &str) -> Vec<u32> {
    match &c.classes {
        Some(cp) if !classes.is_empty() && !cp.matching(classes).is_empty() => crate::server::service::every_series(c),
        _ => Vec::new(),
    }
}

fn step(
    v: &View<'_>,
    t: &Target,
    prev: Option<&Seen>,
    budget: u64,
    classes: &str,
) -> Result<(Option<pb::WatchEvent>, Seen), HostError> {
    let (_, revision) = v.scenario(t)?;
    // A session closed and reopened under the same id restarts its revisions, but it is another
    // incarnation: both must match for "nothing happened".
    let revision_of = (v.incarnation(t)?, revision);
    if let Some(p) = prev
        && p.revision == revision_of
    {
        return Ok((None, p.clone()));
    }
    let c: Arc<Compiled> = v.compiled_target(t)?;
    // Every event evaluates the whole target (a structural change can make it grow).
    crate::server::service::check_budget(&c, None, &watched_mixes(&c, classes), budget)?;
    let reads: Vec<UnitReads> =
        v.unit_reads(t)?.ok_or_else(|| HostError::FailedPrecondition(format!("{t} has unresolved inputs")))?;
    let mut ev = v.evaluate_target(t, None)?;
    let class_values = class_values(v, t, &mut ev, classes)?;
    let reads: Vec<Arc<UnitReads>> = reads.into_iter().map(Arc::new).collect();
    let seen = Seen {
        revision: revision_of,
        reads: c
            .units
            .iter()
            .zip(&reads)
            .flat_map(|(u, r)| {
                let c = &c;
                u.series.iter().map(move |s| (c.series_id(*s).to_string(), r.clone()))
            })
            .collect(),
        values: c.by_id.keys().filter_map(|id| Some((id.clone(), ev.get(id)?.clone()))).collect(),
        class_values,
    };
    let event = |series: Vec<pb::SeriesChange>, initial: bool| pb::WatchEvent {
        revision,
        initial,
        series,
        accounting: Some(convert::accounting(&ev.accounting)),
        grid: Some(convert::grid(&c.grid)),
    };
    let Some(p) = prev else {
        let mut all: Vec<pb::SeriesChange> = seen
            .values
            .iter()
            .chain(seen.class_values.iter().map(|(id, (_, s))| (id, s)))
            .map(|(id, s)| pb::SeriesChange { id: id.clone(), changed: true, values: s.to_vec(), removed: false })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        return Ok((Some(event(all, true)), seen));
    };
    let roots: Vec<u32> = (0..c.units.len())
        .filter(|&u| {
            c.units[u].series.iter().any(|s| p.reads.get(c.series_id(*s)).is_none_or(|was| **was != *reads[u]))
        })
        .map(|u| u as u32)
        .collect();
    let cone = c.downstream(&roots);
    let mut changes: Vec<pb::SeriesChange> = cone
        .iter()
        .flat_map(|u| c.units[*u as usize].series.iter())
        .map(|s| {
            let id = c.series_id(*s).to_string();
            let now = &seen.values[&id];
            let changed = p.values.get(&id) != Some(now);
            pb::SeriesChange { values: if changed { now.to_vec() } else { Vec::new() }, id, changed, removed: false }
        })
        .collect();
    // Per-class series: changed bits (a share change moves parts without any total), or a total
    // in the cone.
    let in_cone: std::collections::BTreeSet<u32> =
        cone.iter().flat_map(|u| c.units[*u as usize].series.iter().copied()).collect();
    for (id, (s, now)) in &seen.class_values {
        let changed = p.class_values.get(id).is_none_or(|(_, was)| was != now);
        if changed || in_cone.contains(s) {
            changes.push(pb::SeriesChange {
                id: id.clone(),
                changed,
                values: if changed { now.to_vec() } else { Vec::new() },
                removed: false,
            });
        }
    }
    // Series a structural change took away.
    let gone = p.values.keys().filter(|id| !seen.values.contains_key(*id));
    let gone_parts = p.class_values.keys().filter(|id| !seen.class_values.contains_key(*id));
    changes.extend(gone.chain(gone_parts).map(|id| pb::SeriesChange {
        id: id.clone(),
        changed: true,
        values: Vec::new(),
        removed: true,
    }));
    changes.sort_by(|a, b| a.id.cmp(&b.id));
    if changes.is_empty() {
        return Ok((None, seen));
    }
    Ok((Some(event(changes, false)), seen))
}

#[tonic::async_trait]
impl pb::watch_service_server::WatchService for Api {
    type WatchStream = ReceiverStream<Result<pb::WatchEvent, Status>>;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        let t = convert::target("target", req.target.as_ref())?;
        let classes: Arc<str> = req.classes.into();
        // Fail fast on an unknown target.
        let check = t.clone();
        let budget = self.opts.eval_budget;
        let asked = classes.clone();
        self.read("target", move |v| {
            let c = v.compiled_target(&check)?;
            crate::server::service::check_budget(&c, None, &watched_mixes(&c, &asked), budget)
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let api = self.clone();
        let mut changes = self.changes.subscribe();
        let mut stopping = self.stopping.clone();
        // The stream outlives this handler, so the edge's deadline (which ends with the reply's
        // start) does not reach it: it ends here, at its own `grpc-timeout` (the edge exempts
        // watch streams from the server's maximum), or runs while the client wants it.
        let deadline = Call::current().and_then(|c| c.remaining());
        tokio::spawn(async move {
            let expired = async move {
                match deadline {
                    Some(left) => tokio::time::sleep(left).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(expired);
            let mut seen: Option<Seen> = None;
            loop {
                let prev = seen.clone();
                let target = t.clone();
                let classes = classes.clone();
                match api.read("target", move |v| step(&v, &target, prev.as_ref(), budget, &classes)).await {
                    Ok((event, next)) => {
                        seen = Some(next);
                        if let Some(e) = event
                            && tx.send(Ok(e)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A read cancelled by yet another write: the next change wakes us again.
                    Err(s) if s.code() == tonic::Code::Unavailable => {}
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                }
                let deadline_passed = tokio::select! {
                    r = changes.changed() => if r.is_err() { return } else { false },
                    () = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                    () = &mut expired => true,
                };
                if deadline_passed {
                    let _ = tx.send(Err(deadline_exceeded())).await;
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
