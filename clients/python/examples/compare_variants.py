#!/usr/bin/env python3
"""Replay the Gold day, ask what-if, compare: the README's story with the flowtime client.

    pip install './clients/python[plot]'
    flowtime serve                                   # in another terminal (127.0.0.1:50051)
    python clients/python/examples/compare_variants.py [ADDRESS] [GOLD_CSV]

Loads the Gold telemetry, opens a session that replays it, creates a what-if variant in which
OrderService completes up to 150 orders per bin, and prints where the backlog peaks in each and
which series differ. The script is type-checked with `mypy --strict` (clients/python/test.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import pandas as pd

import flowtime

REPO = Path(__file__).resolve().parents[3]


def peak(target: flowtime.Target, series: str) -> tuple[pd.Timestamp, float]:
    """When `series` peaks in `target` (UTC bin start) and its value there."""
    values: pd.Series = target.series(series)[series]
    at = cast(pd.Timestamp, values.idxmax())
    return at, float(values.max())


def main(address: str, gold: Path) -> None:
    with flowtime.connect(address) as client:
        loaded = client.load_gold(gold)
        print(f"loaded {len(loaded.series)} series, {loaded.grid.bins} bins of {loaded.grid.bin_minutes} minutes")

        try:
            client.session("py-replay").delete()
        except flowtime.NotFound:
            pass
        replay = client.open_session("order-pipeline", "py-replay", stored_telemetry=True)
        what_if = replay.variant(
            "more-capacity",
            order_capacity=150,
            order_served_source="order_served_modeled",
            billing_served_source="billing_served_modeled",
        )
        for target in (replay, what_if):
            for series in ("orders_backlog", "billing_backlog"):
                at, value = peak(target, series)
                print(f"{target.path}: {series} peaks at {value:g} ({at:%H:%M} UTC)")

        diff = client.compare(replay, what_if)
        changed = diff[~diff["identical"]].sort_values("max_abs_diff", ascending=False)
        print(f"{len(changed)} of {len(diff)} series differ; {int(diff['not_evaluated'].sum())} identical by construction")
        for name, row in changed.head(5).iterrows():
            print(f"  {name:<34} max |b - a| {row['max_abs_diff']:>9.2f}  in {row['bins_differ']} bins")


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051",
        Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "data" / "gold" / "order-day.csv",
    )
