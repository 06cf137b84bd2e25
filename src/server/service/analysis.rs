//! The AnalysisService (§11): one server-streaming RPC per analysis mode. Each call takes the
//! target apart on a snapshot under the host lock (briefly), runs the mode on a blocking thread
//! without the lock, streams progress, and sends one result. A dropped stream sets the analysis's
//! cancel flag; a concurrent write cancels its snapshot clones (UNAVAILABLE). `keep_prefix`
//! points become variants under the write lock only after the analysis has succeeded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::analysis::{
    self, AnalysisError, Bound, Cmp, Common, Constraint, Control, Distribution, Fit, GoalSeek, Limits, Loss,
    MonteCarlo, Observed, Optimize, Progress, Sensitivity, Sweep, Totals, TraceStep, Vary,
};
use crate::host::{AnalysisBase, Host, HostError, ReadError, Target};
use crate::model::template::Supplied;
use crate::server::convert;
use crate::server::edge::{Call, deadline_exceeded};
use crate::server::pb;
use crate::server::status::{from_host, from_read, invalid_field};

use super::Api;

type Events<E> = ReceiverStream<Result<E, Status>>;

/// Progress events buffered for a slow reader before newer ones are dropped (the result always
/// waits for room).
const BUFFER: usize = 64;

/// Most workers one analysis may ask for.
const MAX_THREADS: usize = 64;

/// The parts of a request every mode shares.
struct Options {
    target: Target,
    common: Common,
    threads: usize,
}

fn options(o: Option<pb::AnalysisOptions>) -> Result<Options, Status> {
    let o = o.unwrap_or_default();
    let target = convert::target("options.target", o.target.as_ref())?;
    let params = convert::supplied_map("options.parameters", &o.parameters)?;
    let threads = match o.threads as usize {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n.min(MAX_THREADS),
    };
    let keep = (!o.keep_prefix.is_empty()).then_some(o.keep_prefix);
    Ok(Options { target, common: Common { params, keep }, threads })
}

/// How one mode's result becomes its stream's events.
trait Mode: Send + Sync + 'static {
    type Out: Send + 'static;
    type Event: Send + 'static;
    fn run(&self, base: AnalysisBase, common: &Common, ctl: &Control<'_>)
    -> Result<(Self::Out, Totals), AnalysisError>;
    fn progress(p: pb::AnalysisProgress) -> Self::Event;
    fn result(out: Self::Out, summary: pb::AnalysisSummary) -> Self::Event;
    /// Reads what the request references in the store (fit's observed series), under the lock.
    fn resolve(&mut self, _host: &Host, _base: &AnalysisBase) -> Result<(), HostError> {
        Ok(())
    }
}

impl Api {
    /// Runs `mode` on the request's target and streams its events.
    fn analyse<M: Mode>(&self, opts: Options, mut mode: M) -> Response<Events<M::Event>> {
        let (tx, rx) = mpsc::channel::<Result<M::Event, Status>>(BUFFER);
        let cancel = Arc::new(AtomicBool::new(false));
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        {
            // A dropped stream (client cancel, disconnect) stops the analysis. The watcher lets go
            // of its sender when the analysis ends, so that the stream can end too.
            let (tx, cancel) = (tx.clone(), cancel.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = tx.closed() => cancel.store(true, Ordering::Relaxed),
                    _ = done => {}
                }
            });
        }
        // The request's deadline stops the analysis like a cancel (answered DEADLINE_EXCEEDED).
        let call = Call::current();
        let timer = call.as_ref().map(|c| c.stop_at_deadline(cancel.clone()));
        let host = self.host.clone();
        let changes = self.changes.clone();
        let limits = Limits { eval_budget: self.opts.eval_budget, max_points: analysis::DEFAULT_MAX_POINTS };
        tokio::task::spawn_blocking(move || {
            let expired = || call.as_ref().is_some_and(|c| c.expired());
            let (_finished, _timer) = (finished, timer);
            let field = "request";
            let started = {
                let mut h = host.lock();
                h.analysis_base(&opts.target).and_then(|base| mode.resolve(&h, &base).map(|()| base))
            };
            let base = match started {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.blocking_send(Err(from_host(field, e)));
                    return;
                }
            };
            let progress_tx = tx.clone();
            let progress = move |p: &Progress| {
                // Advisory: a full buffer drops this event rather than slow the analysis.
                let _ = progress_tx.try_send(Ok(M::progress(progress_event(p))));
            };
            let ctl = Control { cancel: &cancel, progress: &progress, threads: opts.threads, limits };
            // Preparation evaluates on this thread: it stops at the cancel flag too.
            let (res, _) =
                crate::engine::db::interruptible(Some(cancel.clone()), || mode.run(base, &opts.common, &ctl));
            let (out, totals) = match res {
                Ok(r) => r,
                Err(AnalysisError::Cancelled) if expired() => {
                    let _ = tx.blocking_send(Err(deadline_exceeded()));
                    return;
                }
                Err(AnalysisError::Host(HostError::BadInput(d)))
                    if d.0.iter().any(|x| x.code == crate::engine::db::Interrupted::CODE) && !expired() =>
                {
                    let _ = tx.blocking_send(Err(Status::cancelled("the analysis was cancelled")));
                    return;
                }
                Err(AnalysisError::Cancelled) => {
                    let _ = tx.blocking_send(Err(Status::cancelled("the analysis was cancelled")));
                    return;
                }
                Err(AnalysisError::Interrupted) => {
                    let _ = tx.blocking_send(Err(from_read(field, ReadError::Cancelled)));
                    return;
                }
                Err(AnalysisError::Host(e)) => {
                    let _ = tx.blocking_send(Err(from_host(field, e)));
                    return;
                }
            };
            let mut kept = Vec::new();
            if let Some(prefix) = &opts.common.keep
                && !cancel.load(Ordering::Relaxed)
            {
                let points: Vec<(String, BTreeMap<String, Supplied>)> = totals
                    .points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let values = p.iter().map(|(k, v)| (k.clone(), Supplied::Text(format!("{v}")))).collect();
                        (format!("{prefix}-{i}"), values)
                    })
                    .collect();
                match host.write(|h| h.keep_points(&opts.target, &opts.common.params, &points)) {
                    Ok(names) => {
                        changes.send_modify(|g| *g += 1);
                        kept = names;
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(from_host("options.keep_prefix", e)));
                        return;
                    }
                }
            }
            if let Some(c) = &call {
                c.add_units(totals.preparation.nodes_evaluated + totals.accounting.nodes_evaluated);
            }
            let summary = pb::AnalysisSummary {
                grid: Some(convert::grid(&totals.grid)),
                revision: totals.revision,
                preparation: Some(convert::accounting(&totals.preparation)),
                accounting: Some(convert::accounting(&totals.accounting)),
                kept,
            };
            let _ = tx.blocking_send(Ok(M::result(out, summary)));
        });
        Response::new(ReceiverStream::new(rx))
    }
}

fn progress_event(p: &Progress) -> pb::AnalysisProgress {
    pb::AnalysisProgress {
        points_done: p.done,
        points_total: p.total,
        best: p.best.as_ref().map(|b| pb::BestPoint { params: settings(&b.params), value: b.value }),
    }
}

fn settings(p: &[(String, f64)]) -> Vec<pb::ParamSetting> {
    p.iter().map(|(name, value)| pb::ParamSetting { name: name.clone(), value: *value }).collect()
}

fn metric(m: &analysis::MetricValue) -> pb::MetricValue {
    pb::MetricValue { metric: m.metric.clone(), value: m.value, nan_bins: m.nan_bins }
}

fn point(p: &analysis::PointResult) -> pb::PointResult {
    pb::PointResult {
        index: p.index,
        params: settings(&p.params),
        metrics: p.metrics.iter().map(metric).collect(),
        series: p
            .series
            .iter()
            .map(|(id, v)| pb::Series {
                id: id.clone(),
                kind: String::new(),
                values: v.to_vec(),
                inference: None,
                class_id: String::new(),
            })
            .collect(),
        accounting: Some(convert::accounting(&p.accounting)),
        structural: p.structural,
    }
}

fn trace(t: &[TraceStep]) -> Vec<pb::TraceStep> {
    t.iter()
        .map(|s| pb::TraceStep {
            params: settings(&s.params),
            value: s.value,
            metrics: s.metrics.iter().map(metric).collect(),
            accounting: Some(convert::accounting(&s.accounting)),
            structural: s.structural,
        })
        .collect()
}

fn bounds(b: &[pb::ParamBound]) -> Vec<Bound> {
    b.iter().map(|b| Bound { name: b.name.clone(), lo: b.lo, hi: b.hi }).collect()
}

/// `Mode` for a request type: its runner, its progress event and its result (built by
/// `$convert`) in the mode's event oneof.
macro_rules! mode {
    ($req:ty, $res:ident, $event:ident, $module:ident, $run:ident, $convert:ident) => {
        impl Mode for $req {
            type Out = analysis::$res;
            type Event = pb::$event;
            fn run(
                &self,
                base: AnalysisBase,
                common: &Common,
                ctl: &Control<'_>,
            ) -> Result<(Self::Out, Totals), AnalysisError> {
                analysis::$run(base, common, self, ctl)
            }
            fn progress(p: pb::AnalysisProgress) -> pb::$event {
                pb::$event { event: Some(pb::$module::Event::Progress(p)) }
            }
            fn result(out: Self::Out, summary: pb::AnalysisSummary) -> pb::$event {
                pb::$event { event: Some(pb::$module::Event::Result($convert(out, summary))) }
            }
        }
    };
}

mode!(Sweep, SweepResult, SweepEvent, sweep_event, sweep, sweep_result);

mode!(Sensitivity, SensitivityResult, SensitivityEvent, sensitivity_event, sensitivity, sensitivity_result);

mode!(GoalSeek, GoalSeekResult, GoalSeekEvent, goal_seek_event, goal_seek, goal_seek_result);

mode!(Optimize, OptimizeResult, OptimizeEvent, optimize_event, optimize, optimize_result);

mode!(MonteCarlo, MonteCarloResult, MonteCarloEvent, monte_carlo_event, monte_carlo, monte_carlo_result);

fn sweep_result(out: analysis::SweepResult, summary: pb::AnalysisSummary) -> pb::SweepResult {
    pb::SweepResult { summary: Some(summary), points: out.points.iter().map(point).collect() }
}

fn sensitivity_result(out: analysis::SensitivityResult, summary: pb::AnalysisSummary) -> pb::SensitivityResult {
    let rows = out
        .rows
        .iter()
        .map(|r| pb::SensitivityRow {
            param: r.param.clone(),
            value: r.value,
            step: r.step,
            absolute: r.absolute,
            scheme: r.scheme.to_string(),
            low: r.low,
            high: r.high,
            metric_low: r.metric_low,
            metric_high: r.metric_high,
            gradient: r.gradient,
            elasticity: r.elasticity,
            rank: r.rank,
        })
        .collect();
    pb::SensitivityResult {
        summary: Some(summary),
        metric: Some(metric(&out.metric)),
        rows,
        points: out.points.iter().map(point).collect(),
    }
}

fn goal_seek_result(out: analysis::GoalSeekResult, summary: pb::AnalysisSummary) -> pb::GoalSeekResult {
    pb::GoalSeekResult {
        summary: Some(summary),
        value: out.value,
        achieved: out.achieved,
        converged: out.converged,
        bracketed: out.bracketed,
        tolerance: out.tolerance,
        iterations: out.iterations,
        trace: trace(&out.trace),
        message: out.message,
    }
}

fn optimize_result(out: analysis::OptimizeResult, summary: pb::AnalysisSummary) -> pb::OptimizeResult {
    pb::OptimizeResult {
        summary: Some(summary),
        params: settings(&out.params),
        objective: out.objective,
        constraints: out.constraints.iter().map(metric).collect(),
        feasible: out.feasible,
        converged: out.converged,
        iterations: out.iterations,
        trace: trace(&out.trace),
        message: out.message,
    }
}

fn monte_carlo_result(out: analysis::MonteCarloResult, summary: pb::AnalysisSummary) -> pb::MonteCarloResult {
    pb::MonteCarloResult {
        summary: Some(summary),
        samples: out.samples,
        seed: out.seed,
        drawn: out.drawn,
        bands: out
            .bands
            .into_iter()
            .map(|(series, b)| pb::Band { series, p5: b.p5, p50: b.p50, p95: b.p95, mean: b.mean })
            .collect(),
        metrics: out
            .metrics
            .into_iter()
            .map(|(metric, s)| pb::MetricDistribution {
                metric,
                mean: s.mean,
                p5: s.p5,
                p50: s.p50,
                p95: s.p95,
                nan_samples: s.nan_samples,
            })
            .collect(),
        params: out.params.iter().map(|p| pb::SampleParams { params: settings(p) }).collect(),
        sample_accounting: out.sample_accounting.iter().map(convert::accounting).collect(),
    }
}

impl Mode for Fit {
    type Out = analysis::FitResult;
    type Event = pb::FitEvent;
    fn run(
        &self,
        base: AnalysisBase,
        common: &Common,
        ctl: &Control<'_>,
    ) -> Result<(Self::Out, Totals), AnalysisError> {
        analysis::fit(base, common, self, ctl)
    }
    fn progress(p: pb::AnalysisProgress) -> pb::FitEvent {
        pb::FitEvent { event: Some(pb::fit_event::Event::Progress(p)) }
    }
    fn result(out: Self::Out, summary: pb::AnalysisSummary) -> pb::FitEvent {
        let r = pb::FitResult {
            summary: Some(summary),
            params: settings(&out.params),
            loss: out.loss,
            loss_kind: out.loss_kind.name().to_string(),
            r2: out.r2,
            converged: out.converged,
            iterations: out.iterations,
            window: Some(pb::BinWindow { start: out.window.0, end: out.window.1 }),
            residuals: out.residuals,
            bins_used: out.bins_used,
            bins_skipped: out.bins_skipped,
            flatness: out
                .flatness
                .into_iter()
                .map(|f| pb::Flatness {
                    param: f.param,
                    low: f.low,
                    low_loss: f.low_loss,
                    high: f.high,
                    high_loss: f.high_loss,
                })
                .collect(),
            trace: trace(&out.trace),
            message: out.message,
        };
        pb::FitEvent { event: Some(pb::fit_event::Event::Result(r)) }
    }
    /// `series:` and `file:` references and uploaded CSV text are read now; a series id of the
    /// target stays one.
    fn resolve(&mut self, host: &Host, base: &AnalysisBase) -> Result<(), HostError> {
        match &self.observed {
            Observed::Series(r) if r.starts_with("series:") || r.starts_with("file:") => {
                self.observed = Observed::Values(host.reference_values(r, &base.plan.grid, "observed_ref")?);
            }
            Observed::Csv { text, source } => {
                let label = if source.is_empty() { "observed_values.csv" } else { source.as_str() };
                let parsed = crate::model::series::parse_series_csv(text.as_bytes(), &base.plan.grid, label)?;
                self.observed = Observed::Values(parsed.values);
            }
            _ => {}
        }
        Ok(())
    }
}

fn dist(field: &str, d: &pb::ParamDistribution) -> Result<Distribution, Status> {
    use pb::param_distribution::Kind;
    Ok(match &d.kind {
        Some(Kind::Uniform(u)) => Distribution::Uniform { lo: u.lo, hi: u.hi },
        Some(Kind::Normal(n)) => Distribution::Normal { mean: n.mean, sd: n.sd },
        Some(Kind::Lognormal(l)) => Distribution::LogNormal { mu: l.mu, sigma: l.sigma },
        Some(Kind::Triangular(t)) => Distribution::Triangular { min: t.min, mode: t.mode, max: t.max },
        Some(Kind::Discrete(x)) => Distribution::Discrete { values: x.values.clone(), weights: x.weights.clone() },
        None => return Err(invalid_field(field, "give one of uniform, normal, lognormal, triangular, discrete")),
    })
}

/// Zero means "the default" for the iteration limits.
fn or_default(v: u32, default: u32) -> u32 {
    if v == 0 { default } else { v }
}

#[tonic::async_trait]
impl pb::analysis_service_server::AnalysisService for Api {
    type SweepStream = Events<pb::SweepEvent>;
    type SensitivityStream = Events<pb::SensitivityEvent>;
    type GoalSeekStream = Events<pb::GoalSeekEvent>;
    type OptimizeStream = Events<pb::OptimizeEvent>;
    type MonteCarloStream = Events<pb::MonteCarloEvent>;
    type FitStream = Events<pb::FitEvent>;

    async fn sweep(&self, req: Request<pb::SweepRequest>) -> Result<Response<Self::SweepStream>, Status> {
        let r = req.into_inner();
        let opts = options(r.options)?;
        let mut vary = Vec::new();
        for (i, v) in r.vary.iter().enumerate() {
            vary.push(match (&v.range, v.values.is_empty()) {
                (Some(range), true) => {
                    if range.steps == 0 {
                        return Err(invalid_field(&format!("vary[{i}].range.steps"), "give at least 1 step"));
                    }
                    Vary::range(&v.name, range.lo, range.hi, range.steps)
                }
                _ => Vary { name: v.name.clone(), values: v.values.clone() },
            });
        }
        Ok(self.analyse(opts, Sweep { vary, metrics: r.metrics, series: r.series }))
    }

    async fn sensitivity(
        &self,
        req: Request<pb::SensitivityRequest>,
    ) -> Result<Response<Self::SensitivityStream>, Status> {
        let r = req.into_inner();
        let opts = options(r.options)?;
        let d = Sensitivity::default();
        let mode = Sensitivity {
            params: r.params,
            metric: r.metric,
            relative_step: if r.relative_step == 0.0 { d.relative_step } else { r.relative_step },
            absolute_step: if r.absolute_step == 0.0 { d.absolute_step } else { r.absolute_step },
        };
        Ok(self.analyse(opts, mode))
    }

    async fn goal_seek(&self, req: Request<pb::GoalSeekRequest>) -> Result<Response<Self::GoalSeekStream>, Status> {
        let r = req.into_inner();
        let opts = options(r.options)?;
        let mode = GoalSeek {
            param: r.param,
            lo: r.lo,
            hi: r.hi,
            metric: r.metric,
            target: r.target,
            tolerance: r.tolerance,
            max_iterations: or_default(r.max_iterations, GoalSeek::default().max_iterations),
        };
        Ok(self.analyse(opts, mode))
    }

    async fn optimize(&self, req: Request<pb::OptimizeRequest>) -> Result<Response<Self::OptimizeStream>, Status> {
        let r = req.into_inner();
        let opts = options(r.options)?;
        let mut constraints = Vec::new();
        for (i, c) in r.constraints.iter().enumerate() {
            let cmp = match c.op.trim() {
                "<=" => Cmp::Le,
                ">=" => Cmp::Ge,
                other => {
                    return Err(invalid_field(
                        &format!("constraints[{i}].op"),
                        format!("`{other}` is not `<=` or `>=`"),
                    ));
                }
            };
            constraints.push(Constraint { metric: c.metric.clone(), cmp, bound: c.bound });
        }
        let mode = Optimize {
            params: bounds(&r.params),
            objective: r.objective,
            maximize: r.maximize,
            constraints,
            max_iterations: or_default(r.max_iterations, 500),
            tolerance: r.tolerance,
        };
        Ok(self.analyse(opts, mode))
    }

    async fn monte_carlo(
        &self,
        req: Request<pb::MonteCarloRequest>,
    ) -> Result<Response<Self::MonteCarloStream>, Status> {
        let r = req.into_inner();
        let opts = options(r.options)?;
        let mut distributions = Vec::new();
        for (i, d) in r.distributions.iter().enumerate() {
            distributions.push((d.name.clone(), dist(&format!("distributions[{i}]"), d)?));
        }
        let mode = MonteCarlo { samples: r.samples, seed: r.seed, series: r.series, metrics: r.metrics, distributions };
        Ok(self.analyse(opts, mode))
    }

    async fn fit(&self, req: Request<pb::FitRequest>) -> Result<Response<Self::FitStream>, Status> {
        let r = req.into_inner();
        let opts = options(r.options)?;
        let observed = match r.observed {
            Some(pb::fit_request::Observed::ObservedRef(s)) if !s.is_empty() => Observed::Series(s),
            Some(pb::fit_request::Observed::ObservedValues(v)) if v.values.is_empty() && !v.csv.is_empty() => {
                Observed::Csv { text: v.csv, source: v.source }
            }
            Some(pb::fit_request::Observed::ObservedValues(v)) => Observed::Values(v.values),
            _ => {
                return Err(invalid_field(
                    "observed",
                    "give observed_ref (a series id, series:NAME or file:PATH) or observed_values",
                ));
            }
        };
        let loss = match pb::FitLoss::try_from(r.loss) {
            Ok(pb::FitLoss::Sse) => Loss::Sse,
            Ok(pb::FitLoss::Mae) => Loss::Mae,
            Ok(pb::FitLoss::Mape) => Loss::Mape,
            Err(_) => return Err(invalid_field("loss", format!("unknown loss {}", r.loss))),
        };
        let mode = Fit {
            params: bounds(&r.params),
            modelled: r.modelled,
            observed,
            window: r.window.map(|w| (w.start, w.end)),
            loss,
            max_iterations: or_default(r.max_iterations, 500),
            tolerance: r.tolerance,
        };
        Ok(self.analyse(opts, mode))
    }
}
