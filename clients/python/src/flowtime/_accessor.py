"""`df.flowtime`: the pandas accessor on flowtime's DataFrames (`df.flowtime.plot()`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@pd.api.extensions.register_dataframe_accessor("flowtime")
class FlowtimeAccessor:
    """What flowtime knows about a DataFrame it returned (`df.attrs`), and its plot."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    @property
    def kind(self) -> str:
        """`series`, `state`, `compare`, `compare_values`, `sweep`, `sensitivity`, `band`, … ."""
        return str(self._df.attrs.get("flowtime", ""))

    def plot(self, **kwargs: Any) -> Axes:
        """`flowtime.plot.series`, `compare`, `sweep` or `bands`, whichever fits (needs
        `flowtime[plot]`)."""
        from flowtime import plot

        return plot.plot(self._df, **kwargs)
