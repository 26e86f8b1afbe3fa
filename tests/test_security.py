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


# Bad PEM files are named at start-up, not reported by grpc as "Failed to bind to address".


def _bad_tls(pki: dict[str, Path], folder: Path, case: str) -> tuple[dict[str, str], str]:
    """TLS settings that must be refused, and the start of the message that says why."""
    from cryptography.hazmat.primitives import serialization

    good = {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["server_key"])}
    junk = folder / "notes.txt"
    junk.write_text("not a certificate\n")
    if case == "cert is not a certificate":
        return {**good, "tls_cert": str(junk)}, f"tls_cert {str(junk)!r} is not a PEM certificate"
    if case == "key is a certificate":
        wrong = {**good, "tls_key": str(pki["server_cert"])}
        return wrong, f"tls_key {str(pki['server_cert'])!r} is not a PEM private key"
    if case == "key of another certificate":
        return {**good, "tls_key": str(pki["client_key"])}, (
            f"tls_key {str(pki['client_key'])!r} does not match "
            f"tls_cert {str(pki['server_cert'])!r}"
        )
    if case == "encrypted key":
        key = serialization.load_pem_private_key(pki["server_key"].read_bytes(), None)
        locked = folder / "locked.key"
        locked.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ))  # fmt: skip
        return {**good, "tls_key": str(locked)}, f"tls_key {str(locked)!r} is encrypted"
    if case == "client CA is cut short":
        cut = folder / "cut-ca.pem"
        cut.write_bytes(pki["ca"].read_bytes()[:200])
        return {**good, "tls_client_ca": str(cut)}, (
            f"tls_client_ca {str(cut)!r} is not a PEM certificate: a PEM block does not decode"
        )
    assert case == "client CA is not a certificate"
    return {**good, "tls_client_ca": str(junk)}, (
        f"tls_client_ca {str(junk)!r} is not a PEM certificate: "
        "no '-----BEGIN CERTIFICATE-----' block found"
    )


BAD_TLS = ["cert is not a certificate", "key is a certificate", "key of another certificate",
           "encrypted key", "client CA is cut short", "client CA is not a certificate"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_TLS)
def test_bad_pem_files_are_named(pki: dict[str, Path], tmp_path: Path, case: str) -> None:
    from embedspace_server.auth import server_credentials
    from embedspace_server.config import Settings
    from embedspace_server.errors import InvalidInput

    settings, message = _bad_tls(pki, tmp_path, case)
    with pytest.raises(InvalidInput) as info:
        server_credentials(Settings(**settings))
    assert str(info.value).startswith(message), str(info.value)
    good = {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["server_key"]),
            "tls_client_ca": str(pki["ca"])}  # fmt: skip
    assert server_credentials(Settings(**good)) is not None


@pytest.mark.parametrize("case", ["key of another certificate", "client CA is cut short"])
def test_serve_refuses_bad_pem_files_in_one_line(
    pki: dict[str, Path], tmp_path: Path, case: str
) -> None:
    settings, message = _bad_tls(pki, tmp_path, case)
    config = tmp_path / "es.toml"
    config.write_text(
        "".join(f"{name} = {json.dumps(value)}\n" for name, value in settings.items())
        + 'builtin_collections = false\n[[encoders]]\nname = "v"\nkind = "vector"\ndim = 8\n'
    )
    out = subprocess.run(
        [str(BIN / "embedspace"), "serve", "--port", "0", "--config", str(config),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "Traceback" not in text and "Failed to bind" not in text, text
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1, text
    assert f"cannot start: cannot listen on 127.0.0.1:0: {message}" in errors[0], text
