"""A server with a token and TLS: `flowtime.connect` sends the token (given, from a file, or
FLOWTIME_TOKEN) on every call, unary and streaming, and trusts the CA given by `tls_ca`; without
the token every call is `flowtime.Unauthenticated`, without the CA the TLS handshake fails."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from conftest import GOLD, REPO, Server, start_server
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import flowtime

TOKEN = "s3cret-token-for-tests"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_pki(dir: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a server certificate it signs for 127.0.0.1, and an unrelated CA: (ca, cert, key, other_ca)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=1)

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("flowtime test CA")
    _, other_cert = ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (dir / "ca.pem", dir / "server.pem", dir / "server.key", dir / "other-ca.pem")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[3].write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    return paths


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path, Path]]:
    """A server with a token (from a file) and TLS; yields it, the CA, the token file and an
    unrelated CA."""
    dir = tmp_path_factory.mktemp("secured")
    ca, cert, key, other = _make_pki(dir)
    token_file = dir / "token"
    token_file.write_text(TOKEN + "\n")
    s = start_server(
        dir, "--tls-cert", str(cert), "--tls-key", str(key), before=("--token-file", str(token_file))
    )
    yield s, ca, token_file, other
    s.stop()


def test_token_and_tls_reach_every_kind_of_call(secured: tuple[Server, Path, Path, Path]) -> None:
    server, ca, token_file, _ = secured
    with flowtime.connect(server.address, token_file=token_file, tls_ca=ca, timeout=60) as c:
        t = c.put_template(REPO / "templates" / "order-system.yaml")
        assert t.id == "order-system"
        session = c.open_session("order-system", "secure")
        df = session.series("arrivals")
        assert list(df.columns) == ["arrivals"] and len(df) > 0
        # A server-streaming call (an analysis with progress) carries the token too.
        sweep = session.sweep({"demand_scale": [1, 2]}, ["max(arrivals)"])
        assert list(sweep["max(arrivals)"]) == [df["arrivals"].max(), 2 * df["arrivals"].max()]
        # A bidirectional stream (LoadGold) carries it too.
        gold = pd.read_csv(GOLD, parse_dates=["ts"])
        small = gold[gold.node == "OrderService"].copy()
        small["node"] = "Secure" + small["node"]
        loaded = c.load_gold(small, bin_size="5m")
        assert loaded.rows == len(small) and "SecureOrderService_arrivals" in loaded.series


def test_a_token_file_is_read_whole_and_an_empty_one_is_refused(
    secured: tuple[Server, Path, Path, Path], tmp_path: Path
) -> None:
    server, ca, _, _ = secured
    padded = tmp_path / "padded"
    padded.write_text(f"  {TOKEN}  \n\n")
    with flowtime.connect(server.address, token_file=padded, tls_ca=ca, timeout=60) as c:
        assert "order-system" in set(c.templates()["id"])
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        flowtime.connect(server.address, token_file=empty, tls_ca=ca)


def test_a_call_without_the_token_is_unauthenticated(
    secured: tuple[Server, Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca, _, _ = secured
    monkeypatch.delenv("FLOWTIME_TOKEN", raising=False)
    with flowtime.connect(server.address, tls_ca=ca, timeout=60) as c:
        with pytest.raises(flowtime.Unauthenticated) as e:
            c.templates()
        assert "UNAUTHENTICATED" in str(e.value)
    with flowtime.connect(server.address, token="wrong", tls_ca=ca, timeout=60) as c:
        with pytest.raises(flowtime.Unauthenticated):
            c.templates()
    # FLOWTIME_TOKEN is the token when none is given.
    monkeypatch.setenv("FLOWTIME_TOKEN", TOKEN)
    with flowtime.connect(server.address, tls_ca=ca, timeout=60) as c:
        assert "order-system" in set(c.templates()["id"])


def test_tls_needs_the_ca_that_signed_the_server(secured: tuple[Server, Path, Path, Path]) -> None:
    server, _, token_file, other = secured
    with flowtime.connect(server.address, token_file=token_file, tls_ca=other, timeout=10) as c:
        with pytest.raises(flowtime.Unavailable):
            c.templates()
    # Plain TCP to a TLS server fails the same way.
    with flowtime.connect(server.address, token_file=token_file, timeout=10) as c:
        with pytest.raises(flowtime.Unavailable):
            c.templates()
