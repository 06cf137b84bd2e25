"""Plots of flowtime's DataFrames with matplotlib (`pip install flowtime[plot]`): series over a
UTC time axis, a comparison of two targets, a sweep's metrics against a parameter, Monte Carlo
bands. Each function draws on `ax` (a new figure when None) and returns the axes; axes are
labelled and time axes say UTC. `df.flowtime.plot()` picks the right one from `df.attrs`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from flowtime._analysis import MonteCarloResult


def _axes(ax: Optional[Axes], **figure: Any) -> Axes:
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - the message is the point
        raise ImportError("flowtime's plots need matplotlib: pip install 'flowtime[plot]'") from e
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=figure.get("figsize", (10, 4)))
    return new


def _time_axis(ax: Axes, index: pd.Index) -> None:
    """Labels the x axis: UTC dates for a time index, bin numbers otherwise."""
    if isinstance(index, pd.DatetimeIndex):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator(tz="UTC")  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))  # type: ignore[no-untyped-call]
        ax.set_xlabel("time (UTC)")
    else:
        ax.set_xlabel("bin")


def _x(index: pd.Index) -> Any:
    if isinstance(index, pd.DatetimeIndex):
        # matplotlib takes naive datetimes as UTC once the axis is told so.
        return index.tz_convert("UTC").tz_localize(None).to_pydatetime()
    return np.asarray(index)


def series(
    df: pd.DataFrame,
    columns: Union[str, Sequence[str], None] = None,
    *,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
    ylabel: Optional[str] = None,
) -> Axes:
    """Each series (column) of `Target.series(...)` as a line over time (UTC); inferred
    capacities say so in the legend."""
    ax = _axes(ax)
    cols = [columns] if isinstance(columns, str) else list(columns if columns is not None else df.columns)
    inferred = df.attrs.get("inference", {})
    x = _x(df.index)
    for c in cols:
        label = str(c)
        if c in inferred:
            i = inferred[c]
            label += " (not inferred)" if i.get("refused") else f" (inferred, confidence {i['confidence']:.3g})"
        ax.plot(x, df[c].to_numpy(dtype=float), label=label, drawstyle="steps-post")
    _time_axis(ax, df.index)
    ax.set_ylabel(ylabel or _unit(df, cols))
    ax.set_title(title or str(df.attrs.get("target", "")))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def compare(
    df: pd.DataFrame,
    columns: Union[str, Sequence[str], None] = None,
    *,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
) -> Axes:
    """A comparison with `values=True`: each differing series in `a` (solid) and `b` (dashed)
    over time (UTC). A comparison without values plots `max_abs_diff` per differing series."""
    ax = _axes(ax)
    a, b = df.attrs.get("a", "a"), df.attrs.get("b", "b")
    if df.attrs.get("flowtime") == "compare":
        diff = df[~df["identical"]]
        ax.barh([str(i) for i in diff.index], diff["max_abs_diff"].to_numpy(dtype=float))
        ax.set_xlabel("max |b − a|")
        ax.set_ylabel("series")
        ax.set_title(title or f"{b} vs {a}: series that differ")
        return ax
    names = list(dict.fromkeys(df.columns.get_level_values(0)))
    cols = [columns] if isinstance(columns, str) else list(columns if columns is not None else names)
    x = _x(df.index)
    for c in cols:
        line = ax.plot(x, df[(c, "a")].to_numpy(dtype=float), label=f"{c} ({a})", drawstyle="steps-post")[0]
        ax.plot(x, df[(c, "b")].to_numpy(dtype=float), label=f"{c} ({b})", drawstyle="steps-post",
                linestyle="--", color=line.get_color())
    _time_axis(ax, df.index)
    ax.set_ylabel("value")
    ax.set_title(title or f"{a} (solid) vs {b} (dashed)")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def sweep(
    df: pd.DataFrame,
    x: Optional[str] = None,
    y: Union[str, Sequence[str], None] = None,
    *,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
) -> Axes:
    """A sweep's metrics (default: all) against a varied parameter (default: the first)."""
    ax = _axes(ax)
    params = df.attrs.get("params") or [df.columns[0]]
    xs = x or params[0]
    ys = [y] if isinstance(y, str) else list(y if y is not None else df.attrs.get("metrics", []))
    for m in ys:
        ax.plot(df[xs].to_numpy(dtype=float), df[m].to_numpy(dtype=float), marker="o", label=m)
    ax.set_xlabel(xs)
    ax.set_ylabel(ys[0] if len(ys) == 1 else "metric")
    ax.set_title(title or f"sweep of {xs}" + (f" on {df.attrs['target']}" if "target" in df.attrs else ""))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def bands(
    result: Union[MonteCarloResult, pd.DataFrame],
    series: Optional[str] = None,
    *,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
) -> Axes:
    """A Monte Carlo band over time (UTC): the p5–p95 range shaded, the median and the mean."""
    ax = _axes(ax)
    if isinstance(result, pd.DataFrame):
        band, name = result, str(result.attrs.get("series", series or ""))
    else:
        name = series or next(iter(result.bands))
        band = result.bands[name]
    x = _x(band.index)
    ax.fill_between(x, band["p5"].to_numpy(dtype=float), band["p95"].to_numpy(dtype=float), alpha=0.3,
                    step="post", label="p5–p95")
    ax.plot(x, band["p50"].to_numpy(dtype=float), drawstyle="steps-post", label="median")
    ax.plot(x, band["mean"].to_numpy(dtype=float), drawstyle="steps-post", linestyle=":", label="mean")
    _time_axis(ax, band.index)
    ax.set_ylabel(name)
    samples = band.attrs.get("samples")
    ax.set_title(title or f"{name}" + (f" over {samples} samples" if samples else ""))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


_UNITS = {"flow": "entities per bin", "stock": "entities", "ratio": "ratio"}


def _unit(df: pd.DataFrame, cols: Sequence[Any]) -> str:
    kinds = {df.attrs.get("kinds", {}).get(c) for c in cols}
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind in _UNITS:
            return _UNITS[kind]
        if kind == "time":
            return "minutes" if all(str(c).endswith("_min") for c in cols) else "milliseconds" if all(
                str(c).endswith("_ms") for c in cols) else "time"
    return "value"


def plot(df: pd.DataFrame, **kwargs: Any) -> Axes:
    """The plot that fits a flowtime DataFrame (`df.attrs["flowtime"]`)."""
    kind = df.attrs.get("flowtime")
    if kind in ("compare", "compare_values"):
        return compare(df, **kwargs)
    if kind == "sweep":
        return sweep(df, **kwargs)
    if kind == "band":
        return bands(df, **kwargs)
    return series(df, **kwargs)
