#!/usr/bin/env bash
# The tests, as the README gives them and CI runs them: Debian's chromium and chromium-driver
# when missing (the browser tests in tests/web.rs drive them; they never skip), cargo's suite
# (unit, integration, the README tour), then the Python client's (clients/python/test.sh: a venv
# under target/, a real server, pytest, the notebook, mypy). One debug build serves both.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "== installing Debian's chromium and chromium-driver for the browser tests"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
cargo test --locked
clients/python/test.sh
