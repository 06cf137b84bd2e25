#!/usr/bin/env bash
# Generates the Python stubs from proto/ and runs the example against a server at $1
# (default 127.0.0.1:50051). Needs: pip install grpcio grpcio-tools.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc -I "$repo/proto" --python_out="$here/gen" --grpc_python_out="$here/gen" "$repo"/proto/flowtime/v1/*.proto
python3 "$here/compare_variants.py" "${1:-127.0.0.1:50051}"
