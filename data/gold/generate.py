#!/usr/bin/env python3
"""Generates one day of Gold NodeTimeBin telemetry (5-minute bins) for the order pipeline:

    customers -> OrdersQueue -> OrderService -> BillingQueue -> BillingService

Deterministic: a fixed seed and a self-contained PRNG (xorshift64*), so the same script writes
the same bytes on every machine. Run from the repository root:

    python3 data/gold/generate.py

Writes data/gold/order-day.csv (the Gold export) and data/gold/story.json (the generator's
ground truth, which the end-to-end test checks the replay against).

What the day contains:
* Demand: a night floor (~40 orders/bin), a morning peak around 09:30 (~165/bin) and a smaller
  afternoon bump. The peak exceeds OrderService's capacity, so the OrdersQueue backlog builds
  from about 08:30 and drains by early afternoon.
* OrderService completes at most ORDER_CAPACITY orders per bin (its true capacity); about 1%
  of what is available fails (errors) before processing.
* BillingService completes at most BILLING_CAPACITY per bin, more than OrderService can send:
  billing is not the bottleneck today. Between 14:10 and 14:35 (bins 170..175) its payment
  provider fails: 30% of billing attempts error.
* One gap: the exporter lost the BillingQueue rows for 19:10 and 19:15 (bins 230, 231); the
  loader zero-fills them and reports data_gap.
"""

import json
import os

SEED = 20251007
BINS = 288
BIN_MINUTES = 5
START = "2025-10-07T00:00:00Z"
ORDER_CAPACITY = 110
BILLING_CAPACITY = 125
ERROR_SPIKE = range(170, 176)
GAP = {("BillingQueue", 230), ("BillingQueue", 231)}

OUT = os.path.dirname(os.path.abspath(__file__))


class XorShift:
    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF or 1

    def next(self):
        x = self.state
        x ^= (x >> 12)
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= (x >> 27)
        self.state = x
        return ((x * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF) >> 11

    def uniform(self):
        return self.next() / float(1 << 53)


def bump(hour, centre, width):
    d = (hour - centre) / width
    return 2.718281828459045 ** (-0.5 * d * d)


def ts(t):
    minutes = t * BIN_MINUTES
    return f"2025-10-07T{minutes // 60:02d}:{minutes % 60:02d}:00Z"


def main():
    rng = XorShift(SEED)
    rows = []
    orders_q = 0  # OrdersQueue backlog
    billing_q = 0  # BillingQueue backlog
    peak = (0, 0)
    for t in range(BINS):
        hour = t * BIN_MINUTES / 60.0
        rate = 40 + 125 * bump(hour, 9.5, 1.1) + 35 * bump(hour, 15.0, 1.4)
        demand = int(round(rate * (0.93 + 0.14 * rng.uniform())))

        available = orders_q + demand
        order_errors = min(available, int(available * 0.01 + rng.uniform()))
        order_served = min(available - order_errors, ORDER_CAPACITY)
        taken = order_served + order_errors
        orders_q = available - taken
        if orders_q > peak[0]:
            peak = (orders_q, t)

        billing_available = billing_q + order_served
        rate = 0.30 if t in ERROR_SPIKE else 0.005
        billing_errors = min(billing_available, int(billing_available * rate + rng.uniform()))
        billing_served = min(billing_available - billing_errors, BILLING_CAPACITY)
        billing_taken = billing_served + billing_errors
        billing_q = billing_available - billing_taken

        stamp = ts(t)
        rows.append((stamp, "OrdersQueue", demand, taken, 0, orders_q, demand))
        rows.append((stamp, "OrderService", taken, order_served, order_errors, "", ""))
        if ("BillingQueue", t) not in GAP:
            rows.append((stamp, "BillingQueue", order_served, billing_taken, 0, billing_q, ""))
        rows.append((stamp, "BillingService", billing_taken, billing_served, billing_errors, "", ""))

    with open(os.path.join(OUT, "order-day.csv"), "w", newline="\n") as f:
        f.write("ts,node,arrivals,served,errors,queue_depth,external_demand\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")
    story = {
        "start": START,
        "bins": BINS,
        "binMinutes": BIN_MINUTES,
        "orderCapacity": ORDER_CAPACITY,
        "billingCapacity": BILLING_CAPACITY,
        "peakOrdersBacklog": peak[0],
        "peakOrdersBacklogBin": peak[1],
        "errorSpikeBins": [ERROR_SPIKE.start, ERROR_SPIKE.stop - 1],
        "gap": sorted([{"node": n, "bin": b} for n, b in GAP], key=lambda g: g["bin"]),
    }
    with open(os.path.join(OUT, "story.json"), "w", newline="\n") as f:
        json.dump(story, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
