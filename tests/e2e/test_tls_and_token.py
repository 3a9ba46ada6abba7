"""TLS by default, pinning, CA trust, mutual TLS and the token, with real processes."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.oracle import copy_differences

if TYPE_CHECKING:
    from tests.conftest import RunSender, StartReceiver

CONFIG_ERROR, CONNECT_ERROR, AUTH_ERROR, UNTRUSTED = 3, 5, 6, 13
# A failed TLS handshake is retried by gRPC until the connect timeout.
FAST_FAIL = ("--connect-timeout", "3")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Authority:
    """A throwaway CA that issues server and client certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = self._build(self.name, self.key.public_key(), ca=True)
        self.path = directory / f"{name}.pem"
        self.path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.directory = directory

    def _build(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, *, ca: bool
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, name: str) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = self._build(subject, key.public_key(), ca=False)
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_key_pem(key))
        return issued


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hostname").write_text("source\n")
    return src


def test_default_tls_with_pinned_fingerprint_migrates(
    tmp_path: Path, tree: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    target = receiver(dst, tmp_path / "state", tls=True)
    assert target.trust_args[0] == "--fingerprint"
    assert "TLS certificate fingerprint: sha256:" in target.stderr()
    run_sender(tree, target)
    assert copy_differences(tree, dst) == []


def test_a_wrong_fingerprint_is_refused_before_any_data(
    tmp_path: Path, tree: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    target = receiver(dst, tmp_path / "state", tls=True)
    target.trust_args = ("--fingerprint", "sha256:" + "ab" * 32)
    result = run_sender(tree, target, check=False)
    assert result.returncode == UNTRUSTED, result.describe()
    assert "is not the one pinned" in result.stderr
    assert list(dst.iterdir()) == []


def test_a_sender_must_say_how_to_trust_the_receiver(
    tmp_path: Path, tree: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    target = receiver(dst, tmp_path / "state", tls=True)
    target.trust_args = ()
    result = run_sender(tree, target, check=False)
    assert result.returncode == CONFIG_ERROR, result.describe()
    assert "--fingerprint" in result.stderr


def test_ca_signed_receiver_is_trusted_by_its_ca_only(
    tmp_path: Path, tree: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    ca, other = Authority(tmp_path, "ca"), Authority(tmp_path, "other-ca")
    server = ca.issue("receiver")
    dst = tmp_path / "dst"
    dst.mkdir()
    target = receiver(
        dst,
        tmp_path / "state",
        tls=True,
        extra_args=("--tls-cert", str(server.cert), "--tls-key", str(server.key)),
    )
    target.address = target.address.replace("127.0.0.1", "localhost")

    target.trust_args = ("--ca-cert", str(other.path), *FAST_FAIL)
    refused = run_sender(tree, target, check=False)
    assert refused.returncode == CONNECT_ERROR, refused.describe()
    assert list(dst.iterdir()) == []

    target.trust_args = ("--ca-cert", str(ca.path))
    run_sender(tree, target)
    assert copy_differences(tree, dst) == []


def test_mutual_tls_requires_a_client_certificate_from_the_clients_ca(
    tmp_path: Path, tree: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    clients = Authority(tmp_path, "clients")
    stranger = Authority(tmp_path, "stranger").issue("stranger")
    dst = tmp_path / "dst"
    dst.mkdir()
    target = receiver(
        dst, tmp_path / "state", tls=True, extra_args=("--client-ca", str(clients.path))
    )
    pin = target.trust_args

    for refused_args in (
        (),
        ("--client-cert", str(stranger.cert), "--client-key", str(stranger.key)),
    ):
        target.trust_args = (*pin, *FAST_FAIL, *refused_args)
        result = run_sender(tree, target, check=False)
        assert result.returncode == CONNECT_ERROR, result.describe()
    assert list(dst.iterdir()) == []

    sender = clients.issue("sender")
    target.trust_args = (*pin, "--client-cert", str(sender.cert), "--client-key", str(sender.key))
    run_sender(tree, target)
    assert copy_differences(tree, dst) == []


def test_a_receiver_without_a_token_generates_one_and_refuses_others(
    tmp_path: Path, tree: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    dst, state = tmp_path / "dst", tmp_path / "state"
    dst.mkdir()
    target = receiver(dst, state, tls=True, env={"CVM_MIGRATE_TOKEN": ""})
    generated = (state / "token").read_text().strip()
    assert len(generated) >= 32
    assert (state / "token").stat().st_mode & 0o077 == 0
    assert generated in target.stderr()  # printed for the operator

    wrong = run_sender(tree, target, token="not-the-token", check=False)
    assert wrong.returncode == AUTH_ERROR, wrong.describe()
    assert "refused the token" in wrong.stderr
    assert list(dst.iterdir()) == []

    run_sender(tree, target, token=generated)
    assert copy_differences(tree, dst) == []
