#!/usr/bin/env python3
"""A small flowtime gRPC client: open a session on the shipped order-system template, create two
what-if variants, compare them, and print a table.

Usage (with a server running, e.g. `cargo run --release -- serve`):

    pip install grpcio grpcio-tools
    python3 -m grpc_tools.protoc -I proto --python_out=examples/python/gen \
        --grpc_python_out=examples/python/gen proto/flowtime/v1/*.proto
    python3 examples/python/compare_variants.py 127.0.0.1:50051

The stubs are generated from the repository's `proto/` into `examples/python/gen` (not committed).
"""

import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "gen"))

import grpc  # noqa: E402
from flowtime.v1 import common_pb2, queries_pb2, queries_pb2_grpc  # noqa: E402
from flowtime.v1 import sessions_pb2, sessions_pb2_grpc  # noqa: E402
from flowtime.v1 import templates_pb2, templates_pb2_grpc  # noqa: E402


def number(x):
    return common_pb2.ParamValue(number=x)


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    channel = grpc.insecure_channel(addr)
    templates = templates_pb2_grpc.TemplateServiceStub(channel)
    sessions = sessions_pb2_grpc.SessionServiceStub(channel)
    queries = queries_pb2_grpc.QueryServiceStub(channel)

    # The shipped template: store it (a no-op when the server already has it).
    repo = os.path.dirname(os.path.dirname(HERE))
    with open(os.path.join(repo, "templates", "order-system.yaml")) as f:
        put = templates.PutTemplate(templates_pb2.PutTemplateRequest(text=f.read()))
    print(f"template {put.id}@{put.version} ({'stored' if put.created else 'already stored'})")

    session_id = "py-example"
    try:
        sessions.CloseSession(sessions_pb2.CloseSessionRequest(session_id=session_id))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
    s = sessions.OpenSession(sessions_pb2.OpenSessionRequest(
        template_id=put.id, template_version=put.version, session_id=session_id))
    print(f"session {s.id}: {s.grid.bins} bins of {s.grid.bin_minutes} minutes from {s.grid.start}")

    # What-ifs model what OrderService serves (`served_modeled`: up to its capacity per bin);
    # replayed telemetry could not react to a bigger backlog or more demand.
    modelled = common_pb2.ParamValue(series="served_modeled")
    sessions.CreateVariant(sessions_pb2.CreateVariantRequest(
        session_id=session_id, name="backlog", parameters={"q0": number(500), "served_source": modelled}))
    sessions.CreateVariant(sessions_pb2.CreateVariantRequest(
        session_id=session_id, name="busier", parameters={"demand_scale": number(1.1), "served_source": modelled}))

    target = lambda v: common_pb2.Target(session=session_id, variant=v)  # noqa: E731
    cmp = queries.Compare(queries_pb2.CompareRequest(
        a=queries_pb2.Operand(target=target("backlog")),
        b=queries_pb2.Operand(target=target("busier"))))

    def fmt(x):
        return "-" if math.isnan(x) else f"{x:.2f}"

    print(f"{'series':<34} {'identical':>9} {'bins differ':>11} {'max |b-a|':>12} {'total a':>12} {'total b':>12}")
    for row in cmp.series:
        if row.not_downstream_of_any_difference:
            print(f"{row.id:<34} {'yes*':>9} {0:>11} {'-':>12} {'-':>12} {'-':>12}")
        else:
            print(f"{row.id:<34} {'yes' if row.identical else 'no':>9} {row.bins_differ:>11} "
                  f"{fmt(row.max_abs_diff):>12} {fmt(row.total_a):>12} {fmt(row.total_b):>12}")
    summary = cmp.summary
    print(f"summary: {summary.series} series, {summary.identical} identical "
          f"({summary.not_downstream} not downstream of any difference, marked *), {summary.differing} differ")
    print(f"accounting: {cmp.accounting.nodes_evaluated} evaluated, {cmp.accounting.nodes_reused} reused")


if __name__ == "__main__":
    main()
