"""Bearer tokens, TLS and mutual TLS, with a throwaway CA made here; health stays open."""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from embedspace import Client, EmbedspaceError, Unauthenticated, Unavailable
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .serve_process import BIN

TOKEN = "s3cret-token-for-tests"


def _cert(subject: str, issuer: Any, key: Any, issuer_key: Any, *, ca: bool) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("embedspace test CA", None, ca_key, ca_key, ca=True)
    out = {"ca": folder / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"embedspace {who}", ca.subject, key, ca_key, ca=False)
        out[f"{who}_cert"] = folder / f"{who}.pem"
        out[f"{who}_key"] = folder / f"{who}.key"
        out[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{who}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return out


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status)


def test_without_the_token_only_health_answers(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with start_server(tokens=f"other-token, {TOKEN}") as server:
        with Client(server.target) as es, pytest.raises(Unauthenticated, match="bearer token"):
            es.collections()
        with Client(server.target, token="wrong") as es, pytest.raises(Unauthenticated):
            es.encoders()
        with Client(server.target, token=TOKEN) as es:
            assert "minilm" in [e.name for e in es.encoders()]
        with grpc.insecure_channel(server.target) as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        listing = subprocess.run(
            [str(BIN / "grpcurl"), "-plaintext", server.target, "list"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listing.returncode != 0 and "Unauthenticated" in listing.stderr
        with_token = subprocess.run(
            [str(BIN / "grpcurl"), "-plaintext", "-H", f"authorization: Bearer {TOKEN}",
             server.target, "list"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "embedspace.v1.Embedspace" in with_token.stdout
    assert TOKEN not in caplog.text and "other-token" not in caplog.text


def test_public_reflection_is_a_switch(start_server: Any) -> None:
    with start_server(tokens=TOKEN, public_reflection=True) as server:
        listing = subprocess.run(
            [str(BIN / "grpcurl"), "-plaintext", server.target, "list"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "embedspace.v1.Embedspace" in listing.stdout
        with Client(server.target) as es, pytest.raises(Unauthenticated):
            es.collections()


def test_tls_with_the_sdk_and_grpcurl(start_server: Any, pki: dict[str, Path]) -> None:
    with start_server(tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"])) as server:
        with Client(server.target, root_certificates=pki["ca"]) as es:
            import numpy as np

            assert es.embed("vec8", [np.ones(8, np.float32)]).shape == (1, 8)
        with Client(server.target, retries=0, timeout=5) as es, pytest.raises(Unavailable):
            es.collections()  # plaintext to a TLS port
        reply = subprocess.run(
            [str(BIN / "grpcurl"), "-cacert", str(pki["ca"]), server.target,
             "embedspace.v1.Embedspace/ListEncoders"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert reply.returncode == 0, reply.stderr
        assert "minilm" in [e["name"] for e in json.loads(reply.stdout)["encoders"]]


def test_mutual_tls_requires_a_client_certificate(start_server: Any, pki: dict[str, Path]) -> None:
    settings = {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["server_key"]),
                "tls_client_ca": str(pki["ca"]), "tokens": TOKEN}  # fmt: skip
    with start_server(**settings) as server:
        with (
            Client(server.target, root_certificates=pki["ca"], token=TOKEN, retries=0) as es,
            pytest.raises(Unavailable),
        ):
            es.collections()  # no client certificate: the handshake fails
        with Client(
            server.target, token=TOKEN, root_certificates=pki["ca"],
            private_key=pki["client_key"], certificate_chain=pki["client_cert"],
        ) as es:  # fmt: skip
            assert isinstance(es.collections(), list)
        reply = subprocess.run(
            [str(BIN / "grpcurl"), "-cacert", str(pki["ca"]), "-cert", str(pki["client_cert"]),
             "-key", str(pki["client_key"]), "-H", f"authorization: Bearer {TOKEN}",
             server.target, "embedspace.v1.Embedspace/ListCollections"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert reply.returncode == 0, reply.stderr
        health = subprocess.run(
            [str(BIN / "embedspace"), "health", "--target", server.target,
             "--tls-ca", str(pki["ca"]), "--tls-cert", str(pki["client_cert"]),
             "--tls-key", str(pki["client_key"])],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert health.returncode == 0 and "SERVING" in health.stdout


def test_a_plaintext_health_port_beside_tls_serves_only_health(
    start_server: Any, pki: dict[str, Path]
) -> None:
    settings = {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["server_key"]),
                "tokens": TOKEN, "health_port": 0}  # fmt: skip
    with start_server(**settings) as server:
        target = f"127.0.0.1:{server.server.health_port}"
        with grpc.insecure_channel(target) as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        with (
            Client(target, token=TOKEN, retries=0) as es,
            pytest.raises(EmbedspaceError) as info,
        ):
            es.collections()
        assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
