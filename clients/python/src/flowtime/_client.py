"""The client: a connection to a flowtime server (`connect`), templates, stored series and Gold
telemetry, sessions and variants as handles (`Session`, `Variant`) whose queries return pandas
objects, comparisons, and watch streams. Every call is one RPC of the server's API."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, TypeVar, Union

import grpc
import numpy as np
import pandas as pd

from flowtime import _frames
from flowtime._analysis import Analyses
from flowtime._errors import from_rpc_error
from flowtime._frames import Accounting, Grid, ParamScalar
from flowtime._pb import (
    analysis_pb2_grpc,
    common_pb2,
    queries_pb2,
    queries_pb2_grpc,
    series_pb2,
    series_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    templates_pb2,
    templates_pb2_grpc,
    watch_pb2,
    watch_pb2_grpc,
)
from flowtime._progress import Closing, Progress, ProgressOption, run_stream

Resp = TypeVar("Resp")

DEFAULT_ADDRESS = "127.0.0.1:50051"
# The server refuses messages over 64 MiB; uploads are sent in chunks well below that.
_UPLOAD_CHUNK = 1 << 20


def connect(
    address: str = DEFAULT_ADDRESS,
    *,
    timeout: Optional[float] = None,
    token: Optional[str] = None,
    token_file: Union[str, "os.PathLike[str]", None] = None,
    tls_ca: Union[str, "os.PathLike[str]", None] = None,
) -> Client:
    """Connects to a flowtime server (`flowtime serve`) at `host:port` (or `http://host:port`,
    `https://host:port`).

    `timeout` is a per-call deadline in seconds (None: none). A server started with a token
    (`serve --token-file`) needs it on every call: `token`, else the text of `token_file` (trimmed),
    else the `FLOWTIME_TOKEN` environment variable. `tls_ca` is a PEM file of the certificate
    authority that signed a TLS server's certificate (`serve --tls-cert`); an `https://` address
    without it uses TLS checked against the system's roots; anything else is plain TCP. The connection is made lazily: the first call fails with
    `flowtime.Unavailable` when nothing listens there, `flowtime.Unauthenticated` without the
    right token.
    """
    return Client(address, timeout=timeout, token=token, token_file=token_file, tls_ca=tls_ca)


def _read_token(token: Optional[str], token_file: Union[str, "os.PathLike[str]", None]) -> Optional[str]:
    """The bearer token `connect` sends: given, from a file (its whole text, trimmed, as the
    server and the CLI read it), or FLOWTIME_TOKEN."""
    if token is None and token_file is not None:
        token = Path(token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"the token file {token_file} is empty; write the server's token in it")
    if token is None:
        token = os.environ.get("FLOWTIME_TOKEN")
    token = token.strip() if token is not None else None
    return token or None


if TYPE_CHECKING:
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnary = grpc.StreamUnaryClientInterceptor[Any, Any]
    _StreamStream = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.UnaryStreamClientInterceptor
    _StreamUnary = grpc.StreamUnaryClientInterceptor
    _StreamStream = grpc.StreamStreamClientInterceptor


class _Bearer(_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream):
    """Adds `authorization: Bearer <token>` to every call, whatever streams (grpc passes a call
    of a kind an interceptor does not implement straight through, without the header)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        # grpc's call details are a namedtuple.
        metadata = list(details.metadata or []) + [self._header]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


class Client(Closing):
    """A connection to a flowtime server. Use `flowtime.connect`; close it (or use `with`) when
    done."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: Optional[float] = None,
        token: Optional[str] = None,
        token_file: Union[str, "os.PathLike[str]", None] = None,
        tls_ca: Union[str, "os.PathLike[str]", None] = None,
    ) -> None:
        tls = address.startswith("https://")
        for scheme in ("http://", "https://", "grpc://"):
            if address.startswith(scheme):
                address = address[len(scheme) :]
        self.address = address.rstrip("/")
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", 64 << 20)]
        if tls_ca is not None or tls:
            # Without `tls_ca`, an https:// address is checked against the system's roots.
            ca = Path(tls_ca).read_bytes() if tls_ca is not None else None
            self._base = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(root_certificates=ca), options)
        else:
            self._base = grpc.insecure_channel(self.address, options=options)
        bearer = _read_token(token, token_file)
        self._channel = grpc.intercept_channel(self._base, _Bearer(bearer)) if bearer else self._base
        self._templates = templates_pb2_grpc.TemplateServiceStub(self._channel)
        self._series = series_pb2_grpc.SeriesServiceStub(self._channel)
        self._sessions = sessions_pb2_grpc.SessionServiceStub(self._channel)
        self._queries = queries_pb2_grpc.QueryServiceStub(self._channel)
        self._watch = watch_pb2_grpc.WatchServiceStub(self._channel)
        self._analysis = analysis_pb2_grpc.AnalysisServiceStub(self._channel)

    def __repr__(self) -> str:
        return f"flowtime.Client({self.address!r})"

    def close(self) -> None:
        self._base.close()

    def _call(self, method: Callable[..., Resp], request: Any) -> Resp:
        """One unary call; a failure becomes the matching `flowtime.Error`."""
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # ---- templates ----

    def templates(self) -> pd.DataFrame:
        """Every stored template version: id, version, title, description, parameter names."""
        r = self._call(self._templates.ListTemplates, templates_pb2.ListTemplatesRequest())
        rows = [
            {
                "id": t.id,
                "version": t.version,
                "title": t.title,
                "description": t.description,
                "parameters": [p.name for p in t.parameters],
                "sha256": t.sha256,
            }
            for t in r.templates
        ]
        return pd.DataFrame(rows, columns=["id", "version", "title", "description", "parameters", "sha256"])

    def template(self, id: str, version: str = "") -> Template:
        """One stored template version (the highest when `version` is empty), with its text and
        declared parameters."""
        t = self._call(self._templates.GetTemplate, templates_pb2.GetTemplateRequest(id=id, version=version))
        return _template(t)

    def put_template(self, text_or_path: Union[str, os.PathLike[str]], *, source: str = "") -> Template:
        """Stores a template (YAML text, or the path of a YAML file); storing the same text again
        is a no-op. Returns the stored version."""
        if isinstance(text_or_path, os.PathLike) or (
            "\n" not in str(text_or_path) and str(text_or_path).endswith((".yaml", ".yml"))
        ):
            path = Path(text_or_path)
            text, source = path.read_text(encoding="utf-8"), source or str(path)
        else:
            text = str(text_or_path)
        r = self._call(self._templates.PutTemplate, templates_pb2.PutTemplateRequest(text=text, source=source))
        return self.template(r.id, r.version)

    # ---- sessions ----

    def sessions(self) -> list[Session]:
        """Every open session."""
        r = self._call(self._sessions.ListSessions, sessions_pb2.ListSessionsRequest())
        return [Session(self, s) for s in r.sessions]

    def session(self, name: str) -> Session:
        """The open session `name` (`flowtime.NotFound` when there is none)."""
        return Session(self, self._call(self._sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=name)))

    def open_session(
        self,
        template: str,
        name: Optional[str] = None,
        params: Optional[Mapping[str, ParamScalar]] = None,
        *,
        stored_telemetry: bool = False,
        series: Optional[Mapping[str, Union[Sequence[float], pd.Series, np.ndarray]]] = None,
        tenant: str = "",
    ) -> Session:
        """Opens a session on a stored template (`id` or `id@version`; the highest version when
        none is given) with parameter values (the rest take their defaults).

        `stored_telemetry=True` replays loaded telemetry: each `series` parameter whose default
        is `file:…/<name>.csv` reads the stored series `<name>` when there is one
        (`Session.bound_to_stored` says which). `series` binds const nodes (or `series`
        parameters) to values, one per bin. `name` defaults to `s1`, `s2`, …
        """
        tid, _, version = template.partition("@")
        r = self._call(
            self._sessions.OpenSession,
            sessions_pb2.OpenSessionRequest(
                template_id=tid,
                template_version=version,
                parameters=_frames.params_proto(params),
                series=_bindings(series),
                session_id=name or "",
                tenant=tenant,
                stored_telemetry=stored_telemetry,
            ),
        )
        return Session(self, r)

    # ---- stored series and telemetry ----

    def stored_series(self) -> pd.DataFrame:
        """Stored series (without values): start, bin minutes, bins, sha256, provenance."""
        r = self._call(self._series.ListSeries, series_pb2.ListSeriesRequest())
        rows = [_stored_info(s) for s in r.series]
        return pd.DataFrame(rows, columns=["name", "start", "bin_minutes", "bins", "sha256", "provenance"]).set_index("name")

    def get_series(self, name: str) -> pd.Series:
        """A stored series with a UTC time index (bin starts)."""
        r = self._call(self._series.GetStoredSeries, series_pb2.GetStoredSeriesRequest(name=name))
        info = _stored_info(r.info)
        values = np.asarray(r.values, dtype=np.float64)
        m = info["bin_minutes"]
        grid = _frames.Grid(bins=len(values), bin_size=m, bin_unit="minutes", bin_minutes=m, start=info["start"])
        s = pd.Series(values, index=grid.index(), name=name)
        s.attrs.update(provenance=info["provenance"], sha256=info["sha256"], bin_minutes=info["bin_minutes"])
        return s

    def put_series(
        self,
        name: str,
        values: Union[pd.Series, Sequence[float], np.ndarray],
        *,
        start: Union[str, pd.Timestamp, None] = None,
        bin_minutes: Optional[int] = None,
        provenance: Optional[Mapping[str, str]] = None,
    ) -> bool:
        """Stores (or replaces) series `name`, read by sessions as `series:<name>`: only what is
        downstream of it re-evaluates. A `pandas.Series` with a regular `DatetimeIndex` gives
        its own start and bin width; otherwise pass `start` (UTC) and `bin_minutes`. Returns
        whether the stored content changed."""
        if isinstance(values, pd.Series) and isinstance(values.index, pd.DatetimeIndex):
            idx = values.index
            if start is None and len(idx) > 0:
                start = idx[0]
            if bin_minutes is None:
                bin_minutes = _regular_minutes(idx, name)
        if bin_minutes is None:
            raise ValueError(f"put_series({name!r}): give bin_minutes (or a Series with a regular DatetimeIndex)")
        req = series_pb2.PutSeriesRequest(
            name=name,
            start=_frames.utc_text(start) if start is not None else "",
            bin_minutes=int(bin_minutes),
            values=np.asarray(values, dtype=np.float64).tolist(),
            provenance=dict(provenance or {}),
        )
        return self._call(self._series.PutSeries, req).changed

    def load_gold(
        self,
        data: Union[str, os.PathLike[str], pd.DataFrame],
        *,
        server_path: bool = False,
        format: str = "",
        start: Union[str, pd.Timestamp, None] = None,
        bins: int = 0,
        bin_size: str = "",
        align_floor: bool = False,
        source: str = "",
        extraction_ts: Union[str, pd.Timestamp, None] = None,
        progress: ProgressOption = None,
    ) -> LoadResult:
        """Loads a Gold NodeTimeBin export (CSV or NDJSON: a file here, or a DataFrame with its
        columns) into stored series `<node>_<metric>`, all at once. With `server_path=True` the
        path is a file under the server's data root (read there, streamed). A bad row raises
        `flowtime.InvalidArgument` naming its line; nothing is stored then."""
        options = series_pb2.LoadGoldOptions(
            format=format,
            start=_frames.utc_text(start) if start is not None else "",
            bins=bins,
            bin_size=bin_size,
            align_floor=align_floor,
            source=source,
            extraction_ts=_frames.utc_text(extraction_ts) if extraction_ts is not None else "",
        )
        payload = b""
        if isinstance(data, pd.DataFrame):
            frame = data.reset_index() if data.index.name is not None else data
            payload = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ").encode("utf-8")
            options.format = options.format or "csv"
            options.source = options.source or "dataframe"
        elif server_path:
            options.path = os.fspath(data)
        else:
            path = Path(data)
            payload = path.read_bytes()
            options.source = options.source or path.name

        def chunks() -> Iterator[series_pb2.LoadGoldChunk]:
            yield series_pb2.LoadGoldChunk(options=options, data=payload[:_UPLOAD_CHUNK])
            for i in range(_UPLOAD_CHUNK, len(payload), _UPLOAD_CHUNK):
                yield series_pb2.LoadGoldChunk(data=payload[i : i + _UPLOAD_CHUNK])

        def show(p: series_pb2.LoadProgress, bar: Progress) -> None:
            second = getattr(p, "pass") > 1  # `pass` is a Python keyword
            bar.update(p.bytes_read, p.bytes_total, "second pass" if second else None)

        call = self._series.LoadGold(chunks(), timeout=self.timeout)
        result: series_pb2.LoadGoldResponse = run_stream(call, Progress(progress, "load", "B"), show)
        return LoadResult(
            series=list(result.series),
            changed=list(result.changed),
            grid=_frames.grid(result.grid),
            bin_size_inferred=result.bin_size_inferred,
            warnings=_frames.warnings_frame(result.warnings),
            rows=result.rows,
            rows_outside_window=result.rows_outside_window,
            provenance=dict(sorted(result.provenance.items())),
        )

    # ---- comparisons ----

    def compare(
        self,
        a: Union[Target, str],
        b: Union[Target, str],
        *,
        series: Union[str, Sequence[str], None] = None,
        bins: Optional[slice] = None,
        values: bool = False,
    ) -> pd.DataFrame:
        """Compares two sessions or variants (handles, or `"session"` / `"session/variant"`)
        series by series.

        Returns one row per series: `identical`, `not_evaluated` (identical by construction: not
        downstream of any difference, so never evaluated), `bins_differ`, `first_bins`,
        `max_abs_diff`, `total_a`, `total_b`. With `values=True`, the differing series bin by bin
        instead: a UTC time index and columns `(series, a | b | diff | rel_diff)`. `series` is a
        pattern (`"*_backlog"`) or a list of ids; `bins` a slice of bin indices.
        """
        ta, tb = _target(a), _target(b)
        req = queries_pb2.CompareRequest(
            a=queries_pb2.Operand(target=ta),
            b=queries_pb2.Operand(target=tb),
            include_values=values,
        )
        if isinstance(series, str):
            req.pattern = series
        elif series is not None:
            req.ids.extend(series)
        w = _frames.window(bins, lambda: self.session(ta.session).grid.bins)
        if w is not None:
            req.window.CopyFrom(w)
        r = self._call(self._queries.Compare, req)
        attrs = {"a": _target_text(ta), "b": _target_text(tb)}
        if values:
            win = (w.start, w.end) if w is not None else (0, r.grid.bins)
            return _frames.compare_values_frame(r, win, attrs)
        return _frames.compare_frame(r, attrs)


@dataclass(frozen=True)
class Template:
    """A stored template version: its text and its declared parameters (a DataFrame: name, type,
    default, min, max, values, description)."""

    id: str
    version: str
    title: str
    description: str
    sha256: str
    text: str
    parameters: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class LoadResult:
    """What a Gold load stored: series names, the ones whose content changed, the window, the
    loader's warnings (gaps, NaNs, rows outside the window), row counts and the provenance."""

    series: list[str]
    changed: list[str]
    grid: Grid
    bin_size_inferred: bool
    warnings: pd.DataFrame = field(repr=False)
    rows: int
    rows_outside_window: int
    provenance: dict[str, str]


class Target(Analyses):
    """A session or a variant: what queries, comparisons, watches and analyses run on."""

    def __init__(self, client: Client, session: str, variant: str = "") -> None:
        self.client = client
        self._session_id = session
        self._variant = variant

    @property
    def path(self) -> str:
        """`session` or `session/variant`, as the command line writes targets."""
        return f"{self._session_id}/{self._variant}" if self._variant else self._session_id

    def _proto(self) -> common_pb2.Target:
        return common_pb2.Target(session=self._session_id, variant=self._variant)

    def _bins_total(self) -> int:
        """The number of bins of the session's grid (for slices with open ends)."""
        c = self.client
        return c._call(c._sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=self._session_id)).grid.bins

    def _info(self, info: queries_pb2.EvaluationInfo) -> dict[str, Any]:
        return {
            "target": self.path,
            "revision": info.revision,
            "accounting": asdict(_frames.accounting(info.accounting)),
            "overrides": {k: _frames.param_value(v) for k, v in sorted(info.overrides.items())},
        }

    def series(
        self,
        pattern: Union[str, Sequence[str]] = "*",
        bins: Optional[slice] = None,
        *,
        classes: Union[bool, str] = False,
    ) -> pd.DataFrame:
        """Series as columns over a UTC `DatetimeIndex` of bin starts (named `time`).

        `pattern` matches ids (`*` is any run of characters) or is a list of ids; `bins` is a
        slice of bin indices (`slice(118, 130)`). Columns come in model order for a pattern, in
        the order given for a list. `classes=True` returns the per-class series of the matching
        series instead of their totals (SPEC §6.1: columns `<id>@<class>`, summing to the total
        in every bin); `classes="refund"` (or another class pattern) only those classes. Per-class
        ids (`"svc_queue@refund"`) may also be given directly. `df.attrs` carries the grid, the
        window, each series' kind, `inference` (id → method, confidence, saturated bins, refusal)
        for inferred capacities, the revision and the accounting.
        """
        req = queries_pb2.GetSeriesRequest(target=self._proto())
        if classes is not False:
            if not isinstance(pattern, str):
                raise TypeError("classes= needs a pattern, not a list of ids (give ids such as 'x@refund' instead)")
            which = "*" if classes is True else str(classes)
            pattern = f"{pattern}@{which}"
        if isinstance(pattern, str):
            req.pattern = pattern
        else:
            req.ids.extend(pattern)
        w = _frames.window(bins, self._bins_total)
        if w is not None:
            req.window.CopyFrom(w)
        r = self.client._call(self.client._queries.GetSeries, req)
        g = _frames.grid(r.grid)
        df = _frames.series_frame(g, (r.window.start, r.window.end), r.series, self._info(r.info))
        if not isinstance(pattern, str):
            df = df[[i for i in dict.fromkeys(pattern) if i in df.columns]]  # the order asked for
        return df

    def state(self, at: Union[str, pd.Timestamp, None] = None, *, bin: Optional[int] = None) -> pd.DataFrame:
        """Time travel: every topology node at one bin (`at` a bin start, UTC; or `bin` an index),
        one row per node and quantity (`source` = role or derived metric) with its value.
        `attrs` has the bin, its start and end, every series' value, inferred capacities and
        the warnings that touch the bin."""
        req = queries_pb2.GetStateRequest(target=self._proto())
        if (at is None) == (bin is None):
            raise ValueError("state() needs exactly one of at= (a UTC bin start) or bin= (an index)")
        if at is not None:
            req.timestamp = _frames.utc_text(at)
        else:
            req.bin = int(bin)  # type: ignore[arg-type]
        r = self.client._call(self.client._queries.GetState, req)
        return _frames.state_frame(_frames.grid(r.grid), r.state, self._info(r.info))

    def warnings(self) -> pd.DataFrame:
        """The §7.1 warnings: code, severity, node, message, bins, value."""
        r = self.client._call(self.client._queries.GetWarnings, queries_pb2.GetWarningsRequest(target=self._proto()))
        df = _frames.warnings_frame(r.warnings)
        df.attrs.update(self._info(r.info), flowtime="warnings")
        return df

    def metrics(self, bins: Optional[slice] = None) -> pd.DataFrame:
        """Per topology node and quantity: min, mean, max, sum over the non-NaN bins (and how
        many), with the node's SLA share where it declares one."""
        req = queries_pb2.GetMetricsRequest(target=self._proto())
        w = _frames.window(bins, self._bins_total)
        if w is not None:
            req.window.CopyFrom(w)
        r = self.client._call(self.client._queries.GetMetrics, req)
        rows = []
        for n in r.nodes:
            sla = n.sla_share if n.HasField("sla_share") else np.nan
            for source, stats in (("role", n.roles), ("derived", n.derived)):
                for name in sorted(stats):
                    s = stats[name]
                    rows.append(
                        {"node": n.id, "kind": n.kind, "source": source, "quantity": name, "min": s.min, "mean": s.mean,
                         "max": s.max, "sum": s.sum, "bins": s.bins, "sla_share": sla}
                    )
        cols = ["node", "kind", "source", "quantity", "min", "mean", "max", "sum", "bins", "sla_share"]
        df = pd.DataFrame(rows, columns=cols)
        df.attrs.update(self._info(r.info), flowtime="metrics")
        return df

    def watch(self, classes: str = "") -> Watch:
        """A stream of change events (iterate it; `close()` or `with` ends it). The first event
        carries every series; each later one the series a change recomputed: `changed` (a
        DataFrame of the new values), `unchanged` (recomputed to the same bits), `removed`.
        `classes` (a glob over class ids, e.g. "refund" or "*") adds the per-class series
        `<id>@<class>` of a classed model, reported whenever their values change (SPEC §6.1)."""
        call = self.client._watch.Watch(watch_pb2.WatchRequest(target=self._proto(), classes=classes))
        return Watch(call, self.path)


class Session(Target):
    """An open session: a template version, its parameter values and its inputs, kept by the
    server (it survives restarts). Its variants are named sets of overrides."""

    def __init__(self, client: Client, info: sessions_pb2.Session) -> None:
        super().__init__(client, info.id)
        self._set(info)

    def _set(self, info: sessions_pb2.Session) -> None:
        self.id = info.id
        self.template_id = info.template_id
        self.template_version = info.template_version
        self.parameters: dict[str, ParamScalar] = {k: _frames.param_value(v) for k, v in sorted(info.parameters.items())}
        self.inputs = list(info.inputs)
        self.series_bindings = list(info.series_bindings)
        self.revision = info.revision
        self.variant_names = list(info.variants)
        self.created_utc = info.created_utc
        self.grid = _frames.grid(info.grid)
        self.bound_to_stored = list(info.bound_to_stored)

    def __repr__(self) -> str:
        return f"<flowtime.Session {self.id!r} on {self.template_id}@{self.template_version}, revision {self.revision}>"

    def refresh(self) -> Session:
        """Reads the session's state again (revision, parameters, variants)."""
        self._set(self.client._call(self.client._sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=self.id)))
        return self

    def set_params(self, **params: ParamScalar) -> Session:
        """Changes session parameters in place; variants that do not override them follow."""
        r = self.client._call(
            self.client._sessions.SetSessionParameters,
            sessions_pb2.SetSessionParametersRequest(session_id=self.id, parameters=_frames.params_proto(params)),
        )
        self._set(r)
        return self

    def variant(
        self,
        name: str,
        series: Optional[Mapping[str, Union[Sequence[float], pd.Series, np.ndarray]]] = None,
        **overrides: ParamScalar,
    ) -> Variant:
        """Creates variant `name` with these parameter overrides (and `series` bindings), or, if
        it exists, adds or changes them (with none, returns it as it is)."""
        params = _frames.params_proto(overrides)
        bindings = _bindings(series)
        c = self.client
        names = {v.name for v in c._call(c._sessions.ListVariants, sessions_pb2.ListVariantsRequest(session_id=self.id)).variants}
        if name in names and not params and not bindings:
            r = c._call(c._sessions.GetVariant, sessions_pb2.GetVariantRequest(session_id=self.id, name=name))
        elif name in names:
            r = c._call(
                c._sessions.UpdateVariant,
                sessions_pb2.UpdateVariantRequest(session_id=self.id, name=name, parameters=params, series=bindings),
            )
        else:
            r = c._call(
                c._sessions.CreateVariant,
                sessions_pb2.CreateVariantRequest(session_id=self.id, name=name, parameters=params, series=bindings),
            )
        return Variant(c, r)

    def variants(self) -> list[Variant]:
        """The session's variants."""
        c = self.client
        r = c._call(c._sessions.ListVariants, sessions_pb2.ListVariantsRequest(session_id=self.id))
        return [Variant(c, v) for v in r.variants]

    def delete(self) -> None:
        """Closes the session: it and its variants are removed."""
        self.client._call(self.client._sessions.CloseSession, sessions_pb2.CloseSessionRequest(session_id=self.id))


class Variant(Target):
    """A named set of overrides on a session: only their downstream cone is ever computed."""

    def __init__(self, client: Client, info: sessions_pb2.Variant) -> None:
        super().__init__(client, info.session_id, info.name)
        self.session_id = info.session_id
        self.name = info.name
        self.overrides: dict[str, ParamScalar] = {k: _frames.param_value(v) for k, v in sorted(info.parameters.items())}
        self.series_bindings = list(info.series_bindings)
        self.revision = info.revision
        self.created_utc = info.created_utc

    def __repr__(self) -> str:
        return f"<flowtime.Variant {self.path!r} overriding {self.overrides}>"

    def update(self, **overrides: ParamScalar) -> Variant:
        """Adds or changes overrides."""
        c = self.client
        r = c._call(
            c._sessions.UpdateVariant,
            sessions_pb2.UpdateVariantRequest(
                session_id=self.session_id, name=self.name, parameters=_frames.params_proto(overrides)
            ),
        )
        return Variant(c, r)

    def delete(self) -> None:
        """Deletes the variant."""
        c = self.client
        c._call(c._sessions.DeleteVariant, sessions_pb2.DeleteVariantRequest(session_id=self.session_id, name=self.name))


@dataclass(frozen=True)
class WatchEvent:
    """One change the target saw: the revision it brings the watcher to, the series whose values
    changed (a DataFrame over the grid's time axis), those recomputed to the same bits, those a
    structural change removed, and the evaluation's accounting."""

    revision: int
    initial: bool
    changed: pd.DataFrame = field(repr=False)
    unchanged: list[str]
    removed: list[str]
    accounting: Accounting
    grid: Grid


class Watch(Closing):
    """An open watch stream: iterate it for `WatchEvent`s; `close()` ends it."""

    def __init__(self, call: Any, target: str) -> None:
        self._call = call
        self.target = target

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        try:
            ev: watch_pb2.WatchEvent = next(self._call)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:  # closed by us
                raise StopIteration from None
            raise from_rpc_error(e) from None
        g = _frames.grid(ev.grid)
        changed = [s for s in ev.series if s.changed and not s.removed]
        frame = pd.DataFrame({s.id: np.asarray(s.values, dtype=np.float64) for s in changed}, index=g.index())
        frame.columns.name = "series"
        frame.attrs.update(flowtime="series", target=self.target, revision=ev.revision)
        return WatchEvent(
            revision=ev.revision,
            initial=ev.initial,
            changed=frame,
            unchanged=[s.id for s in ev.series if not s.changed],
            removed=[s.id for s in ev.series if s.removed],
            accounting=_frames.accounting(ev.accounting),
            grid=g,
        )

    def close(self) -> None:
        self._call.cancel()


def _target(t: Union[Target, str]) -> common_pb2.Target:
    if isinstance(t, Target):
        return t._proto()
    session, _, variant = t.partition("/")
    return common_pb2.Target(session=session, variant=variant)


def _target_text(t: common_pb2.Target) -> str:
    return f"{t.session}/{t.variant}" if t.variant else t.session


def _bindings(
    series: Optional[Mapping[str, Union[Sequence[float], pd.Series, np.ndarray]]],
) -> list[sessions_pb2.SeriesBinding]:
    return [
        sessions_pb2.SeriesBinding(target=k, values=np.asarray(v, dtype=np.float64).tolist())
        for k, v in (series or {}).items()
    ]


def _regular_minutes(idx: pd.DatetimeIndex, name: str) -> int:
    if len(idx) < 2:
        raise ValueError(f"put_series({name!r}): one timestamp gives no bin width: pass bin_minutes")
    steps = (idx[1:] - idx[:-1]).unique()
    minutes = steps[0] / pd.Timedelta(minutes=1)
    if len(steps) != 1 or minutes != int(minutes) or minutes <= 0:
        raise ValueError(f"put_series({name!r}): the index is not evenly spaced in whole minutes")
    return int(minutes)


def _stored_info(s: series_pb2.StoredSeriesInfo) -> dict[str, Any]:
    return {
        "name": s.name,
        "start": pd.Timestamp(s.start) if s.start else None,
        "bin_minutes": s.bin_minutes,
        "bins": s.bins,
        "sha256": s.sha256,
        "provenance": dict(sorted(s.provenance.items())),
    }


def _template(t: templates_pb2.Template) -> Template:
    rows = [
        {
            "name": p.name,
            "type": p.type,
            "default": _frames.param_value(p.default_value) if p.HasField("default_value") else None,
            "min": p.min if p.HasField("min") else np.nan,
            "max": p.max if p.HasField("max") else np.nan,
            "values": list(p.values),
            "description": p.description,
        }
        for p in t.parameters
    ]
    params = pd.DataFrame(rows, columns=["name", "type", "default", "min", "max", "values", "description"])
    return Template(t.id, t.version, t.title, t.description, t.sha256, t.text, params.set_index("name"))
