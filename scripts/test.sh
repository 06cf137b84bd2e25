#!/usr/bin/env bash
# The tests, as the README gives them and CI runs them: cargo's suite (unit, integration, the
# README tour), then the Python client's (clients/python/test.sh: a venv under target/, a real
# server, pytest, the notebook, mypy). One debug build serves both.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked
clients/python/test.sh
