"""The server's errors as exceptions: the gRPC status decoded into a `flowtime.Error` subclass whose
message is what the command line prints (what, where, how to fix it), carrying the located
diagnostics (`flowtime.v1.Diagnostics`) and the google.rpc.BadRequest field violations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowtime._pb import common_pb2

DIAGNOSTICS_TYPE_URL = "type.googleapis.com/flowtime.v1.Diagnostics"


@dataclass(frozen=True)
class ExprSpan:
    """The offending token of an expression or metric: `text[offset:offset + len]` in UTF-8 bytes."""

    text: str
    offset: int
    len: int


@dataclass(frozen=True)
class Diagnostic:
    """A located problem in what was sent: a document, an expression, a CSV file, a request field."""

    severity: str
    code: str
    message: str
    file: Optional[str] = None
    path: Optional[str] = None
    line: Optional[int] = None
    column: Optional[int] = None
    expr: Optional[ExprSpan] = None
    help: Optional[str] = None

    def location(self) -> str:
        """`file:line N, column M: path`, whatever is known (as the command line writes it)."""
        out = self.file or ""
        if self.line is not None:
            if out:
                out += ":"
            out += f"line {self.line}"
            if self.column is not None:
                out += f", column {self.column}"
        if self.path:
            if out:
                out += ": "
            out += self.path
        return out

    def render(self) -> str:
        """The command line's rendering: message, location, a caret under the token, the fix."""
        out = f"{self.severity}[{self.code}]: {self.message}\n"
        loc = self.location()
        if loc:
            out += f"  --> {loc}\n"
        if self.expr is not None:
            raw = self.expr.text.encode("utf-8")
            prefix = len(raw[: self.expr.offset].decode("utf-8", errors="ignore"))
            width = max(1, len(raw[self.expr.offset : self.expr.offset + self.expr.len].decode("utf-8", errors="ignore")))
            out += "   |\n"
            out += f"   | {self.expr.text}\n"
            out += f"   | {' ' * prefix}{'^' * width}\n"
        if self.help:
            out += f"   = help: {self.help}\n"
        return out


@dataclass(frozen=True)
class FieldViolation:
    """One google.rpc.BadRequest field violation: the request field and what is wrong with it."""

    field: str
    description: str
    reason: str = ""


class Error(Exception):
    """A request the server refused or could not answer.

    `str(error)` is what `flowtime` on the command line prints for the same request;
    `diagnostics` are the located problems (INVALID_ARGUMENT), `field_violations` the request
    fields they are in, `status` the gRPC status message and `code` its code.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        status: str = "",
        diagnostics: tuple[Diagnostic, ...] = (),
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.diagnostics = diagnostics
        self.field_violations = field_violations

    @property
    def help(self) -> Optional[str]:
        """The first diagnostic's fix, when there is one."""
        return next((d.help for d in self.diagnostics if d.help), None)


class InvalidArgument(Error):
    """Bad input (INVALID_ARGUMENT): `diagnostics` say what, where and how to fix it."""


class NotFound(Error):
    """No such template, session, variant, series or run (NOT_FOUND); the message names what exists."""


class AlreadyExists(Error):
    """The name is taken (ALREADY_EXISTS)."""


class FailedPrecondition(Error):
    """The request does not fit the current state (FAILED_PRECONDITION), e.g. different grids."""


class OutOfRange(Error):
    """Bins or timestamps outside the grid (OUT_OF_RANGE)."""


class ResourceExhausted(Error):
    """Over a limit (RESOURCE_EXHAUSTED): message size, the evaluation budget, a window cap."""


class Unavailable(Error):
    """The server is unreachable, or a concurrent write cancelled a read (UNAVAILABLE): retry."""


class Cancelled(Error):
    """The call was cancelled (CANCELLED)."""


class Unauthenticated(Error):
    """The server needs a token and the call had none, or the wrong one (UNAUTHENTICATED): pass
    `token=`, `token_file=` or set FLOWTIME_TOKEN."""


class DeadlineExceeded(Error):
    """The call's deadline (`timeout`) or the server's maximum passed first (DEADLINE_EXCEEDED)."""


_BY_CODE: dict[grpc.StatusCode, tuple[type[Error], str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (InvalidArgument, "invalid_argument"),
    grpc.StatusCode.NOT_FOUND: (NotFound, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (AlreadyExists, "already_exists"),
    grpc.StatusCode.FAILED_PRECONDITION: (FailedPrecondition, "failed_precondition"),
    grpc.StatusCode.OUT_OF_RANGE: (OutOfRange, "out_of_range"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (ResourceExhausted, "resource_exhausted"),
}
_RUNTIME: dict[grpc.StatusCode, type[Error]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def _diagnostic(d: common_pb2.Diagnostic) -> Diagnostic:
    return Diagnostic(
        severity=d.severity or "error",
        code=d.code,
        message=d.message,
        file=d.file or None,
        path=d.path or None,
        line=d.line if d.HasField("line") else None,
        column=d.column if d.HasField("column") else None,
        expr=ExprSpan(d.expr.text, d.expr.offset, d.expr.len) if d.HasField("expr") else None,
        help=d.help or None,
    )


def from_rpc_error(e: grpc.RpcError) -> Error:
    """The `flowtime.Error` a failed call stands for (the same classification as the CLI's exit
    codes: the client-side codes carry a located message, the rest `CODE: message`)."""
    call: grpc.Call = e  # type: ignore[assignment]
    code = call.code()
    status = call.details() or ""
    diagnostics: list[Diagnostic] = []
    violations: list[FieldViolation] = []
    try:
        rich = rpc_status.from_call(call)
    except ValueError:
        rich = None
    if rich is not None:
        for any_ in rich.details:
            if any_.type_url == DIAGNOSTICS_TYPE_URL:
                ds = common_pb2.Diagnostics()
                ds.ParseFromString(any_.value)
                diagnostics.extend(_diagnostic(d) for d in ds.items)
            elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                any_.Unpack(br)
                violations.extend(FieldViolation(v.field, v.description, v.reason) for v in br.field_violations)
    if code in _BY_CODE:
        cls, slug = _BY_CODE[code]
        if not diagnostics:
            # A request field checked before anything was read: the status names it.
            diagnostics = [Diagnostic("error", slug, status)]
        message = "\n".join(d.render() for d in diagnostics).rstrip("\n")
    else:
        cls = _RUNTIME.get(code, Error)
        message = f"{code.name}: {status}"
    return cls(
        message,
        code=code,
        status=status,
        diagnostics=tuple(diagnostics),
        field_violations=tuple(violations),
    )
