"""Plots draw the values they are given, on a labelled UTC time axis (matplotlib's Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import flowtime  # noqa: E402
from flowtime import plot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures() -> None:
    plt.close("all")


def first_time(ax: plt.Axes) -> pd.Timestamp:
    x = ax.get_lines()[0].get_xdata()
    return pd.Timestamp(mdates.num2date(mdates.date2num(x[0]), tz="UTC"))


def test_series_plots_the_values_over_utc_time(replay: flowtime.Session) -> None:
    df = replay.series("*_backlog", bins=slice(118, 130))
    ax = plot.series(df)
    assert ax.get_xlabel() == "time (UTC)"
    assert ax.get_ylabel() == "entities"  # both backlogs are stocks
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(df.columns)
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), df["orders_backlog"].to_numpy())
    assert first_time(ax) == pd.Timestamp("2025-10-07T09:50:00Z")
    # The accessor draws the same.
    ax2 = df.flowtime.plot()
    np.testing.assert_array_equal(ax2.get_lines()[1].get_ydata(), df["billing_backlog"].to_numpy())


def test_inferred_capacities_say_so_in_the_legend(replay: flowtime.Session) -> None:
    ax = plot.series(replay.series("order_capacity_inferred"))
    assert "inferred, confidence" in ax.get_legend().get_texts()[0].get_text()


def test_compare_plots_both_sides(
    client: flowtime.Client, replay: flowtime.Session, more_capacity: flowtime.Variant
) -> None:
    df = client.compare(replay, more_capacity, series="orders_backlog", values=True)
    ax = df.flowtime.plot()
    a, b = ax.get_lines()
    np.testing.assert_array_equal(a.get_ydata(), df[("orders_backlog", "a")].to_numpy())
    np.testing.assert_array_equal(b.get_ydata(), df[("orders_backlog", "b")].to_numpy())
    assert ax.get_xlabel() == "time (UTC)" and "replay/more-capacity" in ax.get_title()
    summary = plot.compare(client.compare(replay, more_capacity))
    assert summary.get_xlabel() == "max |b − a|"


def test_sweep_and_bands(replay: flowtime.Session) -> None:
    params = {"order_served_source": "order_served_modeled"}
    df = replay.sweep({"order_capacity": [100, 120, 140]}, ["max(orders_backlog)"], params=params)
    ax = df.flowtime.plot()
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [100.0, 120.0, 140.0])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), df["max(orders_backlog)"].to_numpy())
    assert ax.get_xlabel() == "order_capacity"
    mc = replay.monte_carlo(10, seed=1, series=["orders_backlog"],
                            distributions={"order_capacity": flowtime.Uniform(120, 140)}, params=params)
    ax = plot.bands(mc)
    assert ax.get_xlabel() == "time (UTC)" and ax.get_ylabel() == "orders_backlog"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), mc.bands["orders_backlog"]["p50"].to_numpy())
