"""Analyses on the Gold day through the client, checked against the README's numbers and the
ground truth (OrderService's true capacity is 110 orders per bin), and their progress bars."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import flowtime

MODELLED = {"order_served_source": "order_served_modeled"}


def test_a_sweep_is_a_dataframe_of_points(replay: flowtime.Session) -> None:
    df = replay.sweep(
        {"order_capacity": flowtime.Range(100, 200, 20)},
        ["max(orders_backlog)", "bins_above(orders_backlog, 100)"],
        params=MODELLED,
    )
    assert len(df) == 21 and df.index.name == "point"
    assert list(df.columns) == ["order_capacity", "max(orders_backlog)", "bins_above(orders_backlog, 100)",
                                "nodes_evaluated", "structural"]
    peak = df.set_index("order_capacity")["max(orders_backlog)"]
    # The README: the peak falls from 1,083 at 100 orders per bin to 0 at 160.
    assert peak[100.0] == 1083.0 and peak[160.0] == 0.0 and peak[155.0] > 0
    assert peak.is_monotonic_decreasing
    assert (df["nodes_evaluated"] < df.attrs["accounting"]["nodes_total"]).all()
    assert df.attrs["flowtime"] == "sweep" and df.attrs["params"] == ["order_capacity"]


def test_sweep_points_can_carry_series_and_explicit_values(replay: flowtime.Session) -> None:
    df = replay.sweep({"order_capacity": [110, 150]}, ["max(orders_backlog)"], series=["orders_backlog"],
                      params=MODELLED)
    at_150 = df["orders_backlog"].iloc[1]
    assert isinstance(at_150, pd.Series) and len(at_150) == 288
    assert at_150.max() == 43.0 and at_150.idxmax() == pd.Timestamp("2025-10-07T09:40:00Z")


def test_goal_seek_finds_the_capacity_that_keeps_the_peak_at_100(replay: flowtime.Session) -> None:
    r = replay.goal_seek("order_capacity", 100, 200, "max(orders_backlog)", 100, params=MODELLED)
    assert r.converged and r.bracketed
    assert r.value == pytest.approx(144.2, abs=0.1)
    assert abs(r.achieved - 100) <= r.tolerance
    assert list(r.trace["order_capacity"][:2]) == [100.0, 200.0]  # both ends first


def test_fit_recovers_the_true_capacity_from_the_observed_queue(replay: flowtime.Session) -> None:
    r = replay.fit({"order_capacity": (50, 200)}, "orders_backlog", "orders_depth_observed", values=MODELLED)
    assert r.params["order_capacity"] == pytest.approx(110, abs=0.01)
    assert r.r2 == pytest.approx(1.0) and r.loss_kind == "sse" and r.bins_used == 288
    assert len(r.residuals) == 288 and str(r.residuals.index.tz) == "UTC"
    # Observed values uploaded from pandas give the same fit.
    observed = replay.series("orders_depth_observed")["orders_depth_observed"]
    again = replay.fit({"order_capacity": (50, 200)}, "orders_backlog", observed, values=MODELLED, loss="mae")
    assert again.params["order_capacity"] == pytest.approx(110, abs=0.01) and again.loss_kind == "mae"


def test_optimize_and_sensitivity(replay: flowtime.Session) -> None:
    o = replay.optimize({"order_capacity": (100, 200)}, "order_capacity",
                        constraints=["max(orders_backlog) <= 100"], values=MODELLED)
    assert o.feasible and o.params["order_capacity"] == pytest.approx(144.2, abs=0.2)
    assert o.constraints["max(orders_backlog)"] <= 100 + 1e-4
    s = replay.sensitivity(["order_capacity", "q0"], "max(orders_backlog)", values=MODELLED)
    assert list(s.index) == ["order_capacity", "q0"] and list(s["rank"]) == [1, 2]
    assert s.loc["order_capacity", "gradient"] < 0 and s.attrs["value"] == 800.0


def test_monte_carlo_bands_are_dataframes_and_repeat_with_the_seed(replay: flowtime.Session) -> None:
    run = lambda: replay.monte_carlo(  # noqa: E731
        40, seed=7, series=["orders_backlog"], metrics=["max(orders_backlog)"],
        distributions={"order_capacity": flowtime.Normal(130, 10)}, params=MODELLED,
    )
    r = run()
    band = r.bands["orders_backlog"]
    assert list(band.columns) == ["p5", "p50", "p95", "mean"] and len(band) == 288
    assert (band["p5"] <= band["p50"]).all() and (band["p50"] <= band["p95"]).all()
    assert r.metrics.loc["max(orders_backlog)", "p5"] <= r.metrics.loc["max(orders_backlog)", "p95"]
    assert len(r.params) == 40 and list(r.params.columns) == ["order_capacity"]
    pd.testing.assert_frame_equal(run().bands["orders_backlog"], band)


def test_a_bad_metric_is_located_with_a_caret(replay: flowtime.Session) -> None:
    with pytest.raises(flowtime.InvalidArgument) as e:
        replay.sweep({"order_capacity": [120]}, ["max(orders_backlgo)"])
    text = str(e.value)
    assert "metrics[0]" in text and "^" in text and "orders_backlog" in text
    assert e.value.diagnostics[0].expr is not None


def test_progress_shows_a_bar_when_asked_and_none_outside_a_notebook(
    replay: flowtime.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    replay.sweep({"order_capacity": [120, 130, 140]}, ["max(orders_backlog)"], params=MODELLED, progress=True)
    err = capsys.readouterr().err
    assert "sweep" in err and "3/3" in err
    replay.sweep({"order_capacity": [120, 130, 140]}, ["max(orders_backlog)"], params=MODELLED)
    assert capsys.readouterr().err == ""


def test_kept_points_become_variants(replay: flowtime.Session) -> None:
    df = replay.sweep({"order_capacity": [120, 140]}, ["max(orders_backlog)"], params=MODELLED, keep="kept")
    assert df.attrs["kept"] == ["kept-0", "kept-1"]
    v = replay.variant("kept-1")
    assert v.overrides["order_capacity"] == 140.0
    assert v.series("orders_backlog")["orders_backlog"].max() == df["max(orders_backlog)"].iloc[1]
    for name in df.attrs["kept"]:
        replay.variant(name).delete()
    assert not math.isnan(df["max(orders_backlog)"].iloc[0])
