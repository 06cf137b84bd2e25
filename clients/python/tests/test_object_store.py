"""Object storage against a real S3-compatible server (moto's, installed from PyPI by test.sh):
a run written with `--out s3://…` has the bytes of a directory run, and a result cache in S3 is
shared by two processes (the second loads every series instead of computing it)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from conftest import REPO, flowtime_binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Any]]:
    """A moto S3 server on loopback with an empty bucket `flow`: the environment the `flowtime`
    binary reads its endpoint and credentials from, and a boto3 client of it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = Path(sys.executable).parent / "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    client: Any = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket="flow")
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"moto did not start: {log.read_text()}")
            time.sleep(0.2)
    try:
        yield env, client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _flowtime(env: dict[str, str], cwd: Path, *args: str) -> Any:
    done = subprocess.run(
        [str(flowtime_binary()), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_runs_and_the_result_cache_in_s3(s3: tuple[dict[str, str], Any], tmp_path: Path) -> None:
    env, client = s3
    template = str(REPO / "templates" / "order-system.yaml")
    local = _flowtime(env, tmp_path, "run", template, "--out", str(tmp_path / "runs"))
    remote = _flowtime(env, tmp_path, "run", template, "--out", "s3://flow/runs/")
    assert remote["runId"] == local["runId"] and remote["reused"] is False
    run_dir = tmp_path / "runs" / local["runId"]
    manifest = (run_dir / "manifest.json").read_bytes()
    key = f"runs/{local['runId']}/manifest.json"
    assert client.get_object(Bucket="flow", Key=key)["Body"].read() == manifest
    for name in json.loads(manifest)["files"]:
        body = client.get_object(Bucket="flow", Key=f"runs/{local['runId']}/{name}")["Body"].read()
        assert body == (run_dir / name).read_bytes(), name
    assert _flowtime(env, tmp_path, "run", template, "--out", "s3://flow/runs/")["reused"] is True

    # The result cache in S3, shared by two processes on two database files.
    cache = ["--cache", "s3://flow/cache/"]
    for db in ("a.redb", "b.redb"):
        _flowtime(env, tmp_path, "--db", db, *cache, "session", "open", template, "--name", "s")
    first = _flowtime(env, tmp_path, "--db", "a.redb", *cache, "query", "s", "*")["accounting"]
    assert first["nodes_evaluated"] == first["nodes_total"] > 10
    second = _flowtime(env, tmp_path, "--db", "b.redb", *cache, "query", "s", "*")["accounting"]
    assert (second["nodes_evaluated"], second["nodes_loaded"]) == (0, first["nodes_total"])
