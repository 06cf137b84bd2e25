"""Proto replies as pandas objects: the time axis of a grid (a UTC `DatetimeIndex` of bin starts),
series, state, warnings and comparisons as DataFrames, and the small value types (`Grid`,
`Accounting`, `Inference`) they carry in `attrs`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from flowtime._pb import common_pb2, queries_pb2

ParamScalar = Union[float, int, bool, str]


@dataclass(frozen=True)
class Grid:
    """A model's time grid: `bins` bins of `bin_minutes` minutes from `start` (UTC; None for a
    model without a start)."""

    bins: int
    bin_size: int
    bin_unit: str
    bin_minutes: int
    start: Optional[pd.Timestamp]

    def index(self, start: int = 0, end: Optional[int] = None) -> pd.Index:
        """The time axis of bins `[start, end)`: bin starts as a UTC `DatetimeIndex` named
        `time`, or the bin indices (a `RangeIndex` named `bin`) when the grid has no start."""
        stop = self.bins if end is None else end
        if self.start is None:
            return pd.RangeIndex(start, stop, name="bin")
        first = self.start + start * pd.Timedelta(minutes=self.bin_minutes)
        return pd.date_range(first, periods=stop - start, freq=f"{self.bin_minutes}min", name="time")

    def bin_of(self, at: Union[str, pd.Timestamp]) -> int:
        """The index of the bin that starts at `at` (UTC); `ValueError` if none does."""
        if self.start is None:
            raise ValueError("this model has no grid start: address bins by index")
        t = _utc(at)
        minutes = (t - self.start) / pd.Timedelta(minutes=1)
        i = int(minutes // self.bin_minutes)
        if minutes != i * self.bin_minutes or not 0 <= i < self.bins:
            raise ValueError(f"{t.isoformat()} is not the start of a bin of this grid")
        return i


@dataclass(frozen=True)
class Accounting:
    """§9 accounting of one evaluation: series definitions needed, computed, reused from memory
    and loaded from the result cache (counts), and the wall time in microseconds."""

    nodes_total: int
    nodes_evaluated: int
    nodes_reused: int
    elapsed_us: int
    nodes_loaded: int = 0


@dataclass(frozen=True)
class Inference:
    """How an inferred capacity was inferred: always from saturation, `confidence` = saturated
    bins ÷ bins, over `saturated_bins` bins; `refused` says why it was not (the value is NaN)."""

    method: str
    confidence: float
    saturated_bins: int
    refused: Optional[str] = None


def _utc(t: Union[str, pd.Timestamp]) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utc_text(t: Union[str, pd.Timestamp]) -> str:
    """RFC 3339 UTC text of a timestamp (naive timestamps are taken as UTC)."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def grid(g: common_pb2.Grid) -> Grid:
    return Grid(
        bins=g.bins,
        bin_size=g.bin_size,
        bin_unit=g.bin_unit,
        bin_minutes=g.bin_minutes,
        start=_utc(g.start) if g.start else None,
    )


def accounting(a: common_pb2.Accounting) -> Accounting:
    return Accounting(a.nodes_total, a.nodes_evaluated, a.nodes_reused, a.elapsed_us, a.nodes_loaded)


def inference(i: common_pb2.Inference) -> Inference:
    return Inference(i.method, i.confidence, i.saturated_bins, i.refused or None)


def param_value(v: common_pb2.ParamValue) -> ParamScalar:
    kind = v.WhichOneof("kind")
    if kind is None:
        return ""
    value: ParamScalar = getattr(v, kind)
    return value


def param_proto(name: str, v: Any) -> common_pb2.ParamValue:
    """A Python value as a parameter value: bool, int, float, or text (read by the parameter's
    declared type on the server, as `-p name=value` is)."""
    if isinstance(v, (bool, np.bool_)):
        return common_pb2.ParamValue(boolean=bool(v))
    if isinstance(v, (int, np.integer)):
        return common_pb2.ParamValue(integer=int(v))
    if isinstance(v, (float, np.floating)):
        return common_pb2.ParamValue(number=float(v))
    if isinstance(v, str):
        return common_pb2.ParamValue(text=v)
    raise TypeError(f"parameter `{name}`: {type(v).__name__} is not a bool, int, float or str")


def params_proto(values: Optional[Mapping[str, Any]]) -> dict[str, common_pb2.ParamValue]:
    return {k: param_proto(k, v) for k, v in (values or {}).items()}


def window(bins: Optional[slice], bins_total: Callable[[], int]) -> Optional[common_pb2.BinWindow]:
    """`bins=slice(a, b)` as a half-open window (None for the whole grid). Open or negative ends
    count from the grid's end, as Python slices do; `bins_total` gives the grid's length then."""
    if bins is None:
        return None
    if not isinstance(bins, slice) or bins.step not in (None, 1):
        raise ValueError("bins must be a slice(start, end) of bin indices with no step")
    start, end = bins.start, bins.stop
    if (start is not None and start < 0) or (end is not None and end < 0) or end is None:
        start, end, _ = bins.indices(bins_total())
    return common_pb2.BinWindow(start=start or 0, end=end)


def series_frame(
    g: Grid,
    win: tuple[int, int],
    series: Iterable[common_pb2.Series],
    attrs: Mapping[str, Any],
) -> pd.DataFrame:
    """Series as columns over the window's time axis; kinds and inference labels in `attrs`."""
    cols: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    inferred: dict[str, dict[str, Any]] = {}
    for s in series:
        cols[s.id] = np.asarray(s.values, dtype=np.float64)
        kinds[s.id] = s.kind
        if s.HasField("inference"):
            inferred[s.id] = asdict(inference(s.inference))
    df = pd.DataFrame(cols, index=g.index(*win))
    df.columns.name = "series"
    df.attrs.update(attrs)
    df.attrs.update(flowtime="series", grid=asdict(g), window=win, kinds=kinds, inference=inferred)
    return df


def warnings_frame(ws: Sequence[common_pb2.Warning]) -> pd.DataFrame:
    rows = [
        {
            "code": w.code,
            "severity": w.severity,
            "node": w.node_id,
            "message": w.message,
            "bins": list(w.bins),
            "value": w.value if w.HasField("value") else np.nan,
        }
        for w in ws
    ]
    return pd.DataFrame(rows, columns=["code", "severity", "node", "message", "bins", "value"])


def state_frame(g: Grid, r: queries_pb2.BinState, attrs: Mapping[str, Any]) -> pd.DataFrame:
    """One row per topology node and quantity (`source` is `role` or `derived`) at one bin."""
    rows: list[dict[str, Any]] = []
    inferred: dict[str, dict[str, Any]] = {}
    for n in r.nodes:
        for source, values in (("role", n.roles), ("derived", n.derived)):
            for name in sorted(values):
                rows.append({"node": n.id, "kind": n.kind, "source": source, "quantity": name, "value": values[name]})
        if n.HasField("inference"):
            inferred[n.id] = asdict(inference(n.inference))
    df = pd.DataFrame(rows, columns=["node", "kind", "source", "quantity", "value"])
    start = _utc(r.bin.start_utc) if r.bin.start_utc else None
    end = _utc(r.bin.end_utc) if r.bin.end_utc else None
    df.attrs.update(attrs)
    df.attrs.update(
        flowtime="state",
        grid=asdict(g),
        bin=r.bin.index,
        start=start,
        end=end,
        series=dict(sorted(r.series.items())),
        inference=inferred,
        warnings=warnings_frame(r.warnings).to_dict("records"),
    )
    return df


COMPARE_COLUMNS = [
    "identical",
    "not_evaluated",
    "only_in_a",
    "only_in_b",
    "bins_differ",
    "first_bins",
    "max_abs_diff",
    "total_a",
    "total_b",
]


def compare_frame(r: queries_pb2.CompareResponse, attrs: Mapping[str, Any]) -> pd.DataFrame:
    """One row per series: identical or not (and whether that needed no evaluation), where and by
    how much it differs."""
    rows = []
    for s in r.series:
        unknown = s.not_downstream_of_any_difference
        rows.append(
            {
                "series": s.id,
                "identical": s.identical,
                "not_evaluated": unknown,
                "only_in_a": s.only_in_a,
                "only_in_b": s.only_in_b,
                "bins_differ": s.bins_differ,
                "first_bins": list(s.first_bins),
                "max_abs_diff": 0.0 if unknown else s.max_abs_diff,
                "total_a": np.nan if unknown else s.total_a,
                "total_b": np.nan if unknown else s.total_b,
            }
        )
    df = pd.DataFrame(rows, columns=["series", *COMPARE_COLUMNS]).set_index("series")
    df.attrs.update(attrs)
    df.attrs.update(flowtime="compare", **_compare_attrs(r))
    return df


def compare_values_frame(r: queries_pb2.CompareResponse, win: tuple[int, int], attrs: Mapping[str, Any]) -> pd.DataFrame:
    """The differing series bin by bin: columns (series, a | b | diff | rel_diff)."""
    g = grid(r.grid)
    cols: dict[tuple[str, str], np.ndarray] = {}
    for s in r.series:
        if len(s.a) == 0:
            continue
        for part in ("a", "b", "diff", "rel_diff"):
            cols[(s.id, part)] = np.asarray(getattr(s, part), dtype=np.float64)
    df = pd.DataFrame(cols, index=g.index(*win))
    df.columns = pd.MultiIndex.from_tuples(list(cols), names=["series", "value"])
    df.attrs.update(attrs)
    df.attrs.update(flowtime="compare_values", **_compare_attrs(r))
    return df


def _compare_attrs(r: queries_pb2.CompareResponse) -> dict[str, Any]:
    s = r.summary
    return {
        "grid": asdict(grid(r.grid)),
        "summary": {"series": s.series, "identical": s.identical, "differing": s.differing, "not_evaluated": s.not_downstream},
        "accounting": asdict(accounting(r.accounting)),
        "revision_a": r.revision_a,
        "revision_b": r.revision_b,
    }
