"""The examples work as shipped: the typed script against the test server, and the tour notebook,
executed cell by cell by nbclient against a server of its own (any cell error fails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from conftest import Server, start_server

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_compare_script_prints_the_readme_story(server: Server) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "compare_variants.py"), server.address],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "loaded 15 series, 288 bins of 5 minutes"
    assert "py-replay: orders_backlog peaks at 800 (10:25 UTC)" in lines
    assert "py-replay/more-capacity: orders_backlog peaks at 43 (09:40 UTC)" in lines
    assert "py-replay/more-capacity: billing_backlog peaks at 437 (10:20 UTC)" in lines
    assert "21 of 26 series differ; 5 identical by construction" in lines
    assert lines[-5].split()[:5] == ["orders_backlog", "max", "|b", "-", "a|"]


def test_the_tour_notebook_runs_without_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server(tmp_path / "server")
    try:
        monkeypatch.setenv("FLOWTIME_SERVER", server.address)
        nb = nbformat.read(EXAMPLES / "tour.ipynb", as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
        )
        client.execute()  # raises CellExecutionError at the first failing cell
    finally:
        server.stop()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    plots = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(plots) >= 4, "the tour draws the replay, the comparison, the sweep and the bands"
    text = "".join(o.get("text", "") for o in outputs)
    assert "a peak of 100 needs a capacity of 144.2 orders per bin" in text
    assert "capacity is 110.0" in text
