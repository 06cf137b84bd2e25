"""Long calls: progress as a tqdm bar (shown by default in a Jupyter notebook, a widget where
ipywidgets is installed; on request elsewhere; never when turned off), the one loop that drains a
server stream of progress events and one result, and the `with` support of closable objects."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union

import grpc

from flowtime._errors import from_rpc_error

ProgressOption = Union[bool, None]
C = TypeVar("C", bound="Closing")


class Closing:
    """`with` support for anything with a `close()`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: C) -> C:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _tqdm() -> Any:
    """tqdm's notebook widget in a notebook that has ipywidgets; its text bar elsewhere (on
    stderr, which a notebook shows too)."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            pass
        else:
            from tqdm.notebook import tqdm as widget

            return widget
    from tqdm import tqdm as text

    return text


class Progress(Closing):
    """A bar when `show` (None: in a notebook), else nothing; used as a context manager."""

    def __init__(self, show: ProgressOption, desc: str, unit: str) -> None:
        self._bar: Any = None
        self._show = in_notebook() if show is None else show
        self._desc = desc
        self._unit = unit

    def update(self, done: int, total: int, postfix: Optional[str] = None) -> None:
        if not self._show:
            return
        if self._bar is None:
            self._bar = _tqdm()(total=total, desc=self._desc, unit=self._unit, leave=True)
        if total and self._bar.total != total:
            self._bar.total = total
        if postfix is not None:
            self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_stream(call: Any, bar: Progress, show: Callable[[Any, Progress], None]) -> Any:
    """Drains a stream of `oneof event { progress; result }` messages: each progress goes to
    `show`, the result is returned. An error becomes the matching `flowtime.Error`; an interrupt
    (or any error) cancels the call, which stops the work on the server."""
    result = None
    try:
        with bar:
            for ev in call:
                if ev.WhichOneof("event") == "progress":
                    show(ev.progress, bar)
                else:
                    result = ev.result
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None
    finally:
        call.cancel()
    if result is None:
        raise RuntimeError("the server ended the stream without a result")
    return result
