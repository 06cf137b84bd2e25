"""Analyses on a session or variant (the server's AnalysisService, docs/analysis.md): sweep,
sensitivity, goal seek, optimize, Monte Carlo and fit, each one streaming RPC whose progress is
shown with tqdm in a notebook, and whose result comes back as DataFrames and small dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from flowtime import _frames
from flowtime._pb import analysis_pb2, common_pb2
from flowtime._progress import Progress, ProgressOption, run_stream

if TYPE_CHECKING:
    from flowtime._client import Client


@dataclass(frozen=True)
class Range:
    """`steps + 1` evenly spaced values from `lo` to `hi`, both included (`LO..HI/STEPS`)."""

    lo: float
    hi: float
    steps: int


@dataclass(frozen=True)
class Uniform:
    """Uniform on [lo, hi)."""

    lo: float
    hi: float


@dataclass(frozen=True)
class Normal:
    mean: float
    sd: float


@dataclass(frozen=True)
class LogNormal:
    """ln x is normal(mu, sigma)."""

    mu: float
    sigma: float


@dataclass(frozen=True)
class Triangular:
    min: float
    mode: float
    max: float


@dataclass(frozen=True)
class Discrete:
    """values[i] with probability weights[i] / Σ weights."""

    values: Sequence[float]
    weights: Sequence[float]


Distribution = Union[Uniform, Normal, LogNormal, Triangular, Discrete]
Bounds = Mapping[str, tuple[float, float]]
VaryValues = Union[Range, Sequence[float], np.ndarray]


@dataclass(frozen=True)
class GoalSeekResult:
    """The value of `param` at which the metric reaches the target (or, not bracketed, the end
    nearest it), the metric there, and every evaluation (`trace`: params, value, accounting)."""

    param: str
    value: float
    achieved: float
    converged: bool
    bracketed: bool
    tolerance: float
    iterations: int
    message: str
    trace: pd.DataFrame = field(repr=False)
    summary: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class OptimizeResult:
    """The best parameters found, the objective and each constraint's metric there."""

    params: dict[str, float]
    objective: float
    constraints: dict[str, float]
    feasible: bool
    converged: bool
    iterations: int
    message: str
    trace: pd.DataFrame = field(repr=False)
    summary: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class MonteCarloResult:
    """Per-bin bands (series id → DataFrame with p5, p50, p95, mean over the UTC time axis), each
    metric's distribution (a DataFrame: mean, p5, p50, p95, nan_samples), each sample's drawn
    parameters, and the pmf nodes drawn."""

    samples: int
    seed: int
    drawn: list[str]
    bands: dict[str, pd.DataFrame] = field(repr=False)
    metrics: pd.DataFrame = field(repr=False)
    params: pd.DataFrame = field(repr=False)
    summary: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class FitResult:
    """The fitted parameters, the loss (SSE, MAE or MAPE in percent), R², the residuals
    (observed − modelled over the window's time axis) and the loss at ±5% of each value."""

    params: dict[str, float]
    loss: float
    loss_kind: str
    r2: float
    converged: bool
    iterations: int
    bins_used: int
    bins_skipped: int
    message: str
    residuals: pd.Series = field(repr=False)
    flatness: pd.DataFrame = field(repr=False)
    trace: pd.DataFrame = field(repr=False)
    summary: dict[str, Any] = field(repr=False)


class Analyses:
    """The analysis methods of a session or variant (mixed into `flowtime.Target`)."""

    client: Client

    def _proto(self) -> common_pb2.Target:
        raise NotImplementedError

    def _bins_total(self) -> int:
        raise NotImplementedError

    def _options(
        self, params: Optional[Mapping[str, _frames.ParamScalar]], threads: int, keep: Optional[str]
    ) -> analysis_pb2.AnalysisOptions:
        return analysis_pb2.AnalysisOptions(
            target=self._proto(), parameters=_frames.params_proto(params), threads=threads, keep_prefix=keep or ""
        )

    def _run(self, method: Callable[..., Any], request: Any, desc: str, progress: ProgressOption) -> Any:
        """Runs one streaming analysis to its result, showing progress; an interrupt (or any
        error) cancels the call, which stops the analysis on the server."""

        def show(p: analysis_pb2.AnalysisProgress, bar: Progress) -> None:
            best = None
            if p.HasField("best"):
                at = ", ".join(f"{s.name}={s.value:.6g}" for s in p.best.params)
                best = f"best {p.best.value:.6g} at {at}"
            bar.update(p.points_done, p.points_total, best)

        return run_stream(method(request, timeout=self.client.timeout), Progress(progress, desc, "pt"), show)

    def sweep(
        self,
        vary: Mapping[str, VaryValues],
        metrics: Sequence[str],
        *,
        series: Sequence[str] = (),
        params: Optional[Mapping[str, _frames.ParamScalar]] = None,
        threads: int = 0,
        keep: Optional[str] = None,
        progress: ProgressOption = None,
    ) -> pd.DataFrame:
        """Every combination of the `vary` values (the first varies slowest), each point a
        what-if evaluated on the shared cache. Returns one row per point: the varied parameters,
        then each metric (by its text), `nodes_evaluated` and `structural`; each id in `series`
        becomes a column of `pandas.Series` (whole grid, UTC index). `params` apply to every
        point; `keep="prefix"` keeps the points as variants `prefix-<i>`.

        Values are a list, or `flowtime.Range(lo, hi, steps)`.
        """
        req = analysis_pb2.SweepRequest(
            options=self._options(params, threads, keep), metrics=list(metrics), series=list(series)
        )
        for name, values in vary.items():
            v = req.vary.add(name=name)
            if isinstance(values, Range):
                v.range.CopyFrom(analysis_pb2.ValueRange(lo=values.lo, hi=values.hi, steps=values.steps))
            else:
                v.values.extend(float(x) for x in values)
        r = self._run(self.client._analysis.Sweep, req, "sweep", progress)
        summary = _summary(r.summary)
        g = _frames.grid(r.summary.grid)
        df = _points(r.points, list(vary), list(metrics), list(series), g)
        df.attrs.update(flowtime="sweep", target=_path(self._proto()), params=list(vary), metrics=list(metrics), **summary)
        return df

    def sensitivity(
        self,
        params: Sequence[str],
        metric: str,
        *,
        relative_step: float = 0.0,
        absolute_step: float = 0.0,
        values: Optional[Mapping[str, _frames.ParamScalar]] = None,
        threads: int = 0,
        progress: ProgressOption = None,
    ) -> pd.DataFrame:
        """The metric's central-difference gradient and elasticity per parameter, ranked by
        |elasticity| (one row per parameter, in rank order). `attrs["value"]` is the metric at
        the target. `values` apply to every point."""
        req = analysis_pb2.SensitivityRequest(
            options=self._options(values, threads, None),
            params=list(params),
            metric=metric,
            relative_step=relative_step,
            absolute_step=absolute_step,
        )
        r = self._run(self.client._analysis.Sensitivity, req, "sensitivity", progress)
        cols = ["rank", "value", "step", "absolute", "scheme", "low", "high", "metric_low", "metric_high",
                "gradient", "elasticity"]
        rows = [{"param": x.param, **{c: getattr(x, c) for c in cols}} for x in r.rows]
        df = pd.DataFrame(rows, columns=["param", *cols]).set_index("param")
        df.attrs.update(flowtime="sensitivity", target=_path(self._proto()), metric=r.metric.metric,
                        value=r.metric.value, **_summary(r.summary))
        return df

    def goal_seek(
        self,
        param: str,
        lo: float,
        hi: float,
        metric: str,
        target: float,
        *,
        tolerance: Optional[float] = None,
        max_iterations: int = 0,
        params: Optional[Mapping[str, _frames.ParamScalar]] = None,
        keep: Optional[str] = None,
        progress: ProgressOption = None,
    ) -> GoalSeekResult:
        """The value of `param` in [lo, hi] at which `metric` reaches `target` (Brent's method)."""
        req = analysis_pb2.GoalSeekRequest(
            options=self._options(params, 0, keep),
            param=param,
            lo=lo,
            hi=hi,
            metric=metric,
            target=target,
            max_iterations=max_iterations,
        )
        if tolerance is not None:
            req.tolerance = tolerance
        r = self._run(self.client._analysis.GoalSeek, req, "goal seek", progress)
        return GoalSeekResult(
            param=param,
            value=r.value,
            achieved=r.achieved,
            converged=r.converged,
            bracketed=r.bracketed,
            tolerance=r.tolerance,
            iterations=r.iterations,
            message=r.message,
            trace=_trace(r.trace),
            summary=_summary(r.summary),
        )

    def optimize(
        self,
        params: Bounds,
        objective: str,
        *,
        maximize: bool = False,
        constraints: Sequence[Union[str, tuple[str, str, float]]] = (),
        max_iterations: int = 0,
        tolerance: Optional[float] = None,
        values: Optional[Mapping[str, _frames.ParamScalar]] = None,
        keep: Optional[str] = None,
        progress: ProgressOption = None,
    ) -> OptimizeResult:
        """Minimises (or maximises) a metric, or a parameter, over a box per parameter
        (`{"capacity": (100, 200)}`), subject to constraints such as `"max(backlog) <= 100"` or
        `("max(backlog)", "<=", 100)` (Nelder–Mead). `values` apply to every point."""
        req = analysis_pb2.OptimizeRequest(
            options=self._options(values, 0, keep),
            objective=objective,
            maximize=maximize,
            max_iterations=max_iterations,
        )
        for name, (lo, hi) in params.items():
            req.params.add(name=name, lo=lo, hi=hi)
        for c in constraints:
            metric, op, bound = _constraint(c) if isinstance(c, str) else c
            req.constraints.add(metric=metric, op=op, bound=bound)
        if tolerance is not None:
            req.tolerance = tolerance
        r = self._run(self.client._analysis.Optimize, req, "optimize", progress)
        return OptimizeResult(
            params={p.name: p.value for p in r.params},
            objective=r.objective,
            constraints={m.metric: m.value for m in r.constraints},
            feasible=r.feasible,
            converged=r.converged,
            iterations=r.iterations,
            message=r.message,
            trace=_trace(r.trace),
            summary=_summary(r.summary),
        )

    def monte_carlo(
        self,
        samples: int,
        *,
        seed: int = 0,
        series: Sequence[str] = (),
        metrics: Sequence[str] = (),
        distributions: Optional[Mapping[str, Distribution]] = None,
        params: Optional[Mapping[str, _frames.ParamScalar]] = None,
        threads: int = 0,
        progress: ProgressOption = None,
    ) -> MonteCarloResult:
        """`samples` random draws of the pmf nodes the series and metrics read (bin by bin) and
        of the parameters in `distributions` (`{"demand_scale": flowtime.Normal(1, 0.1)}`).
        The same seed gives the same result."""
        req = analysis_pb2.MonteCarloRequest(
            options=self._options(params, threads, None),
            samples=samples,
            seed=seed,
            series=list(series),
            metrics=list(metrics),
        )
        for name, d in (distributions or {}).items():
            req.distributions.append(_distribution(name, d))
        r = self._run(self.client._analysis.MonteCarlo, req, "monte carlo", progress)
        g = _frames.grid(r.summary.grid)
        bands = {}
        for b in r.bands:
            band = pd.DataFrame(
                {k: np.asarray(getattr(b, k), dtype=np.float64) for k in ("p5", "p50", "p95", "mean")}, index=g.index()
            )
            band.attrs.update(flowtime="band", series=b.series, samples=r.samples)
            bands[b.series] = band
        mcols = ["mean", "p5", "p50", "p95", "nan_samples"]
        mrows = [{"metric": m.metric, **{c: getattr(m, c) for c in mcols}} for m in r.metrics]
        sample_params = pd.DataFrame([{p.name: p.value for p in s.params} for s in r.params])
        sample_params.index.name = "sample"
        return MonteCarloResult(
            samples=r.samples,
            seed=r.seed,
            drawn=list(r.drawn),
            bands=bands,
            metrics=pd.DataFrame(mrows, columns=["metric", *mcols]).set_index("metric"),
            params=sample_params,
            summary=_summary(r.summary),
        )

    def fit(
        self,
        params: Bounds,
        modelled: str,
        observed: Union[str, pd.Series, Sequence[float], np.ndarray],
        *,
        bins: Optional[slice] = None,
        loss: str = "sse",
        max_iterations: int = 0,
        tolerance: Optional[float] = None,
        values: Optional[Mapping[str, _frames.ParamScalar]] = None,
        keep: Optional[str] = None,
        progress: ProgressOption = None,
    ) -> FitResult:
        """Parameters (within their boxes) that make series `modelled` match `observed`: a series
        id of the target, `"series:<name>"`, `"file:<path>.csv"` on the server, or values (one
        per bin). `loss` is "sse", "mae" or "mape"; `bins` a slice of the bins compared."""
        losses = {"sse": analysis_pb2.FIT_LOSS_SSE, "mae": analysis_pb2.FIT_LOSS_MAE, "mape": analysis_pb2.FIT_LOSS_MAPE}
        if loss not in losses:
            raise ValueError(f"loss must be one of {', '.join(losses)}, not {loss!r}")
        req = analysis_pb2.FitRequest(
            options=self._options(values, 0, keep), modelled=modelled, loss=losses[loss], max_iterations=max_iterations
        )
        for name, (lo, hi) in params.items():
            req.params.add(name=name, lo=lo, hi=hi)
        if isinstance(observed, str):
            req.observed_ref = observed
        else:
            req.observed_values.values.extend(np.asarray(observed, dtype=np.float64).tolist())
        w = _frames.window(bins, self._bins_total)
        if w is not None:
            req.window.CopyFrom(w)
        if tolerance is not None:
            req.tolerance = tolerance
        r = self._run(self.client._analysis.Fit, req, "fit", progress)
        g = _frames.grid(r.summary.grid)
        residuals = pd.Series(
            np.asarray(r.residuals, dtype=np.float64), index=g.index(r.window.start, r.window.end), name="residual"
        )
        fcols = ["low", "low_loss", "high", "high_loss"]
        flat = pd.DataFrame([{"param": f.param, **{c: getattr(f, c) for c in fcols}} for f in r.flatness],
                            columns=["param", *fcols]).set_index("param")
        return FitResult(
            params={p.name: p.value for p in r.params},
            loss=r.loss,
            loss_kind=r.loss_kind,
            r2=r.r2,
            converged=r.converged,
            iterations=r.iterations,
            bins_used=r.bins_used,
            bins_skipped=r.bins_skipped,
            message=r.message,
            residuals=residuals,
            flatness=flat,
            trace=_trace(r.trace),
            summary=_summary(r.summary),
        )


def _path(t: common_pb2.Target) -> str:
    return f"{t.session}/{t.variant}" if t.variant else t.session


def _summary(s: analysis_pb2.AnalysisSummary) -> dict[str, Any]:
    return {
        "grid": asdict(_frames.grid(s.grid)),
        "revision": s.revision,
        "preparation": asdict(_frames.accounting(s.preparation)),
        "accounting": asdict(_frames.accounting(s.accounting)),
        "kept": list(s.kept),
    }


def _points(
    points: Sequence[analysis_pb2.PointResult],
    params: list[str],
    metrics: list[str],
    series: list[str],
    g: _frames.Grid,
) -> pd.DataFrame:
    rows = []
    for p in points:
        row: dict[str, Any] = {"point": p.index}
        row.update({s.name: s.value for s in p.params})
        row.update({m.metric: m.value for m in p.metrics})
        row["nodes_evaluated"] = p.accounting.nodes_evaluated
        row["structural"] = p.structural
        for s in p.series:
            row[s.id] = pd.Series(np.asarray(s.values, dtype=np.float64), index=g.index(), name=s.id)
        rows.append(row)
    cols = ["point", *params, *[m.strip() for m in metrics], "nodes_evaluated", "structural", *series]
    return pd.DataFrame(rows, columns=cols).set_index("point")


def _trace(steps: Sequence[analysis_pb2.TraceStep]) -> pd.DataFrame:
    rows = []
    for i, t in enumerate(steps):
        row: dict[str, Any] = {"step": i}
        row.update({s.name: s.value for s in t.params})
        row["value"] = t.value
        row.update({m.metric: m.value for m in t.metrics})
        row["nodes_evaluated"] = t.accounting.nodes_evaluated
        row["structural"] = t.structural
        rows.append(row)
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def _constraint(text: str) -> tuple[str, str, float]:
    for op in ("<=", ">="):
        metric, sep, bound = text.rpartition(op)
        if sep:
            return metric.strip(), op, float(bound)
    raise ValueError(f"constraint {text!r}: write `METRIC <= NUMBER` or `METRIC >= NUMBER`")


def _distribution(name: str, d: Distribution) -> analysis_pb2.ParamDistribution:
    out = analysis_pb2.ParamDistribution(name=name)
    if isinstance(d, Uniform):
        out.uniform.CopyFrom(analysis_pb2.Uniform(lo=d.lo, hi=d.hi))
    elif isinstance(d, Normal):
        out.normal.CopyFrom(analysis_pb2.Normal(mean=d.mean, sd=d.sd))
    elif isinstance(d, LogNormal):
        out.lognormal.CopyFrom(analysis_pb2.LogNormal(mu=d.mu, sigma=d.sigma))
    elif isinstance(d, Triangular):
        out.triangular.CopyFrom(analysis_pb2.Triangular(min=d.min, mode=d.mode, max=d.max))
    elif isinstance(d, Discrete):
        out.discrete.CopyFrom(analysis_pb2.Discrete(values=list(d.values), weights=list(d.weights)))
    else:
        raise TypeError(f"distribution of `{name}`: use flowtime.Uniform, Normal, LogNormal, Triangular or Discrete")
    return out
