"""The client against a real server: the README's replay and what-if as DataFrames, comparisons
agreeing with the CLI, time travel, warnings, stored series, Gold loads, watch streams and
errors carrying the CLI's message."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import GOLD, Server

import flowtime

UTC = "UTC"


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def test_the_replay_backlog_is_800_at_1025_indexed_by_its_utc_bin_start(replay: flowtime.Session) -> None:
    df = replay.series("orders_backlog", bins=slice(118, 130))
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == UTC
    assert df.index.name == "time"
    # Bin 118 of 5-minute bins from midnight starts at 09:50.
    assert df.index[0] == at("2025-10-07T09:50:00Z")
    assert df.loc[at("2025-10-07T10:25:00Z"), "orders_backlog"] == 800.0
    assert df["orders_backlog"].idxmax() == at("2025-10-07T10:25:00Z")
    assert df.attrs["window"] == (118, 130)
    assert df.attrs["kinds"] == {"orders_backlog": "stock"}
    assert replay.bound_to_stored == sorted(replay.bound_to_stored) and "demand_source" in replay.bound_to_stored


def test_a_bin_slice_of_ten_gives_ten_rows_from_the_grid_start(replay: flowtime.Session) -> None:
    df = replay.series("*", bins=slice(0, 10))
    assert len(df) == 10
    assert df.index[0] == replay.grid.start == at("2025-10-07T00:00:00Z")
    assert df.index[-1] == at("2025-10-07T00:45:00Z")
    assert "orders_backlog" in df.columns and "demand" in df.columns
    whole = replay.series(["orders_backlog", "demand"])
    assert len(whole) == 288 and list(whole.columns) == ["orders_backlog", "demand"]
    pd.testing.assert_series_equal(whole["demand"].iloc[:10], df["demand"], check_freq=False)
    # Open and negative ends count from the grid's end, as Python slices do.
    tail = replay.series("demand", bins=slice(-3, None))
    assert len(tail) == 3 and tail.index[-1] == at("2025-10-07T23:55:00Z")
    assert tail.attrs["window"] == (285, 288)


def test_inferred_capacity_carries_its_method_and_confidence(replay: flowtime.Session) -> None:
    df = replay.series("*capacity_inferred", bins=slice(0, 1))
    assert df.loc[at("2025-10-07T00:00:00Z"), "order_capacity_inferred"] == 110.0
    assert math.isnan(df["billing_capacity_inferred"].iloc[0])
    label = df.attrs["inference"]["order_capacity_inferred"]
    assert label["method"] == "saturation"
    assert 0 < label["confidence"] <= 1 and label["saturated_bins"] > 0
    assert label["confidence"] == pytest.approx(label["saturated_bins"] / 288)
    assert df.attrs["inference"]["billing_capacity_inferred"]["saturated_bins"] == 0


def test_compare_lists_the_same_changed_series_as_the_cli(
    client: flowtime.Client, replay: flowtime.Session, more_capacity: flowtime.Variant, server: Server
) -> None:
    df = client.compare(replay, more_capacity)
    changed = sorted(df.index[~df["identical"]])
    out = server.cli("--json", "compare", "replay", "replay/more-capacity")
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    assert changed == sorted(s["id"] for s in cli["series"] if not s["identical"])
    assert "orders_backlog" in changed and "demand" not in changed
    for s in cli["series"]:
        row = df.loc[s["id"]]
        assert row["bins_differ"] == s["binsDiffer"]
        assert bool(row["not_evaluated"]) == s["notDownstreamOfAnyDifference"]
        if not s["identical"]:
            cli_max = math.nan if s["maxAbsDiff"] is None else s["maxAbsDiff"]  # NaN is null in JSON
            assert row["max_abs_diff"] == cli_max or (math.isnan(row["max_abs_diff"]) and math.isnan(cli_max))
    assert df.attrs["summary"]["differing"] == cli["summary"]["differing"] == len(changed)
    # The same comparison by name.
    pd.testing.assert_frame_equal(client.compare("replay", "replay/more-capacity"), df)


def test_compare_values_give_a_b_and_diff_per_bin(
    client: flowtime.Client, replay: flowtime.Session, more_capacity: flowtime.Variant
) -> None:
    df = client.compare(replay, more_capacity, series="orders_backlog", values=True, bins=slice(100, 150))
    assert len(df) == 50 and df.index[0] == at("2025-10-07T08:20:00Z")
    a, b, diff = df[("orders_backlog", "a")], df[("orders_backlog", "b")], df[("orders_backlog", "diff")]
    np.testing.assert_array_equal(diff.to_numpy(), (b - a).to_numpy())
    assert a.loc[at("2025-10-07T10:25:00Z")] == 800.0
    base = replay.series("orders_backlog", bins=slice(100, 150))["orders_backlog"]
    what_if = more_capacity.series("orders_backlog", bins=slice(100, 150))["orders_backlog"]
    np.testing.assert_array_equal(a.to_numpy(), base.to_numpy())
    np.testing.assert_array_equal(b.to_numpy(), what_if.to_numpy())
    # With 150/bin the orders backlog peaks at 43 (09:40).
    assert what_if.max() == 43.0 and what_if.idxmax() == at("2025-10-07T09:40:00Z")


def test_state_is_a_tidy_frame_per_node_and_quantity(replay: flowtime.Session) -> None:
    df = replay.state(at="2025-10-07T10:25:00Z")
    assert list(df.columns) == ["node", "kind", "source", "quantity", "value"]
    row = df[(df.node == "OrdersQueue") & (df.quantity == "queueDepth")]
    assert row["value"].tolist() == [800.0] and row["source"].tolist() == ["role"]
    assert df.attrs["bin"] == 125
    assert df.attrs["start"] == at("2025-10-07T10:25:00Z") and df.attrs["end"] == at("2025-10-07T10:30:00Z")
    assert df.attrs["series"]["orders_backlog"] == 800.0
    pd.testing.assert_frame_equal(replay.state(bin=125), df)
    with pytest.raises(flowtime.InvalidArgument) as e:
        replay.state(at="2025-10-07T10:26:00Z")
    assert "bin" in str(e.value)
    with pytest.raises(flowtime.OutOfRange):
        replay.state(bin=288)


def test_warnings_name_the_gap_in_the_billing_telemetry(replay: flowtime.Session) -> None:
    df = replay.warnings()
    gap = df[df.code == "data_gap"]
    assert len(gap) == 1
    assert gap["bins"].iloc[0] == [230, 231] and gap["value"].iloc[0] == 2.0
    assert set(df.columns) == {"code", "severity", "node", "message", "bins", "value"}


def test_a_bad_parameter_raises_invalid_argument_with_the_cli_message(
    client: flowtime.Client, replay: flowtime.Session, server: Server
) -> None:
    with pytest.raises(flowtime.InvalidArgument) as caught:
        replay.variant("typo", order_capacty=150)
    e = caught.value
    assert isinstance(e, flowtime.Error)
    assert "order_capacty" in str(e)
    assert e.help is not None and "did you mean `order_capacity`" in e.help
    assert e.help in str(e)
    assert e.diagnostics[0].code == "unknown_parameter"
    assert any("order_capacty" in v.field for v in e.field_violations)
    # Exactly what the command line prints for the same request (before its error count).
    out = server.cli("variant", "create", "replay", "typo", "-p", "order_capacty=150")
    assert out.returncode == 2
    assert out.stderr == str(e) + "\n1 error\n"
    # A value the declared type refuses names the parameter too.
    with pytest.raises(flowtime.InvalidArgument) as caught:
        client.open_session("order-pipeline", "bad", {"order_capacity": "lots"})
    assert "order_capacity" in str(caught.value)
    assert "typo" not in [v.name for v in replay.variants()]


def test_missing_things_raise_not_found_naming_what_exists(client: flowtime.Client, replay: flowtime.Session) -> None:
    with pytest.raises(flowtime.NotFound) as e:
        client.session("nope")
    assert "replay" in str(e.value) and str(e.value).startswith("error[not_found]: ")
    with pytest.raises(flowtime.NotFound):
        client.template("no-such-template")
    with pytest.raises(flowtime.AlreadyExists):
        client.open_session("order-pipeline", "replay")


def test_sessions_and_variants_are_handles(client: flowtime.Client, replay: flowtime.Session) -> None:
    assert "replay" in [s.id for s in client.sessions()]
    s = client.session("replay")
    assert s.template_id == "order-pipeline" and s.grid.bins == 288 and s.grid.bin_minutes == 5
    assert s.parameters["demand_source"] == "series:OrdersQueue_arrivals"  # bound to the stored telemetry
    assert s.parameters["order_capacity"] == 110.0
    v = s.variant("scratch", q0=100)
    assert v.overrides == {"q0": 100.0}  # q0 is a `number`: the integer is read as one
    assert v.series("orders_backlog", bins=slice(0, 1))["orders_backlog"].iloc[0] > 0
    v2 = s.variant("scratch", order_capacity=120)  # exists: adds an override
    assert set(v2.overrides) == {"q0", "order_capacity"}
    assert "scratch" in [x.name for x in s.variants()]
    v2.delete()
    assert "scratch" not in [x.name for x in s.variants()]


def test_templates_list_and_describe_their_parameters(client: flowtime.Client) -> None:
    df = client.templates()
    assert {"order-pipeline", "order-system", "capacity-whatif"} <= set(df["id"])
    t = client.template("order-pipeline")
    assert t.version == "1.0.0" and "nodes:" in t.text
    assert t.parameters.loc["order_capacity", "type"] == "number"
    assert t.parameters.loc["demand_source", "type"] == "series"


def test_put_series_takes_its_window_from_the_index_and_keeps_provenance(client: flowtime.Client) -> None:
    idx = pd.date_range("2025-10-07T00:00:00Z", periods=4, freq="15min")
    s = pd.Series([1.0, 2.0, float("nan"), 4.0], index=idx)
    assert client.put_series("py/demand", s, provenance={"source": "pytest"})
    assert not client.put_series("py/demand", s, provenance={"source": "pytest"})
    back = client.get_series("py/demand")
    pd.testing.assert_series_equal(back, s.rename("py/demand").rename_axis("time"), check_freq=False)
    assert back.attrs["provenance"] == {"source": "pytest"} and back.attrs["bin_minutes"] == 15
    listed = client.stored_series().loc["py/demand"]
    assert listed["bins"] == 4 and listed["start"] == at("2025-10-07T00:00:00Z")
    with pytest.raises(ValueError):
        client.put_series("py/irregular", pd.Series([1.0, 2.0, 3.0], index=pd.DatetimeIndex(["2025-10-07T00:00Z", "2025-10-07T00:05Z", "2025-10-07T00:15Z"])))
    with pytest.raises(flowtime.InvalidArgument) as e:
        client.put_series("py/misaligned", [1.0], start="2025-10-07T00:07:00Z", bin_minutes=5)
    assert "start" in str(e.value)


def test_load_gold_from_a_dataframe_and_from_the_server_data_root(client: flowtime.Client) -> None:
    gold = pd.read_csv(GOLD, parse_dates=["ts"])
    small = gold[gold.node.isin(["OrdersQueue", "OrderService"])].copy()
    small["node"] = "Py" + small["node"]
    r = client.load_gold(small, bin_size="5m")
    assert sorted(r.series)[:2] == ["PyOrderService_arrivals", "PyOrderService_errors"]
    assert r.grid.bins == 288 and r.grid.start == at("2025-10-07T00:00:00Z")
    assert r.provenance["source"] == "dataframe" and r.rows == len(small)
    day = client.get_series("PyOrdersQueue_queue_depth")
    assert day.loc[at("2025-10-07T10:25:00Z")] == 800.0
    # The same file read on the server: nothing changes.
    again = client.load_gold("data/gold/order-day.csv", server_path=True)
    assert again.provenance["source"] == "order-day.csv" and again.changed == []


def test_a_bad_gold_row_names_its_line_and_stores_nothing(client: flowtime.Client, tmp_path: object) -> None:
    bad = pd.DataFrame({"ts": ["2025-10-07T00:00:00Z", "2025-10-07T00:05:00Z"], "node": ["Bad", "Bad"],
                        "arrivals": [1, "x"], "served": [1, 1], "errors": [0, 0]})
    with pytest.raises(flowtime.InvalidArgument) as e:
        client.load_gold(bad)
    assert "line 3" in str(e.value)
    assert not any(n.startswith("Bad_") for n in client.stored_series().index)


def test_watch_streams_the_changed_series_as_dataframes(client: flowtime.Client, replay: flowtime.Session) -> None:
    v = replay.variant("watched", order_capacity=130, order_served_source="order_served_modeled")
    with v.watch() as w:
        first = next(w)
        assert first.initial and "orders_backlog" in first.changed.columns
        assert len(first.changed) == 288 and str(first.changed.index.tz) == UTC
        v.update(order_capacity=140)
        ev = next(w)
        assert not ev.initial and ev.revision > first.revision
        assert "orders_backlog" in ev.changed.columns and "demand" not in ev.changed.columns
        expected = v.series("orders_backlog")["orders_backlog"]
        np.testing.assert_array_equal(ev.changed["orders_backlog"].to_numpy(), expected.to_numpy())
        assert ev.accounting.nodes_evaluated >= 1
    v.delete()


def test_metrics_summarise_each_node(replay: flowtime.Session) -> None:
    df = replay.metrics()
    row = df[(df.node == "OrdersQueue") & (df.quantity == "queueDepth")].iloc[0]
    assert row["max"] == 800.0 and row["bins"] == 288


CLASSED = """id: classy-py
version: "1"
grid: {bins: 4, binSize: 1, binUnit: hours, start: "2026-01-01T00:00:00Z"}
classes: [{id: order}, {id: refund}]
nodes:
  - {id: orders, kind: const, values: [6, 6, 3, 0], classMix: {order: 3, refund: 1}}
  - {id: served, kind: const, values: [2]}
topology:
  nodes:
    - {id: Svc, kind: queue, semantics: {arrivals: orders, served: served}}
"""


def test_per_class_series_with_classes_argument(client: flowtime.Client) -> None:
    client.put_template(CLASSED)
    s = client.open_session("classy-py", "classy-py")
    df = s.series("svc_queue", classes=True)
    assert list(df.columns) == ["svc_queue@order", "svc_queue@refund"]
    assert list(df["svc_queue@refund"]) == [1.0, 2.0, 2.25, 1.75]
    total = s.series("svc_queue")["svc_queue"]
    assert list(df.sum(axis=1)) == list(total)
    only = s.series("*", classes="refund")
    assert list(only.columns) == ["orders@refund", "served@refund", "svc_queue@refund"]
    with pytest.raises(TypeError):
        s.series(["svc_queue"], classes=True)


def test_watch_with_classes_reports_the_parts_a_share_moves(client: flowtime.Client) -> None:
    client.put_template(CLASSED.replace("id: classy-py", "id: classy-watch").replace(
        "refund: 1}}", 'refund: "{{share}}"}}').replace(
        "grid:", "parameters:\n  - {name: share, type: number, default: 1}\ngrid:"))
    s = client.open_session("classy-watch", "classy-watch")
    with s.watch(classes="refund") as w:
        first = next(w)
        assert "svc_queue@refund" in first.changed.columns and "svc_queue@order" not in first.changed.columns
        s.set_params(share=3)
        ev = next(w)
        assert list(ev.changed.columns) == ["orders@refund", "served@refund", "svc_queue@refund"]
        expected = s.series("svc_queue@refund")["svc_queue@refund"]
        np.testing.assert_array_equal(ev.changed["svc_queue@refund"].to_numpy(), expected.to_numpy())
