#!/usr/bin/env bash
# The Python client's tests (run by scripts/test.sh, the README's test command), on a clean clone
# with only the package registries reachable:
#   1. a venv under target/ (never the system Python): pip install './clients/python[plot]' and
#      the test tools (requirements-test.txt);
#   2. the committed stubs in src/flowtime/_pb are what proto/ generates (a second venv with the
#      pinned generator, requirements-gen.txt);
#   3. mypy --strict on the package and the typed example script;
#   4. pytest against a real `flowtime serve` on loopback (the debug binary cargo built; the
#      fixture starts and stops it), which also executes examples/tour.ipynb with nbclient.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"
pipq=(--quiet --disable-pip-version-check)

# The binary the tests serve: cargo has built it already (`cargo test` builds it); this is a
# no-op then, and builds it once when the script runs alone.
cargo build --locked --quiet --bin flowtime
export FLOWTIME_BIN="$repo/target/debug/flowtime"

echo "== Python: the client into target/py"
test -x target/py/bin/python || "$python" -m venv target/py
# An in-tree build reuses build/: a stale copy of a removed module must not be installed.
rm -rf clients/python/build clients/python/src/flowtime.egg-info
target/py/bin/pip install "${pipq[@]}" "./clients/python[plot]" -r clients/python/requirements-test.txt
rm -rf clients/python/build clients/python/src/flowtime.egg-info

echo "== Python: the committed stubs match proto/"
test -x target/py-gen/bin/python || "$python" -m venv target/py-gen
target/py-gen/bin/pip install "${pipq[@]}" -r clients/python/requirements-gen.txt
target/py-gen/bin/python clients/python/generate.py --check

echo "== Python: mypy --strict (the package and the typed example)"
(cd clients/python && ../../target/py/bin/mypy --strict)

echo "== Python: pytest against a real server (and the tour notebook)"
# The installed package is what is tested: run from the tests' directory, not the source tree.
(cd clients/python && ../../target/py/bin/python -m pytest -p no:cacheprovider -q tests)
