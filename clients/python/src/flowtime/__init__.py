"""flowtime: a typed, pandas-native client for the flowtime server.

    import flowtime
    client = flowtime.connect("127.0.0.1:50051")
    replay = client.session("replay")
    df = replay.series("orders_backlog", bins=slice(118, 130))   # UTC DatetimeIndex

Queries return DataFrames indexed by bin start (UTC); analyses stream progress (tqdm in a
notebook); refused requests raise `flowtime.Error` subclasses carrying the server's located
diagnostics. `flowtime.plot` (with `pip install 'flowtime[plot]'`) draws them.
"""

from flowtime import _accessor  # noqa: F401  (registers df.flowtime)
from flowtime._analysis import (
    Discrete,
    FitResult,
    GoalSeekResult,
    LogNormal,
    MonteCarloResult,
    Normal,
    OptimizeResult,
    Range,
    Triangular,
    Uniform,
)
from flowtime._client import (
    Client,
    LoadResult,
    Session,
    Target,
    Template,
    Variant,
    Watch,
    WatchEvent,
    connect,
)
from flowtime._errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    Diagnostic,
    Error,
    ExprSpan,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from flowtime._frames import Accounting, Grid, Inference

__version__ = "0.1.0"

__all__ = [
    "Accounting",
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "Client",
    "Diagnostic",
    "Discrete",
    "Error",
    "ExprSpan",
    "FailedPrecondition",
    "FieldViolation",
    "FitResult",
    "GoalSeekResult",
    "Grid",
    "Inference",
    "InvalidArgument",
    "LoadResult",
    "LogNormal",
    "MonteCarloResult",
    "Normal",
    "NotFound",
    "OptimizeResult",
    "OutOfRange",
    "Range",
    "ResourceExhausted",
    "Session",
    "Target",
    "Template",
    "Triangular",
    "Unauthenticated",
    "Unavailable",
    "Uniform",
    "Variant",
    "Watch",
    "WatchEvent",
    "connect",
]
