#!/usr/bin/env python3
"""Generates one day of 5-minute telemetry for the order system (templates/order-system.yaml).

Deterministic: a fixed seed and a self-contained PRNG (xorshift64*), so the same script writes
the same bytes on every machine and Python version. Run from the repository root:

    python3 data/order-system/generate.py

The system (seed architecture, chapter 1):

    customers -> OrderService (buffered) -> OrderQueue (Service Bus) -> Billing

* Demand has a night floor, a morning peak around 09:30 and a smaller afternoon bump.
* OrderService processes at most CAPACITY_ORDER orders per bin (attempts = served + errors);
  during the morning peak the backlog in front of it builds and then drains.
* About 1% of attempts fail (errors).
* Billing consumes at most CAPACITY_BILLING messages per bin from OrderQueue.
* One realistic telemetry defect: from 10:30 to 10:45 (bins 126..128) the OrderQueue depth
  metric is stale (it repeats the 10:25 value) while the backlog drains, so the queue's
  conservation check (and the built-in conservation_violation) warns there.
"""

import os

SEED = 20251007
BINS = 288
BIN_MINUTES = 5
CAPACITY_ORDER = 110
CAPACITY_BILLING = 104
STALE_BINS = range(126, 129)

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


def main():
    rng = XorShift(SEED)
    arrivals, served, errors, backlog = [], [], [], []
    queue_depth, billing_served = [], []
    b = 0  # backlog in front of OrderService
    q = 0  # OrderQueue depth
    for t in range(BINS):
        hour = t * BIN_MINUTES / 60.0
        rate = 40 + 95 * bump(hour, 9.5, 1.2) + 30 * bump(hour, 14.5, 1.5)
        noise = 0.92 + 0.16 * rng.uniform()
        a = int(round(rate * noise))
        attempts = min(b + a, CAPACITY_ORDER)
        e = int(attempts * 0.01 + rng.uniform())  # ~1% of attempts fail
        s = attempts - e
        b = b + a - s - e
        consumed = min(q + s, CAPACITY_BILLING)
        q = q + s - consumed
        arrivals.append(a)
        served.append(s)
        errors.append(e)
        backlog.append(b)
        queue_depth.append(q)
        billing_served.append(consumed)
    observed_queue = list(queue_depth)
    for t in STALE_BINS:
        observed_queue[t] = observed_queue[STALE_BINS.start - 1]

    def write(name, values):
        with open(os.path.join(OUT, name), "w", newline="\n") as f:
            f.write("bin_index,value\n")
            for i, v in enumerate(values):
                f.write(f"{i},{v}\n")

    write("arrivals.csv", arrivals)
    write("served.csv", served)
    write("errors.csv", errors)
    write("backlog.csv", backlog)
    write("orders_queue_depth.csv", observed_queue)
    write("billing_served.csv", billing_served)


if __name__ == "__main__":
    main()
