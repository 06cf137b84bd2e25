#!/usr/bin/env python3
"""Generates flowtime's private gRPC stubs (`src/flowtime/_pb`) from the repository's `proto/`.

    python generate.py          # write the stubs
    python generate.py --check  # regenerate into a temporary directory and compare the bytes

Run it with an interpreter that has exactly the versions pinned in requirements-gen.txt (the
check refuses others, since a different generator writes different bytes). protoc comes from
grpcio-tools: `*_pb2.py` and `*_pb2_grpc.py`; mypy-protobuf writes their `.pyi` type stubs.

protoc names modules after the proto package (`flowtime.v1.common_pb2`); the stubs live in the
private package `flowtime._pb`, so module references are rewritten to `flowtime._pb.<name>_pb2`.
Only module names change: the descriptors (and so the wire) are untouched.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
OUT = HERE / "src" / "flowtime" / "_pb"
PINS = HERE / "requirements-gen.txt"

# `from flowtime.v1 import common_pb2 as …` in generated Python.
FROM_IMPORT = re.compile(r"^from flowtime\.v1 import (\w+_pb2)\b", re.MULTILINE)
# `flowtime.v1.common_pb2` anywhere (imports and references in .pyi, the module name in .py).
MODULE = re.compile(r"\bflowtime\.v1\.(\w+_pb2)\b")


def check_pins() -> None:
    """Refuses to run with generator versions other than the pinned ones."""
    wrong = []
    for line in PINS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, version = line.split("==")
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = "not installed"
        if have != version:
            wrong.append(f"{name}: {have} (pinned {version})")
    if wrong:
        sys.exit(
            "the generator's versions differ from requirements-gen.txt:\n  "
            + "\n  ".join(wrong)
            + f"\ninstall them: {sys.executable} -m pip install -r {PINS}"
        )


def generate(into: Path) -> dict[str, bytes]:
    """Runs protoc with both plugins into `into`; returns file name → rewritten bytes."""
    bindir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "flowtime" / "v1").glob("*.proto"))
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        f"--mypy_out={into}",
        f"--mypy_grpc_out={into}",
        *protos,
    ]
    run = subprocess.run(cmd, cwd=PROTO, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"protoc failed:\n{run.stdout}{run.stderr}")
    out: dict[str, bytes] = {}
    for path in sorted((into / "flowtime" / "v1").iterdir()):
        text = path.read_text(encoding="utf-8")
        text = FROM_IMPORT.sub(r"from flowtime._pb import \1", text)
        text = MODULE.sub(r"flowtime._pb.\1", text)
        out[path.name] = text.encode("utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed stubs; write nothing")
    args = ap.parse_args()
    check_pins()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
    committed = {p.name for p in OUT.iterdir() if p.is_file() and p.name != "__init__.py"}
    if args.check:
        problems = [f"{n}: not committed" for n in sorted(files.keys() - committed)]
        problems += [f"{n}: committed but not generated" for n in sorted(committed - files.keys())]
        problems += [
            f"{n}: differs from what the generator writes"
            for n in sorted(files.keys() & committed)
            if (OUT / n).read_bytes() != files[n]
        ]
        if problems:
            sys.exit(
                "src/flowtime/_pb is not what proto/ generates:\n  "
                + "\n  ".join(problems)
                + "\nregenerate: python clients/python/generate.py (with requirements-gen.txt installed)"
            )
        print(f"src/flowtime/_pb matches proto/ ({len(files)} files)")
        return
    for name in committed - files.keys():
        os.remove(OUT / name)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(files)} files to {OUT.relative_to(HERE)}")


if __name__ == "__main__":
    main()
