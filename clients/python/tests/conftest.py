"""Fixtures: a real `flowtime serve` on a loopback port (the debug binary cargo built; a fresh
database in a temporary directory; the repository as its data root), stopped with SIGTERM at the
end, and the replay of the Gold day on it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import flowtime

REPO = Path(__file__).resolve().parents[3]
GOLD = REPO / "data" / "gold" / "order-day.csv"


def flowtime_binary() -> Path:
    """`$FLOWTIME_BIN`, else the debug build (`cargo build` / `cargo test` make it)."""
    path = Path(os.environ.get("FLOWTIME_BIN", REPO / "target" / "debug" / "flowtime"))
    if not path.is_file():
        pytest.fail(f"no flowtime binary at {path}: run `cargo build` first, or set FLOWTIME_BIN")
    return path


@dataclass
class Server:
    address: str
    process: subprocess.Popen[bytes]
    log: Path
    dir: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command line against this server (`flowtime --server ADDRESS ARGS`)."""
        return subprocess.run(
            [str(flowtime_binary()), "--server", self.address, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.dir,
        )

    def stop(self) -> None:
        """SIGTERM; the server must stop cleanly (it prints `stopped`)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        text = self.log.read_text()
        assert self.process.returncode == 0, text
        assert text.rstrip().endswith("stopped"), text


def start_server(dir: Path, *serve_args: str, before: tuple[str, ...] = ()) -> Server:
    """`flowtime [BEFORE…] --db … serve --listen 127.0.0.1:0 --runs … [SERVE_ARGS…]` in `dir`."""
    dir.mkdir(parents=True, exist_ok=True)
    log = dir / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(flowtime_binary()),
                *before,
                "--db",
                str(dir / "test.redb"),
                "--data-root",
                str(REPO),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--runs",
                str(dir / "runs"),
                *serve_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=dir,
            env={k: v for k, v in os.environ.items() if k != "FLOWTIME_TOKEN"},
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("listening on "):
                return Server(line.removeprefix("listening on ").strip(), process, log, dir)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"flowtime serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[flowtime.Client]:
    with flowtime.connect(server.address, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def replay(client: flowtime.Client) -> flowtime.Session:
    """The Gold day loaded and replayed: the README's `replay` session."""
    client.load_gold(GOLD)
    return client.open_session("order-pipeline", "replay", stored_telemetry=True)


@pytest.fixture(scope="session")
def more_capacity(replay: flowtime.Session) -> flowtime.Variant:
    """The README's what-if: OrderService completes up to 150 orders per bin (served modelled)."""
    return replay.variant(
        "more-capacity",
        order_capacity=150,
        order_served_source="order_served_modeled",
        billing_served_source="billing_served_modeled",
    )
